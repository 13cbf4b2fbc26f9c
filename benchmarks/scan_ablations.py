"""SCAN ablations on the learning-test SimCLR checkpoints (issue #12): which features the
neighbours are mined on, which features the clustering heads sit on, whether self-labelling
updates the backbone, and how long the SimCLR pretext ran. Baselines: k-means on the frozen
backbone features (the test's baseline) and on the frozen projector output.

    OMP_NUM_THREADS=1 python benchmarks/scan_ablations.py --seeds 0 1 2 [--simclr-epochs 14] \\
        --variants '{"test": {}, "projector": {"mine_on": "projector", "heads_on": "projector"}}'

Variant keys: ``mine_on`` / ``heads_on`` (``backbone`` or ``projector``), ``self_label_backbone``
(bool), ``self_label_lr``, and any :class:`ssl_bench.scan.ScanSettings` field (replacing the test's
``SCAN_SETTINGS``). Prints one JSON line per seed and variant (ACC in %, ``nb``: neighbour purity).
The stages are ssl_bench.scan's own functions, called here one by one so that a variant can swap
what they run on; ``run_scan`` is the pipeline the CLI and the test use.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402
from test_scan_paws_learning import SCAN_SETTINGS, simclr_checkpoint  # noqa: E402

from ssl_bench import scan  # noqa: E402
from ssl_bench.metrics.clustering import clustering_metrics  # noqa: E402
from ssl_bench.pretrain import build_datamodule  # noqa: E402


def acc(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return round(clustering_metrics(pred, labels)["acc"], 1)


def one_run(ckpt: Path, seed: int, mine_on: str = "backbone", heads_on: str = "backbone",
            self_label_backbone: bool = False, self_label_lr: float | None = None, **settings) -> dict:
    s = dataclasses.replace(SCAN_SETTINGS(seed), **settings)
    method, cfg, _ = scan.load_checkpoint(ckpt)
    dm = build_datamodule(cfg["data"])
    train, val, norm = dm.source.train, dm.source.val, dm.eval_batch_transform
    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    encoders = {"backbone": copy.deepcopy(method.backbone)}
    encoders["projector"] = torch.nn.Sequential(encoders["backbone"], copy.deepcopy(method.projector))
    train_x = {k: scan.embed(e, train.images, norm) for k, e in encoders.items()}
    val_x = {k: scan.embed(e, val.images, norm) for k, e in encoders.items()}
    neighbors = scan.mine_neighbors(train_x[mine_on], s.num_neighbors, s.chunk_size)
    row = {"seed": seed, "nb": round(scan.neighbor_accuracy(neighbors, train.labels), 1)}
    for k in encoders:
        row[f"kmeans_{k}"] = acc(scan.kmeans_predict(train_x[k], val_x[k], dm.num_classes, s.kmeans_init, s.seed), val.labels)
    model = scan.ClusterModel(encoders[heads_on], train_x[heads_on].shape[1], dm.num_classes, s.num_heads)
    views = scan.batched_views(dm, gen)
    scan.train_scan(model, train.images, neighbors, s, views[s.scan_augment], norm, gen)
    losses = scan.head_losses(model, train.images, neighbors, norm, s)
    best = min(range(len(losses)), key=losses.__getitem__)
    row["scan"] = acc(scan.predict(model, best, val.images, norm), val.labels)
    sl = dataclasses.replace(s, update_backbone=self_label_backbone, lr=self_label_lr or s.lr)
    model.backbone.requires_grad_(self_label_backbone)
    scan.train_self_label(model, best, train.images, sl, views["weak"], views["strong"], gen)
    row["self_label"] = acc(scan.predict(model, 0, val.images, norm), val.labels)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--simclr-epochs", type=int, default=40, help="the SCAN test's pretext length")
    parser.add_argument("--variants", type=json.loads, default={"test": {}})
    parser.add_argument("--out", default="runs/scan-ablations")
    args = parser.parse_args()
    for name, kwargs in args.variants.items():
        for seed in args.seeds:
            ckpt = simclr_checkpoint(Path(args.out) / f"seed{seed}", seed, args.simclr_epochs)
            row = one_run(ckpt, seed, **kwargs)
            row["scan_minus_kmeans_backbone"] = round(row["scan"] - row["kmeans_backbone"], 1)
            print(json.dumps({"variant": name, "simclr_epochs": args.simclr_epochs, **row}), flush=True)


if __name__ == "__main__":
    main()
