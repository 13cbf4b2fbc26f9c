"""Methods learn: pretrained briefly on a CIFAR-10 subset with the tiny backbone, the k-NN accuracy
beats the same backbone at random initialisation by a clear margin.

Digits would not show this (raw-pixel k-NN is already ~97%), so these tests use real CIFAR-10
images from ../shared/data. About a minute of CPU per run.

Only SimCLR is asserted so far. With this one-minute budget (186 SGD steps) BYOL, SimSiam and
Barlow Twins did not yet beat the random-init k-NN (31.8%): measured 30.6/33.8 (SGD/LARS), 32.2
and 27.6/30.5 (SGD/LARS). With 12 epochs (100-140 s each) and the settings below: BYOL 35.4,
SimSiam 35.7, Barlow Twins 32.0 -- learning, but not yet by a clear margin. Showing it needs a
longer schedule or better short-run hyperparameters (open work on issue #2, not hidden here).
"""
from __future__ import annotations

import json

import pytest

from ssl_bench.config import apply_overrides, load_config
from ssl_bench.pretrain import build_datamodule, build_method, build_trainer, pretrain

pytestmark = pytest.mark.slow

MARGIN = 4.0  # percentage points of k-NN top-1 over random init
DATA = {"dataset": "cifar10", "batch_size": 128, "num_workers": 0, "pipeline": "batched",
        "train_subset": 4000, "val_subset": 1000, "eval_train_subset": 4000}
MODEL = {"backbone": "tiny_cnn", "backbone_kwargs": {"width": 32}, "proj_hidden_dim": 256, "proj_dim": 64,
         "optimizer": "sgd", "warmup_epochs": 1, "monitor_every_n_steps": 10}
METHOD_ARGS = {
    "simclr": {"lr": 0.3, "temperature": 0.2, "weight_decay": 5e-4},
    "byol": {"optimizer": "lars", "lr": 1.0, "pred_hidden_dim": 256, "weight_decay": 1e-5, "base_tau": 0.99},
    "simsiam": {"lr": 0.1, "pred_hidden_dim": 64, "weight_decay": 5e-4},
    "barlow_twins": {"optimizer": "lars", "lr": 0.3, "weight_decay": 1e-4, "scale_loss": 0.1},
}
AUGMENT = {"simclr": "simclr", "byol": "byol", "simsiam": "simclr", "barlow_twins": "byol"}
EPOCHS = 6
QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "accelerator": "cpu"}


def config(method: str, tmp_path, pipeline: str = "batched") -> dict:
    cfg = load_config(None)
    cfg["model"] = {"name": method, **MODEL, **METHOD_ARGS[method]}
    workers = 2 if pipeline == "per_image" else 0
    cfg["data"] = {**DATA, "augment": {"name": AUGMENT[method]}, "pipeline": pipeline, "num_workers": workers}
    cfg["trainer"] = {"max_epochs": EPOCHS, **QUIET}
    cfg["run"].update(dir=str(tmp_path), name=f"{method}-{pipeline}")
    return cfg


def random_init_knn(method: str, tmp_path) -> float:
    """k-NN top-1 of the same backbone, same seed, before any training (the honest baseline)."""
    cfg = config(method, tmp_path)
    import pytorch_lightning as pl
    pl.seed_everything(cfg["run"]["seed"], verbose=False)
    dm = build_datamodule(cfg["data"])
    model = build_method(cfg["model"], dm.num_classes)
    trainer = build_trainer(cfg["trainer"], tmp_path / "baseline", loggers=[])
    trainer.validate(model, datamodule=dm, verbose=False)
    return float(trainer.callback_metrics["val_knn_top1"])


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> float:
    return random_init_knn("simclr", tmp_path_factory.mktemp("baseline"))


_SUMMARIES: dict[tuple[str, str], dict] = {}


def pretrained(method: str, tmp_path, pipeline: str = "batched") -> dict:
    """Pretrain once per (method, pipeline) in this module; later tests reuse the summary."""
    if (method, pipeline) not in _SUMMARIES:
        _SUMMARIES[method, pipeline] = pretrain(config(method, tmp_path, pipeline))
    return _SUMMARIES[method, pipeline]


@pytest.mark.parametrize("method", ["simclr"])
def test_method_beats_random_init(method, baseline, tmp_path):
    summary = pretrained(method, tmp_path)
    print(f"\n{method}: k-NN top-1 {summary['val_knn_top1']:.2f}% vs random init {baseline:.2f}%, "
          f"probe {summary['val_linear_top1']:.2f}%, rankme {summary['rankme']:.1f}")
    assert summary["val_knn_top1"] > baseline + MARGIN
    assert json.loads((tmp_path / f"{method}-batched" / "summary.json").read_text())["val_knn_top1"] is not None


def test_batched_pipeline_learns_as_well_as_per_image(baseline, tmp_path):
    """Issue #3: same recipe, same schedule; the batched on-device pipeline and torchvision's
    per-image pipeline reach the same k-NN accuracy within run-to-run noise (a few points here)."""
    batched = pretrained("simclr", tmp_path)["val_knn_top1"]
    per_image = pretrained("simclr", tmp_path, pipeline="per_image")["val_knn_top1"]
    print(f"\nsimclr k-NN top-1: batched {batched:.2f}%, per-image {per_image:.2f}%, random init {baseline:.2f}%")
    assert per_image > baseline + MARGIN
    assert abs(batched - per_image) < 3.0
