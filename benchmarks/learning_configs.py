"""The CPU learning tests' run configs and their random-init baseline (a helper module, not a test).

Each method's (or variant's) short-run settings live in one file, ``configs/cifar10-tiny/<row>.yaml``:
4,000 CIFAR-10 training images (also the k-NN bank), tiny_cnn width 16, batch 64, crops (0.2, 1),
k-NN on the full 10,000-image test split, lrs stated at the batch they were tuned at
(``reference_batch_size: 64``). ``tests/learning/test_learning*.py`` read them here; the benchmarks and a
user read the same files (``ssl-bench pretrain --config configs/cifar10-tiny/simclr.yaml``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl_bench.build import untrained_knn
from ssl_bench.config import load_config

MARGIN = 4.0  # percentage points of k-NN top-1 over random init that a learning test asks for
TINY = Path(__file__).resolve().parents[1] / "configs" / "cifar10-tiny"
ROWS = sorted(p.stem for p in TINY.glob("*.yaml"))


def learning_config(row: str, run_dir: str | Path, seed: int | None = None, pipeline: str = "batched",
                    epochs: int | None = None, **model_overrides: Any) -> dict[str, dict[str, Any]]:
    """The run config of ``configs/cifar10-tiny/<row>.yaml`` in ``run_dir`` (run name
    ``<method>-<pipeline>``), with ``seed`` (default: the run default, 0), another ``pipeline``
    (``per_image`` reads with 2 workers), another length, or model arguments changed (tuning)."""
    cfg = load_config(TINY / f"{row}.yaml")
    if seed is not None:
        cfg["run"]["seed"] = seed
    cfg["model"].update(model_overrides)
    cfg["data"].update(pipeline=pipeline, num_workers=2 if pipeline == "per_image" else 0)
    if epochs is not None:
        cfg["trainer"].update(max_epochs=epochs, check_val_every_n_epoch=epochs)
    cfg["run"].update(dir=str(run_dir), name=f"{cfg['model']['name']}-{pipeline}")
    return cfg


def random_init_knn(row: str, tmp_path: Path, seed: int | None = None) -> float:
    """``untrained_knn`` of ``row``'s network (the single tiny CNN of every method but CMC)."""
    return untrained_knn(learning_config(row, tmp_path, seed=seed), tmp_path)
