"""SCAN ablations on the learning-test SimCLR checkpoints (issue #12): which features the
neighbours are mined on, which features the clustering heads sit on, whether self-labelling
updates the backbone, and how long the SimCLR pretext ran. Baselines: k-means on the frozen
backbone features (the test's baseline) and on the frozen projector output.

    OMP_NUM_THREADS=1 python benchmarks/scan_ablations.py --seeds 0 1 2 [--simclr-epochs 14] \\
        --variants '{"test": {}, "projector": {"mine_on": "projector", "heads_on": "projector"}}'

A variant is a dict of :class:`ssl_bench.eval.scan.ScanSettings` fields (``mine_on``, ``heads_on``,
``self_label_update_backbone``, ``self_label_lr``, ...) replacing those of the test's
``SCAN_SETTINGS``; each runs through ``run_scan``, the pipeline of the CLI and the test. Prints one
JSON line per seed and variant (ACC in %, ``nb``: neighbour purity).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_scan_paws_learning import SCAN_SETTINGS, simclr_checkpoint  # noqa: E402

from ssl_bench.eval import scan  # noqa: E402
from ssl_bench.metrics.clustering import clustering_metrics  # noqa: E402
from ssl_bench.build import build_datamodule  # noqa: E402


@functools.cache
def kmeans_baselines(ckpt: Path, seed: int) -> dict[str, float]:
    """k-means ACC on the frozen backbone features and on the frozen projector output."""
    s = SCAN_SETTINGS(seed)
    method, cfg, _ = scan.load_checkpoint(ckpt)
    dm = build_datamodule(cfg["data"], seed=cfg["run"]["seed"])
    train, val, norm = dm.source.train, dm.source.val, dm.eval_batch_transform
    out = {}
    for name, encoder in scan.feature_encoders(method).items():
        pred = scan.kmeans_predict(scan.embed_images(encoder, train.images, norm), scan.embed_images(encoder, val.images, norm),
                                   dm.num_classes, s.kmeans_init, s.seed)
        out[f"kmeans_{name}"] = round(clustering_metrics(pred, val.labels)["acc"], 1)
    return out


def one_run(ckpt: Path, seed: int, out: Path, **settings) -> dict:
    summary = scan.run_scan(ckpt, dataclasses.replace(SCAN_SETTINGS(seed), **settings), out=out,
                            overwrite=True, log=lambda _: None)
    return {"seed": seed, "nb": round(summary["neighbor_accuracy"], 1), **kmeans_baselines(ckpt, seed),
            "scan": round(summary["scan"]["acc"], 1), "self_label": round(summary["self_label"]["acc"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--simclr-epochs", type=int, default=40, help="the SCAN test's pretext length")
    parser.add_argument("--variants", type=json.loads, default={"test": {}})
    parser.add_argument("--out", default="runs/scan-ablations")
    args = parser.parse_args()
    for name, settings in args.variants.items():
        for seed in args.seeds:
            folder = Path(args.out) / f"seed{seed}"
            ckpt = simclr_checkpoint(folder, seed, args.simclr_epochs)
            row = one_run(ckpt, seed, folder / f"scan-e{args.simclr_epochs}-{name}", **settings)
            row["scan_minus_kmeans_backbone"] = round(row["scan"] - row["kmeans_backbone"], 1)
            print(json.dumps({"variant": name, "simclr_epochs": args.simclr_epochs, **row}), flush=True)


if __name__ == "__main__":
    main()
