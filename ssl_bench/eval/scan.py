"""SCAN clustering on top of any pretraining checkpoint (Van Gansbeke et al., ECCV 2020).

``ssl-bench scan --ckpt runs/x/checkpoints/last.ckpt`` reads the run's ``config.yaml`` (beside
``checkpoints/``) for the method and data, then:

1. mines the K nearest neighbours (K = 20, cosine similarity of the frozen backbone's features of
   the un-augmented training images; chunked, cached as ``neighbors.pt`` in the output directory)
   and, as a baseline, runs k-means (scikit-learn) on the frozen features the heads will use;
2. SCAN step (Sec. 2.2): several linear clustering heads on the backbone, all trained at once with
   the SCAN loss (neighbour consistency - 5.0 x entropy of the mean assignment, Eq. 2), the
   backbone fine-tuned too (the official CIFAR setting); the head with the lowest SCAN loss over the
   training set (no labels involved) is kept;
3. self-labelling (Sec. 2.3): confident samples (weak-view probability > 0.99) supervise the
   strongly augmented view (the project's batched augmentation) with class-balanced cross-entropy.

``mine_on`` / ``heads_on`` move the mining or the heads to the pretext's projector output (the
official code mines there; the issue and the default use the backbone), and ``self_label_lr`` /
``self_label_update_backbone`` set stage 3 apart from stage 2.

After each stage clustering accuracy (Hungarian matching), NMI and ARI on the val split are
reported; everything lands in the output directory (default ``<run dir>/scan``): ``summary.json``,
``neighbors.pt`` and ``scan_model.pt`` (the network under the heads + the best head after
self-labelling). An output directory that already holds a ``summary.json`` is never overwritten
silently.

Image trees (``data.dataset: folder``, ``imagenet``, ...) work as in-memory datasets do: every file
is prepared as the k-NN / linear features' loader prepares it (resize, centre crop
``data.image_size``) and the split is held as a uint8 tensor while its decoded size fits in
``$SSL_BENCH_TREE_MEMORY_MB`` (default 2048 MiB; the train split first, then val), else streamed
from the files batch by batch in ``data.num_workers`` DataLoader workers (``data/tree_images.py``).
Both give the same result; ``summary.json`` records which was used (``images``).

The training loops are plain PyTorch rather than a Lightning run: both stages are a few hundred
steps over the images with no callbacks, checkpoints or multi-device needs, and a plain loop
keeps the paper's algorithm readable in one place.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from .. import run_dir as rd
from ..config import check_kwargs, check_types, parse_value, read_yaml_file
from ..data.batched_augment import BatchedViewAugment
from ..data.recipes import view_augment
from ..data.tree_images import (Images, close as close_images, embed_images, hold_or_stream, how_held, image_batches,
                                map_chunks)
from ..errors import ConfigError, did_you_mean
from ..fitting import fit_epochs
from ..methods import BaseMethod
from ..metrics.clustering import clustering_metrics
from ..run_dir import load_checkpoint_file, write_atomic
from .registry import EvalProtocol, make_settings, register_protocol, setting, setting_specs
from .target import EvalTarget


@dataclass
class ScanSettings:
    """SCAN hyperparameters: the ``scan`` section of the config language (``--scan.<name>`` on
    ``ssl-bench scan``, ``eval: {scan: {...}}`` in a sweep, ``--<name>`` on ``ssl-bench eval``).
    Paper / official CIFAR-10 values in brackets; the defaults of the short CPU runs differ only in
    epochs and batch size."""

    num_neighbors: int = setting(20, "K nearest neighbours mined per image [20]")
    num_heads: int = setting(10, "clustering heads trained at once; the one with the lowest SCAN loss is kept [10]")
    num_clusters: int | None = setting(None, "clusters (none: the dataset's number of classes)")
    entropy_weight: float = setting(5.0, "SCAN loss: weight of the entropy of the mean assignment [5.0]")
    scan_epochs: int = setting(50, "SCAN-step epochs [50 on CIFAR-10]")
    self_label_epochs: int = setting(25, "self-labelling epochs [200 on CIFAR-10]")
    batch_size: int = setting(128, "SCAN and self-labelling batch size [128 / 1000]")
    lr: float = setting(1e-4, "Adam learning rate [1e-4]")
    weight_decay: float = setting(1e-4, "Adam weight decay [1e-4]")
    threshold: float = setting(0.99, "self-labelling confidence threshold [0.99]")
    class_balance: bool = setting(True, "self-labelling: class-balanced cross-entropy [true]")
    scan_augment: str = setting("strong", "SCAN-step views of anchors and neighbours: strong, weak or none")
    update_backbone: bool = setting(True, "both stages update the whole network [true]")
    mine_on: str = setting("backbone", "neighbours from: backbone or projector [official code: projector]")
    heads_on: str = setting("backbone", "clustering heads on: backbone or projector (fine-tuned too) [backbone]")
    self_label_lr: float | None = setting(None, "self-labelling Adam lr (none: lr) [1e-4]")
    self_label_update_backbone: bool | None = setting(None, "self-labelling updates the backbone (none: "
                                                            "update_backbone) [true]")
    chunk_size: int = setting(1024, "neighbour mining: query rows per similarity matrix")
    kmeans_init: int = setting(10, "k-means restarts of the baseline (scikit-learn's n_init)")
    seed: int = setting(0, "seed of the heads, the pairs and the augmentations")

    def check(self) -> None:
        positive = ("num_neighbors", "num_heads", "batch_size", "chunk_size", "kmeans_init")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"scan.{name} must be a positive int, got {value!r}")
        for name in ("scan_epochs", "self_label_epochs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"scan.{name} must be an int >= 0, got {getattr(self, name)!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"scan.threshold must be in (0, 1), got {self.threshold}")
        if self.scan_augment not in AUGMENTS:
            raise ConfigError(f"scan.scan_augment must be one of {', '.join(AUGMENTS)}, got '{self.scan_augment}'")
        for name in ("mine_on", "heads_on"):
            if getattr(self, name) not in FEATURES:
                raise ConfigError(f"scan.{name} must be one of {', '.join(FEATURES)}, got '{getattr(self, name)}'")
        if self.self_label_lr is not None and not self.self_label_lr > 0:
            raise ConfigError(f"scan.self_label_lr must be > 0, got {self.self_label_lr}")
        if self.num_clusters is not None and self.num_clusters < 2:
            raise ConfigError(f"scan.num_clusters must be >= 2, got {self.num_clusters}")


AUGMENTS = ("strong", "weak", "none")
FEATURES = ("backbone", "projector")


def batched_views(dm, gen: torch.Generator) -> dict[str, BatchedViewAugment | None]:
    """The batched ``strong`` and ``weak`` views of ``dm``'s images (``none``: no augmentation),
    all drawing from ``gen``."""
    mean, std = tuple(dm.mean), tuple(dm.std)
    views: dict[str, BatchedViewAugment | None] = {
        kind: BatchedViewAugment(view_augment(kind, dm.image_size, mean, std), generator=gen)
        for kind in ("strong", "weak")}
    return {**views, "none": None}


class ClusterModel(nn.Module):
    """Backbone + ``num_heads`` linear clustering heads (SCAN's ``ClusteringModel``), with the
    features standardised first (BatchNorm without affine parameters; not in the official model:
    on the short CPU runs the heads learned faster on standardised features, 30.2% against 27.8%
    with l2-normalised ones, seed 0, frozen tiny-CNN features)."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_clusters: int, num_heads: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_norm = nn.BatchNorm1d(feature_dim, affine=False)
        self.heads = nn.ModuleList(nn.Linear(feature_dim, num_clusters) for _ in range(num_heads))

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.classify(self.backbone(images))

    def classify(self, feats: Tensor) -> list[Tensor]:
        z = self.feature_norm(feats)
        return [head(z) for head in self.heads]


# --------------------------------------------------------------------------- loading and features

def feature_encoders(method: BaseMethod) -> dict[str, nn.Module]:
    """Copies of the pretrained ``backbone`` and, where the method has one, ``projector`` (the
    backbone followed by the projection head; the two share the copied backbone)."""
    backbone = copy.deepcopy(method.backbone)
    encoders: dict[str, nn.Module] = {"backbone": backbone}
    if isinstance(getattr(method, "projector", None), nn.Module):
        encoders["projector"] = nn.Sequential(backbone, copy.deepcopy(method.projector))
    return encoders


@torch.no_grad()
def mine_neighbors(features: Tensor, k: int, chunk_size: int = 1024) -> Tensor:
    """Indices (N, k) of each row's k most cosine-similar other rows, computed ``chunk_size``
    query rows at a time (an N x N similarity matrix is never held)."""
    if not 0 < k < len(features):
        raise ConfigError(f"scan.num_neighbors must be in 1..{len(features) - 1}, got {k}")
    feats = F.normalize(features.float(), dim=1)
    out = []
    for start in range(0, len(feats), chunk_size):
        sim = feats[start:start + chunk_size] @ feats.T
        rows = torch.arange(sim.shape[0], device=sim.device)
        sim[rows, rows + start] = float("-inf")  # never one's own neighbour
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out)


def neighbor_accuracy(neighbors: Tensor, labels: Tensor) -> float:
    """Percent of mined neighbours that share the anchor's label (a label-using diagnostic only)."""
    return 100.0 * float((labels[neighbors] == labels.unsqueeze(1)).float().mean())


def cached_neighbors(path: Path, key: dict[str, Any], compute) -> Tensor:
    """Neighbour indices from ``path`` if it was written for the same ``key``, else computed and saved."""
    if path.is_file():
        try:
            stored = load_checkpoint_file(path, "scan neighbours cache")
        except ConfigError:  # a cache: one that cannot be read safely is computed again and replaced
            stored = {}
        if stored.get("key") == key and isinstance(stored.get("indices"), torch.Tensor):
            return stored["indices"]
    indices = compute()
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"key": key, "indices": indices.cpu()}, tmp)
    os.replace(tmp, path)  # whole or not at all
    return indices


def kmeans_predict(train_x: Tensor, val_x: Tensor, num_clusters: int, n_init: int, seed: int) -> Tensor:
    """k-means (scikit-learn) on l2-normalised train features; cluster ids of the val features."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=num_clusters, n_init=n_init, random_state=seed)
    km.fit(F.normalize(train_x, dim=1).cpu().numpy())
    return torch.from_numpy(km.predict(F.normalize(val_x, dim=1).cpu().numpy()).astype("int64"))


# --------------------------------------------------------------------------- the two stages

def _adam(model: ClusterModel, lr: float, weight_decay: float, train_backbone: bool) -> torch.optim.Optimizer:
    model.backbone.requires_grad_(train_backbone)  # frozen: no backward through the backbone
    params = list(model.heads.parameters()) + (list(model.backbone.parameters()) if train_backbone else [])
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[Tensor]:
    """A shuffled epoch of full batches (the last partial one dropped unless it is the only one)."""
    order = torch.randperm(n, generator=gen)
    count = max(1, n // batch_size)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def train_scan(model: ClusterModel, images: Images, neighbors: Tensor, s: ScanSettings,
               augment: BatchedViewAugment | None, normalise, gen: torch.Generator) -> list[float]:
    """SCAN step: every head minimises Eq. 2 on (anchor, random neighbour) pairs, augmented by
    ``augment`` (``None``: un-augmented). With a frozen backbone and no augmentation the features
    are computed once and only the heads run per step. An epoch's pairs are drawn at its start
    (then the augmentations, batch by batch), so streamed images can be read ahead. Returns the mean
    loss per head per epoch."""
    opt = _adam(model, s.lr, s.weight_decay, s.update_backbone)
    device = next(model.parameters()).device
    feats = embed_images(model.backbone, images, normalise) if augment is None and not s.update_backbone else None

    def epoch_start() -> None:
        model.train()
        if not s.update_backbone:
            model.backbone.eval()

    def epoch_batches() -> Iterable[tuple[Tensor, Tensor | None]]:
        pairs = [torch.cat([idx, neighbors[idx, torch.randint(neighbors.shape[1], (len(idx),), generator=gen)]])
                 for idx in _batches(len(images), s.batch_size, gen)]
        return zip(pairs, image_batches(images, pairs) if feats is None else [None] * len(pairs))

    def batch_loss(batch: tuple[Tensor, Tensor | None]) -> Tensor:
        pair, x = batch
        if feats is not None:
            outputs = model.classify(feats[pair.to(device)])
        else:
            x = x.to(device)  # type: ignore[union-attr]
            outputs = model(augment(x) if augment is not None else normalise(x))
        return sum(losses.scan_loss(*out.chunk(2), entropy_weight=s.entropy_weight) for out in outputs)

    # the heads' summed loss is minimised; the history is its mean per head
    return [loss / len(model.heads) for loss in fit_epochs(opt, s.scan_epochs, epoch_batches, batch_loss,
                                                           epoch_start=epoch_start)]


@torch.no_grad()
def head_losses(model: ClusterModel, images: Images, neighbors: Tensor, normalise, s: ScanSettings) -> list[float]:
    """SCAN loss of every head over the whole (un-augmented) training set: consistency averaged
    over all K neighbours of every anchor, entropy of the mean assignment over all images.
    Uses no labels, so it may choose the head."""
    model.eval()
    device = next(model.parameters()).device
    logits = [torch.cat(parts) for parts in zip(*map_chunks(lambda c: model(normalise(c.to(device))), images))]
    out = []
    for z in logits:
        k = neighbors.shape[1]
        anchor = z.repeat_interleave(k, dim=0)
        neighbour = z[neighbors.reshape(-1).to(z.device)]
        out.append(float(losses.scan_loss(anchor, neighbour, entropy_weight=s.entropy_weight)))
    return out


def train_self_label(model: ClusterModel, head: int, images: Images, s: ScanSettings,
                     weak: BatchedViewAugment, strong: BatchedViewAugment, gen: torch.Generator) -> list[dict]:
    """Self-labelling with head ``head`` (the others are dropped), at ``self_label_lr`` and
    ``self_label_update_backbone`` where set; returns per-epoch loss and the fraction of confident
    samples."""
    model.heads = nn.ModuleList([model.heads[head]])
    update_backbone = s.update_backbone if s.self_label_update_backbone is None else s.self_label_update_backbone
    opt = _adam(model, s.self_label_lr or s.lr, s.weight_decay, update_backbone)
    device = next(model.parameters()).device
    confident = []  # per step: (confident samples, batch size)

    def epoch_start() -> None:
        model.train()
        if not update_backbone:
            model.backbone.eval()

    def epoch_batches() -> Iterable[tuple[Tensor, Tensor]]:
        batches = _batches(len(images), s.batch_size, gen)
        return zip(batches, image_batches(images, batches))

    def batch_loss(batch: tuple[Tensor, Tensor]) -> Tensor:
        x = batch[1].to(device)
        with torch.no_grad():
            weak_logits = model(weak(x))[0]
        confident.append(((weak_logits.softmax(1).max(1).values > s.threshold).sum(), len(x)))
        return losses.self_label_loss(weak_logits, model(strong(x))[0], s.threshold, s.class_balance)

    history = []
    for _ in range(s.self_label_epochs):  # one epoch at a time: the confident fraction is per epoch
        confident.clear()
        loss = fit_epochs(opt, 1, epoch_batches, batch_loss, epoch_start=epoch_start)[0]
        seen = sum(n for _, n in confident)
        history.append({"loss": loss, "confident": int(sum(int(c) for c, _ in confident)) / max(1, seen)})
    return history


@torch.no_grad()
def predict(model: ClusterModel, head: int, images: Images, normalise) -> Tensor:
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(map_chunks(lambda c: model(normalise(c.to(device)))[head].argmax(1).cpu(), images))


# --------------------------------------------------------------------------- the pipeline

def output_dir(run_dir: Path, out: str | Path | None, overwrite: bool) -> Path:
    """``out`` or ``<run dir>/scan``; refuses a directory that already holds a finished result
    unless ``overwrite`` (a cached ``neighbors.pt`` from an interrupted run is reused)."""
    path = Path(out) if out is not None else run_dir / rd.SCAN
    if (path / "summary.json").is_file() and not overwrite:
        raise ConfigError(f"{path} already holds a SCAN result (summary.json); pass --out DIR for a new "
                          f"directory or --overwrite to replace it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_scan(ckpt: str | Path, settings: ScanSettings | None = None, out: str | Path | None = None,
             overwrite: bool = False, data_overrides: dict[str, Any] | None = None,
             device: str | None = None, log=print, memory_limit_mb: float | None = None) -> dict[str, Any]:
    """``ssl-bench scan``: the three stages on a checkpoint (read as ``ssl-bench eval`` reads it,
    ``eval.target.EvalTarget``); returns the summary also written to ``<out>/summary.json``."""
    s = settings or ScanSettings()
    s.check()
    target = EvalTarget(ckpt, overrides={"data": data_overrides or {}})
    return scan_target(target, s, output_dir(target.run_dir, out, overwrite), device, log, memory_limit_mb)


def scan_target(target: EvalTarget, s: ScanSettings, out_dir: Path, device: str | None = None, log=print,
                memory_limit_mb: float | None = None) -> dict[str, Any]:
    """The three stages on ``target`` (a checkpoint, or a model at random init), results in ``out_dir``.
    ``memory_limit_mb``: how much of an image tree is held in memory (default
    ``$SSL_BENCH_TREE_MEMORY_MB``, else 2048; see the module docstring)."""
    method, dm = target.model(), target.dm
    encoders = feature_encoders(method)
    if {s.mine_on, s.heads_on} - set(encoders):
        raise ConfigError(f"scan: {type(method).__name__} has no projector; mine_on and heads_on must be backbone")
    dataset = dm.hparams.dataset
    images, val_images = hold_or_stream([dm.source.train, dm.source.val], dm.image_size, int(dm.hparams.num_workers),
                                        memory_limit_mb, names=(f"scan train ({dataset})", f"scan val ({dataset})"))
    try:
        return _run_scan(target, s, method, encoders, out_dir, images, val_images, device, log)
    finally:
        close_images(images, val_images)


def _run_scan(target: EvalTarget, s: ScanSettings, method: BaseMethod, encoders: dict[str, nn.Module], out_dir: Path,
              images: Images, val_images: Images, device: str | None, log) -> dict[str, Any]:
    """``scan_target`` once the images are held or streamed."""
    dm = target.dm
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    num_clusters = s.num_clusters or dm.num_classes
    normalise = dm.eval_batch_transform
    train, val = dm.source.train, dm.source.val
    labels = train.labels
    start = time.perf_counter()
    summary: dict[str, Any] = {"checkpoint": None if target.ckpt is None else str(target.ckpt),
                               "method": type(method).__name__, "random_init": target.random_init,
                               "dataset": target.cfg["data"]["dataset"], "train_size": len(train),
                               "val_size": len(val), "num_clusters": num_clusters, "settings": asdict(s),
                               "images": {"train": how_held(images), "val": how_held(val_images)}}

    # 1. neighbours, and the k-means baseline on the frozen features the heads will use
    train_x = {name: embed_images(encoders[name].to(dev), images, normalise) for name in {s.mine_on, s.heads_on}}
    val_x = embed_images(encoders[s.heads_on], val_images, normalise)
    key = {"source": {k: str(v) for k, v in target.source().items()}, "k": s.num_neighbors, "n": len(train),
           "mine_on": s.mine_on, "data": {k: str(v) for k, v in sorted(target.cfg["data"].items())}}
    neighbors = cached_neighbors(out_dir / "neighbors.pt", key,
                                 lambda: mine_neighbors(train_x[s.mine_on], s.num_neighbors, s.chunk_size)).cpu()
    summary["neighbor_accuracy"] = neighbor_accuracy(neighbors, labels)
    km = kmeans_predict(train_x[s.heads_on], val_x, num_clusters, s.kmeans_init, s.seed)
    summary["kmeans"] = clustering_metrics(km, val.labels)
    log(f"neighbours: {summary['neighbor_accuracy']:.1f}% share the label; k-means {_fmt(summary['kmeans'])}")

    # 2. SCAN step
    model = ClusterModel(encoders[s.heads_on], val_x.shape[1], num_clusters, s.num_heads).to(dev)
    views = batched_views(dm, gen)
    history = train_scan(model, images, neighbors, s, views[s.scan_augment], normalise, gen)
    head_loss = head_losses(model, images, neighbors, normalise, s)
    best = min(range(len(head_loss)), key=head_loss.__getitem__)
    summary["scan"] = {**clustering_metrics(predict(model, best, val_images, normalise), val.labels),
                       "best_head": best, "head_losses": head_loss, "epoch_losses": history}
    log(f"SCAN (head {best} of {s.num_heads}): {_fmt(summary['scan'])}")

    # 3. self-labelling
    sl_history = train_self_label(model, best, images, s, views["weak"], views["strong"], gen)
    summary["self_label"] = {**clustering_metrics(predict(model, 0, val_images, normalise), val.labels),
                             "epochs": sl_history}
    log(f"self-labelling: {_fmt(summary['self_label'])}")
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["out_dir"] = str(out_dir)
    tmp = out_dir / "scan_model.pt.tmp"
    torch.save({"backbone": model.backbone.state_dict(), "head": model.heads[0].state_dict(),
                "num_clusters": num_clusters, "heads_on": s.heads_on}, tmp)
    os.replace(tmp, out_dir / "scan_model.pt")
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


def _fmt(m: dict[str, float]) -> str:
    return f"ACC {m['acc']:.1f} / NMI {m['nmi']:.1f} / ARI {m['ari']:.1f}"


@register_protocol
class Scan(EvalProtocol):
    """SCAN as an evaluation protocol (``ssl-bench eval --protocol scan``, a sweep's ``eval: {scan:
    {...}}``): the three stages with its settings; the headline is the clustering accuracy
    (Hungarian matching, val split) after self-labelling. Its artefacts (neighbour cache, model,
    summary) go to ``<run dir>/scan/eval-<hash of the settings>/``."""

    name = "scan"
    help = "SCAN clustering (neighbours, SCAN heads, self-labelling); acc: Hungarian-matched val accuracy"
    Settings = ScanSettings
    metric = "acc"
    needs_features = False
    uses_labels = False

    def check(self, target: Any, settings: Any, labelled: Tensor | None) -> None:
        settings.check()

    def run(self, target: Any, settings: Any, labelled: Tensor | None) -> dict[str, float]:
        settings.check()
        digest = hashlib.sha256(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:8]
        out_dir = target.results_dir / rd.SCAN / f"eval-{digest}"
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = scan_target(target, settings, out_dir, log=lambda *_: None)
        return {**{key: summary["self_label"][key] for key in ("acc", "nmi", "ari")},
                "scan_acc": summary["scan"]["acc"], "kmeans_acc": summary["kmeans"]["acc"],
                "neighbor_accuracy": summary["neighbor_accuracy"]}

    def name_part(self, settings: Any) -> str:
        return f"ep{settings.scan_epochs}-{settings.self_label_epochs}"


# --------------------------------------------------------------------------- command line

def _parse_bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"expected true or false, got '{text}'")


def add_arguments(parser) -> None:
    """``ssl-bench scan`` options: ``--ckpt`` or ``--config``, ``--out``, ``--overwrite``,
    ``--print-config``; the settings are ``--scan.<setting> VALUE`` (the config language, read by the
    command) or the short ``--<setting> VALUE`` (``--scan_epochs 10``, ``--num_heads 5``, ...)."""
    parser.add_argument("--ckpt", help="a checkpoint written by ssl-bench pretrain (overrides the config's ckpt)")
    parser.add_argument("--config", help="a SCAN job file (YAML): ckpt, out, device, scan (settings), data "
                                         "(see configs/scan/)")
    parser.add_argument("--out", default=None, help="output directory (default: <run dir>/scan)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier result in the output directory")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the job (checkpoint, output, data overrides, every SCAN setting) and exit")
    group = parser.add_argument_group("SCAN settings", "--scan.<setting> VALUE, or the short --<setting> VALUE")
    for spec in setting_specs(Scan):
        group.add_argument(f"--{spec.name}", type=str, default=None, metavar=spec.name.upper(),
                           help=f"{spec.help} (default {spec.default})")


def settings_from_args(args, base: dict[str, Any] | None = None) -> ScanSettings:
    """``base`` settings (a job file's ``scan`` section, then ``--scan.<setting>``) with the short
    ``--<setting>`` flags on top, each checked as ``ssl-bench eval`` checks a protocol's settings."""
    given = dict(base or {})
    for spec in setting_specs(Scan):
        text = getattr(args, spec.name, None)
        if text is not None:
            given[spec.name] = parse_value(text)
    return make_settings(Scan, given, where="scan")


JOB_KEYS: dict[str, Any] = {"ckpt": str | None, "out": str | None, "device": str | None, "scan": dict, "data": dict}


def load_job(path: str | Path) -> dict[str, Any]:
    """A SCAN job file: ``ckpt`` (the pretraining checkpoint; relative paths from the working
    directory, as ``run.dir`` is), ``out``, ``device``, ``scan`` (:class:`ScanSettings` fields) and
    ``data`` (overrides of the run's data section). Keys and types are checked here, so a typo ends
    in one line before any work starts."""
    path = Path(path)
    job = read_yaml_file(path, "SCAN config file") or {}
    if not isinstance(job, dict):
        raise ConfigError(f"SCAN config file {path} must be a mapping with keys {', '.join(JOB_KEYS)}")
    job = {key: ({} if value is None and JOB_KEYS.get(key) is dict else value) for key, value in job.items()}
    unknown = sorted(set(job) - set(JOB_KEYS), key=str)
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}' in SCAN config {path}; allowed: {', '.join(JOB_KEYS)}"
                          f"{did_you_mean(unknown[0], JOB_KEYS)}")
    check_types(job, JOB_KEYS, "scan config")
    check_kwargs(ScanSettings, job.get("scan", {}), "scan")
    return job
