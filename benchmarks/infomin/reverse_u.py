"""InfoMin's reverse U at CPU scale (Tian et al., 2020, "What Makes for Good Views for Contrastive
Learning?", Sec. 3.2, Fig. 3): vary how much information two views share, train a contrastive
encoder on each setting, and record per setting the InfoNCE lower bound on I(v1; v2) it reaches and
the downstream accuracy; the paper finds accuracy rising, then falling, as the bound grows.

- ``spatial``: two 12 px patches of a 32 px CIFAR-10 image, their corners 2 ... 20 px apart (large
  overlap ... an 8 px gap), one shared encoder (the paper: 64 px patches of 96 px STL-10 images).
- ``colour``: CMC's channel split in seven colour spaces (L vs ab, Y vs DbDr, R vs GB, ...), one
  encoder per view (CMC); the paper's plot has the same spaces.

Each setting: tiny_cnn (width 16) + a linear 64-d head per view, symmetric in-batch InfoNCE
(temperature 0.1), Adam lr 1e-3, on a CIFAR-10 training subset (also the k-NN bank and the linear
probe's training set), random flip (and, for colour, a 4 px padded random crop) of the image before
the views are made. The bound is ``I_NCE = log N - L_NCE`` with N = 256 on the test images (fixed
view draws), the critic being the trained encoders. Downstream: weighted k-NN (k 20, T 0.07) and
a logistic-regression probe on the frozen features of the whole 32 px test image (colour: both
encoders' features concatenated, as CMC evaluates).

    OMP_NUM_THREADS=1 python benchmarks/infomin/reverse_u.py --out benchmarks/infomin/out

writes ``results.csv``, ``results.md`` and ``reverse_u.png`` into ``--out``; finished settings are
reused (``--fresh`` redoes them).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn

from ssl_bench.backbones import build_backbone
from ssl_bench.data.recipes import CIFAR_MEAN, CIFAR_STD
from ssl_bench.data.sources import load_source, stratified_subset
from ssl_bench.losses import batch_infonce
from ssl_bench.metrics.knn import knn_accuracy, weighted_knn_predict

from views import COLOUR_SPLITS, ColourSplit, spatial_pair

PATCH = 12
DISTANCES = (2, 4, 6, 8, 12, 16, 20)
TEMPERATURE = 0.1
EVAL_N = 256


class Encoder(nn.Module):
    def __init__(self, in_chans: int, width: int, dim: int = 64) -> None:
        super().__init__()
        self.backbone, feat = build_backbone("tiny_cnn", width=width, in_chans=in_chans)
        self.head = nn.Linear(feat, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def nce(z1: Tensor, z2: Tensor) -> Tensor:
    """In-batch InfoNCE of v1 anchors against v2 keys (the bound's direction)."""
    return batch_infonce(z1, z2, TEMPERATURE)


def augment(images: Tensor, gen: torch.Generator, pad_crop: bool) -> Tensor:
    """Flip (and a 4 px padded random crop) of float images, per sample, before the views are made."""
    flip = torch.rand(len(images), generator=gen) < 0.5
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    if not pad_crop:
        return images
    padded = F.pad(images, (4, 4, 4, 4), mode="reflect")
    dy, dx = torch.randint(9, (2, len(images)), generator=gen)
    rows = (dy.view(-1, 1) + torch.arange(32)).view(-1, 1, 32, 1).expand(-1, 3, 32, 40)
    padded = padded.gather(2, rows)
    cols = (dx.view(-1, 1) + torch.arange(32)).view(-1, 1, 1, 32).expand(-1, 3, 32, 32)
    return padded.gather(3, cols)


class Setting:
    """One point of the curve: how views are made from images in [0, 1], and the encoders."""

    def __init__(self, experiment: str, value: str | int, train_images: Tensor, width: int) -> None:
        self.experiment, self.value = experiment, value
        mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
        self.normalise = lambda x: (x - mean) / std  # noqa: E731
        if experiment == "spatial":
            shared = Encoder(3, width)
            self.encoders = nn.ModuleList([shared, shared])
        else:
            self.split = ColourSplit(str(value), train_images[:2000])
            c1, c2 = len(self.split.channels1), len(self.split.channels2)
            self.encoders = nn.ModuleList([Encoder(c1, width), Encoder(c2, width)])

    @property
    def name(self) -> str:
        return f"{self.experiment}-{self.value}"

    def views(self, images: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.experiment == "spatial":
            return spatial_pair(self.normalise(images), PATCH, int(self.value), gen)
        return self.split(images)

    def features(self, images: Tensor) -> Tensor:
        """Frozen backbone features of whole images (colour: both views' encoders, concatenated)."""
        if self.experiment == "spatial":
            return self.encoders[0].backbone(self.normalise(images))
        v1, v2 = self.split(images)
        return torch.cat([self.encoders[0].backbone(v1), self.encoders[1].backbone(v2)], dim=1)


def batched(fn, images: Tensor, size: int = 500) -> Tensor:
    with torch.no_grad():
        return torch.cat([fn(images[i:i + size].float() / 255) for i in range(0, len(images), size)])


def cifar_subsets(train_size: int, test_size: int) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(images, labels) of class-stratified CIFAR-10 train and test subsets (data seed 0)."""
    src = load_source("cifar10")
    tr = stratified_subset(src.train.labels, train_size, seed=0)
    te = stratified_subset(src.val.labels, test_size, seed=0)
    return (src.train.images[tr], src.train.labels[tr]), (src.val.images[te], src.val.labels[te])


def run_setting(s: Setting, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], epochs: int,
                batch: int, seed: int) -> dict:
    torch.manual_seed(seed)
    for enc in s.encoders:                   # the same initial weights for every setting of an experiment
        for m in enc.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(s.encoders.parameters(), lr=1e-3)
    images, labels = train
    start = time.time()
    s.encoders.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=gen).split(batch):
            if len(idx) < batch:
                continue
            x = augment(images[idx].float() / 255, gen, pad_crop=s.experiment == "colour")
            v1, v2 = s.views(x, gen)
            z1, z2 = s.encoders[0](v1), s.encoders[1](v2)
            loss = 0.5 * (nce(z1, z2) + nce(z2, z1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    s.encoders.eval()
    eval_gen = torch.Generator().manual_seed(1234)
    bounds = []
    with torch.no_grad():
        for i in range(0, len(test[0]) - EVAL_N + 1, EVAL_N):
            v1, v2 = s.views(test[0][i:i + EVAL_N].float() / 255, eval_gen)
            bounds.append(math.log(EVAL_N) - float(nce(s.encoders[0](v1), s.encoders[1](v2))))
        train_f, test_f = batched(s.features, images), batched(s.features, test[0])
    scores = weighted_knn_predict(train_f, labels, test_f, num_classes=10, k=20, temperature=0.07)
    knn = knn_accuracy(scores, test[1], top_k=(1,))[1]
    scaler = StandardScaler().fit(train_f.numpy())
    probe = LogisticRegression(max_iter=1000).fit(scaler.transform(train_f.numpy()), labels.numpy())
    linear = 100.0 * float((probe.predict(scaler.transform(test_f.numpy())) == test[1].numpy()).mean())
    return {"experiment": s.experiment, "setting": str(s.value), "i_nce": sum(bounds) / len(bounds),
            "i_nce_max": math.log(EVAL_N), "knn_top1": knn, "linear_top1": linear,
            "train_loss": float(loss.detach()), "seconds": round(time.time() - start, 1)}


def write_report(rows: list[dict], out: Path, command: str) -> None:
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"Command: `{command}`", "", "| experiment | setting | I_NCE (nats, max log 256 = 5.55) | k-NN top-1 | linear top-1 |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['experiment']} | {r['setting']} | {r['i_nce']:.2f} | {r['knn_top1']:.2f} | "
                     f"{r['linear_top1']:.2f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    experiments = sorted({r["experiment"] for r in rows})
    fig, axes = plt.subplots(1, len(experiments), figsize=(5.5 * len(experiments), 4), squeeze=False)
    for ax, exp in zip(axes[0], experiments):
        pts = sorted((r for r in rows if r["experiment"] == exp), key=lambda r: r["i_nce"])
        for key, style in (("knn_top1", "o-"), ("linear_top1", "s--")):
            ax.plot([r["i_nce"] for r in pts], [r[key] for r in pts], style, label=key.replace("_top1", ""))
        for r in pts:
            ax.annotate(r["setting"], (r["i_nce"], r["knn_top1"]), textcoords="offset points", xytext=(3, 4),
                        fontsize=8)
        ax.set_xlabel("I_NCE lower bound on I(v1; v2) (nats)")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"{exp} views" + (" (setting = patch distance, px)" if exp == "spatial" else ""))
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "reverse_u.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--experiments", nargs="+", default=["spatial", "colour"], choices=["spatial", "colour"])
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--test", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train, test = cifar_subsets(args.train, args.test)
    rows = []
    for exp in args.experiments:
        values = DISTANCES if exp == "spatial" else tuple(COLOUR_SPLITS)
        for value in values:
            s = Setting(exp, value, train[0].float() / 255, args.width)
            cache = args.out / f"{s.name}.json"
            if cache.exists() and not args.fresh:
                row = json.loads(cache.read_text())
            else:
                row = run_setting(s, train, test, args.epochs, args.batch, args.seed)
                cache.write_text(json.dumps(row, indent=1))
            print(json.dumps(row), flush=True)
            rows.append(row)
    command = "OMP_NUM_THREADS=1 python benchmarks/infomin/reverse_u.py " + " ".join(
        f"--{k} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items() if k not in ("fresh",))
    write_report(rows, args.out, command)


if __name__ == "__main__":
    main()
