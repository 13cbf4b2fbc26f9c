"""Methods learn: pretrained briefly on a CIFAR-10 subset with the tiny backbone, the k-NN accuracy
beats the same backbone at random initialisation by a clear margin.

Digits would not show this (raw-pixel k-NN is already ~97%), so these tests use real CIFAR-10
images from ../shared/data: 4,000 training images (also the k-NN bank), tiny_cnn width 16, batch
64, 14 epochs (875 steps), about 50-75 s of 2-core CPU per method. The k-NN is measured once, at
the end, on the full 10,000-image test split: its standard error is ~0.5 points there, against
~1.5 points on a 1,000-image subset, which was as large as the effect being shown.

These are short-run settings, not the papers' 800-epoch ResNet-18 ones (those are in
configs/cifar10/). Each choice was measured against the one before it:
- crop scale (0.2, 1) rather than (0.08, 1): weaker crops learn faster early on (6 epochs: BYOL
  32.9 -> 34.7, SimSiam 32.2 -> 33.8);
- batch 64 rather than 128: twice the steps for the same images, and no slower per image on CPU;
- LARS for BYOL and Barlow Twins (SGD: BYOL 30.6 against 33.8 with LARS, 6 epochs);
- Barlow Twins' lambda raised from 0.0051 (tuned for an 8192-d projector) to 0.05 for the 64-d one:
  RankMe of the embedding 11 -> 20, k-NN 34.7 -> 36.0 (seed 1, 10 epochs).

Measured (k-NN top-1 %, seeds 0 / 1 / 2; the seed picks the subset, the init and the augmentation;
seed 0 from ``pytest -s tests/test_learning.py``, seeds 1 and 2 with ``pretrain(config(m, dir, seed=s))``
and ``random_init_knn("simclr", dir, seed=s)`` from this module):
    method        seed 0   seed 1   seed 2     (14 epochs; smallest gain over random init)
    random init    28.71    29.76    28.67
    SimCLR         40.08    38.60    41.66     +8.8
    BYOL           35.10    37.12    34.37     +5.7
    SimSiam        35.91    36.81    36.92     +7.1
    Barlow Twins   37.01    36.55    36.66     +6.8

With 10 epochs the smallest gains were +5.1 (SimSiam), +5.4 (BYOL) and +5.4 (Barlow Twins); with
6 epochs at batch 128 and width 32, none of the three cleared the baseline by 4 points. The
batched and per-image pipelines gave 40.08 and 39.87 for SimCLR (seed 0).
A different CPU changes the floating-point rounding and so acts like another seed; MARGIN (4 points)
sits 1.7 points below the smallest gain measured.
"""
from __future__ import annotations

import json

import pytest

from ssl_bench.config import load_config
from ssl_bench.build import build_datamodule, build_trainer, untrained_method
from ssl_bench.pretrain import pretrain

pytestmark = pytest.mark.slow

MARGIN = 4.0  # percentage points of k-NN top-1 over random init
EPOCHS = 14
DATA = {"dataset": "cifar10", "batch_size": 64, "num_workers": 0, "pipeline": "batched",
        "train_subset": 4000, "val_subset": None, "eval_train_subset": 4000}
# The learning rates below were tuned at batch 64 (when the lr was not yet scaled by the batch): they
# are stated at a reference batch of 64, so the optimiser uses them as tuned, and the measured ranges hold.
MODEL = {"backbone": "tiny_cnn", "backbone_kwargs": {"width": 16}, "proj_hidden_dim": 256, "proj_dim": 64,
         "optimizer": "sgd", "warmup_epochs": 1, "monitor_every_n_steps": 10, "reference_batch_size": 64}
METHOD_ARGS = {
    "simclr": {"lr": 0.3, "temperature": 0.2, "weight_decay": 5e-4},
    "byol": {"optimizer": "lars", "lr": 2.0, "pred_hidden_dim": 256, "weight_decay": 1e-5, "base_tau": 0.99},
    "simsiam": {"lr": 0.3, "pred_hidden_dim": 64, "weight_decay": 5e-4},
    "barlow_twins": {"optimizer": "lars", "lr": 2.0, "weight_decay": 1e-4, "scale_loss": 0.1, "lambd": 0.05},
}
AUGMENT = {"simclr": "simclr", "byol": "byol", "simsiam": "simclr", "barlow_twins": "byol"}
CROP_SCALE = [0.2, 1.0]
QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "accelerator": "cpu",
         "check_val_every_n_epoch": EPOCHS}


def config(method: str, tmp_path, pipeline: str = "batched", seed: int | None = None,
           method_args: dict | None = None, augment: dict | None = None, epochs: int = EPOCHS) -> dict:
    """The test's run config; ``seed`` (default: the run default, 0) is how the table's seeds 1 and 2
    were run. Other learning-test modules pass their own ``method_args`` (merged over ``MODEL``) and
    ``augment`` (a recipe dict; ``crop_scale`` defaults to ``CROP_SCALE``) and may shorten ``epochs``."""
    cfg = load_config(None)
    if seed is not None:
        cfg["run"]["seed"] = seed
    args = METHOD_ARGS[method] if method_args is None else method_args
    cfg["model"] = {"name": method, **MODEL, **args}
    workers = 2 if pipeline == "per_image" else 0
    recipe = {"name": AUGMENT[method]} if augment is None else dict(augment)
    recipe.setdefault("crop_scale", CROP_SCALE)
    cfg["data"] = {**DATA, "augment": recipe, "pipeline": pipeline, "num_workers": workers}
    cfg["trainer"] = {"max_epochs": epochs, **QUIET, "check_val_every_n_epoch": epochs}
    cfg["run"].update(dir=str(tmp_path), name=f"{method}-{pipeline}")
    return cfg


def random_init_knn(method: str, tmp_path, seed: int | None = None) -> float:
    """k-NN top-1 of the same backbone, same seed, before any training (the honest baseline)."""
    return untrained_knn(config(method, tmp_path, seed=seed), tmp_path)


def untrained_knn(cfg: dict, tmp_path) -> float:
    """k-NN top-1 of the network ``cfg`` builds, before any training (same seed, same data)."""
    dm = build_datamodule(cfg["data"], seed=cfg["run"]["seed"])
    model = untrained_method(cfg["model"], dm, cfg["run"]["seed"])
    trainer = build_trainer(cfg["trainer"], tmp_path / "baseline", loggers=[])
    trainer.validate(model, datamodule=dm, verbose=False)
    return float(trainer.callback_metrics["val_knn_top1"])


_SUMMARIES: dict[tuple[str, str], dict] = {}


def pretrained(method: str, folder, pipeline: str = "batched") -> dict:
    """Pretrain once per (method, pipeline) into ``folder`` (the session's ``learning_runs``); later
    tests reuse the summary, and test_scan_paws_learning.py the SimCLR checkpoint."""
    if (method, pipeline) not in _SUMMARIES:
        _SUMMARIES[method, pipeline] = pretrain(config(method, folder, pipeline))
    return _SUMMARIES[method, pipeline]


@pytest.mark.parametrize("method", list(METHOD_ARGS))
def test_method_beats_random_init(method, baseline, learning_runs):
    summary = pretrained(method, learning_runs)
    print(f"\n{method}: k-NN top-1 {summary['val_knn_top1']:.2f}% vs random init {baseline:.2f}%, "
          f"probe {summary['val_linear_top1']:.2f}%, rankme {summary['rankme']:.1f}")
    assert summary["val_knn_top1"] > baseline + MARGIN
    assert json.loads((learning_runs / f"{method}-batched" / "summary.json").read_text())["val_knn_top1"] is not None


def test_batched_pipeline_learns_as_well_as_per_image(baseline, learning_runs):
    """Issue #3: same recipe, same schedule; the batched on-device pipeline and torchvision's
    per-image pipeline reach the same k-NN accuracy within run-to-run noise (a few points here)."""
    batched = pretrained("simclr", learning_runs)["val_knn_top1"]
    per_image = pretrained("simclr", learning_runs, pipeline="per_image")["val_knn_top1"]
    print(f"\nsimclr k-NN top-1: batched {batched:.2f}%, per-image {per_image:.2f}%, random init {baseline:.2f}%")
    assert per_image > baseline + MARGIN
    assert abs(batched - per_image) < 3.0
