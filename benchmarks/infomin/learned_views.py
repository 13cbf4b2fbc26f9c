"""InfoMin's learned views at CPU scale (Tian et al., 2020, Sec. 4.2, Table 1): learn a pixel-wise
flow that splits a colour image into two views (``ssl_bench/methods/view_generator.py``)
adversarially against the contrastive critic, unsupervised (Eq. 6) and with the semi-supervised
label term (Eq. 7), then train the contrastive encoders of ``reverse_u.py`` on the learned views
(the flow frozen) and compare with the fixed Lab split (L vs ab) at the same contrastive budget,
over seeds.

View learning: ``--view-epochs`` (30) epochs on the training subset (flip + padded crop); every batch
updates the critic (the two view encoders: tiny_cnn, width 8, 64-d head; Adam lr 1e-3), every 5th
batch also the generator (Adam lr 2e-4), none in the first 2 epochs (``--critic-steps``,
``--critic-warmup-epochs``): with one critic step per generator step and 3 epochs the critic never
learned to read the views and the generator only fooled it. Semi-supervised: two small classifiers on
the views (lr 1e-3), trained with the generator on the training subset's labels (all of them: the same
images are the k-NN bank and the probe's training set), ``label_weight`` 1. The flow's input is the CIFAR-normalised RGB image; its views are
standardised like the fixed splits'. The contrastive stage and the evaluation are ``reverse_u.py``'s.

    OMP_NUM_THREADS=1 python benchmarks/infomin/learned_views.py --out benchmarks/infomin/out_learned
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from torch import Tensor, nn

from ssl_bench.methods.view_generator import PixelFlow, critic_step, generator_step

from reverse_u import Encoder, Setting, augment, cifar_subsets, run_setting


VARIANTS = ("Lab", "learned-unsup", "learned-semi")


class LearnedSplit:
    """A frozen flow as a colour split: RGB in [0, 1] -> (v1, v2), standardised on ``reference``."""

    def __init__(self, flow: PixelFlow, normalise, reference: Tensor) -> None:
        self.flow, self.normalise = flow.eval(), normalise
        self.channels1, self.channels2 = (0,), (1, 2)
        with torch.no_grad():
            y = self.flow(self.normalise(reference))
        self.mean = y.mean(dim=(0, 2, 3), keepdim=True)
        self.std = y.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-6)

    def __call__(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            y = (self.flow(self.normalise(rgb)) - self.mean) / self.std
        return y[:, :1], y[:, 1:]


def classifier(in_chans: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_chans, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def learn_views(train: tuple[Tensor, Tensor], normalise, epochs: int, batch: int, seed: int, semi: bool,
                critic_steps: int = 1, critic_warmup_epochs: int = 0, critic_lr: float = 1e-3,
                generator_lr: float = 1e-3, classifier_lr: float = 1e-3) -> tuple[PixelFlow, list[dict]]:
    """``epochs`` passes over ``train``: every batch updates the critic; every ``critic_steps``-th
    batch also updates the generator (so the critic sees ``critic_steps`` fresh batches per generator
    step, as WGAN's n_critic), none during the first ``critic_warmup_epochs`` (the critic first learns
    to read the initial views). The semi-supervised classifiers step with the generator, at their own lr."""
    torch.manual_seed(seed)
    flow = PixelFlow(blocks=2, hidden=16, seed=seed)
    critic = nn.ModuleList([Encoder(1, 8), Encoder(2, 8)])
    heads = nn.ModuleList([classifier(1), classifier(2)])
    critic_opt = torch.optim.Adam(critic.parameters(), lr=critic_lr)
    groups = [{"params": list(flow.parameters())}] + ([{"params": list(heads.parameters()), "lr": classifier_lr}]
                                                        if semi else [])
    gen_opt = torch.optim.Adam(groups, lr=generator_lr)
    gen = torch.Generator().manual_seed(seed)
    images, labels = train
    log = []
    for epoch in range(epochs):
        steps: list[dict[str, float]] = []
        for i, idx in enumerate(torch.randperm(len(images), generator=gen).split(batch)):
            if len(idx) < batch:
                continue
            x = normalise(augment(images[idx].float() / 255, gen, pad_crop=True))
            step = {"critic_nce": critic_step(flow, critic, x, critic_opt)}
            if epoch >= critic_warmup_epochs and (i + 1) % critic_steps == 0:
                step["generator_nce"], step["ce"] = generator_step(
                    flow, critic, x, gen_opt, labels=labels[idx] if semi else None, classifiers=heads if semi else None)
            steps.append(step)
        log.append({k: statistics.mean(s[k] for s in steps if k in s) for k in steps[-1]} | {"epoch": epoch})
    return flow, log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=2048)
    ap.add_argument("--view-epochs", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--critic-steps", type=int, default=5, help="critic updates (fresh batches) per generator update")
    ap.add_argument("--critic-warmup-epochs", type=int, default=2)
    ap.add_argument("--critic-lr", type=float, default=1e-3)
    ap.add_argument("--generator-lr", type=float, default=2e-4)
    ap.add_argument("--classifier-lr", type=float, default=1e-3)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train, test = cifar_subsets(args.train, args.test)
    reference = train[0][:2000].float() / 255
    rows = []
    for seed in args.seeds:
        for variant in args.variants:
            cache = args.out / f"{variant}-s{seed}.json"
            if cache.exists():
                row = json.loads(cache.read_text())
            else:
                s = Setting("colour", "Lab", reference, width=16)
                row = {"variant": variant, "seed": seed}
                if variant != "Lab":
                    flow, log = learn_views(train, s.normalise, args.view_epochs, args.batch, seed,
                                            variant == "learned-semi", args.critic_steps, args.critic_warmup_epochs,
                                            args.critic_lr, args.generator_lr, args.classifier_lr)
                    s.split = LearnedSplit(flow, s.normalise, reference)
                    row["view_learning"] = log
                row |= run_setting(s, train, test, args.epochs, args.batch, seed)
                cache.write_text(json.dumps(row, indent=1))
            print(json.dumps({k: v for k, v in row.items() if k != "view_learning"}), flush=True)
            rows.append(row)
    lines = ["| views | I_NCE (nats) | k-NN top-1 | linear top-1 | seeds |", "|---|---|---|---|---|"]
    for variant in args.variants:
        rs = [r for r in rows if r["variant"] == variant]

        def fmt(key: str) -> str:
            vals = [r[key] for r in rs]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            return f"{statistics.mean(vals):.2f} +- {sd:.2f} ({', '.join(f'{v:.2f}' for v in vals)})"
        lines.append(f"| {variant} | {fmt('i_nce')} | {fmt('knn_top1')} | {fmt('linear_top1')} | {len(rs)} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
