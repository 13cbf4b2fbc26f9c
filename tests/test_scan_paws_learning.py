"""SCAN and PAWS learn on a CIFAR-10 subset (tiny CNN, the settings of tests/test_learning.py).

- SCAN on a SimCLR checkpoint clusters the val split better (Hungarian accuracy) than k-means on
  the same frozen backbone features. The pretext matters: after test_learning's 14-epoch SimCLR
  only 26-28% of the mined neighbours share the anchor's class and SCAN minus k-means averaged
  +0.5 points over seeds 0-14, negative on 4; after 40 epochs (purity 30-31%) it is
  +3.5 / +1.8 / +0.8 on seeds 0 / 1 / 2 and +1.1 / +1.0 / +0.6 on fresh seeds 3 / 4 / 5. k-means on
  the SimCLR projector output (31-33%) beats SCAN on every seed, though: the backbone features
  cluster badly under k-means (benchmarks/RESULTS.md). This test runs seed 0 with 40 epochs.
- PAWS with 10% of the labels (400 images) learns (k-NN beats random init by MARGIN), and its
  backbone fine-tuned on the 400 labelled images beats the same backbone trained supervised-only on
  them (same 100-epoch recipe and seed; only the starting weights differ). The support batch is 16
  images per class (160, 2.5x the unlabelled batch of 64: the official CIFAR-10 config's 640
  against 256); with 4 per class (stop 16) fine-tuned and supervised-only tied (-0.9 / +0.7 / +0.1
  points, seeds 0 / 1 / 2). With 16 (2026-12-04, one VM): fine-tuned minus supervised-only
  +1.1 / +3.1 / +1.8 on seeds 0 / 1 / 2 and +1.9 / +0.9 / +1.6 on fresh seeds 3 / 4 / 5 (a
  difference's s.e. is ~0.7 points on the 10,000-image test split). PAWS's frozen evaluations
  (soft-NN 31-35%, linear head on the labelled subset 35-38%) stay below supervised-only (39-40%):
  a strict xfail, so the day they pass the test says so.

Three-seed numbers: benchmarks/scan_paws.py (see benchmarks/RESULTS.md); this module runs seed 0.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from learning_configs import MARGIN, learning_config
from ssl_bench.data.labelled import labelled_indices
from ssl_bench.build import build_datamodule
from ssl_bench.pretrain import pretrain
from ssl_bench.data.recipes import view_augment
from ssl_bench.eval.scan import ScanSettings, load_checkpoint, run_scan
from ssl_bench.fitting import accuracy, train_supervised

pytestmark = pytest.mark.slow

SIMCLR_EPOCHS = 40  # SCAN's pretext: 14 epochs (test_learning's run) gave SCAN minus k-means +0.5 on
# average over 15 seeds, 4 negative; 40 epochs (~2 min of 2-core CPU) +1.5 over 6 seeds, none negative
PAWS_EPOCHS = 14  # PAWS's settings: configs/cifar10-tiny/paws.yaml (model.label_seed follows the run's seed here)
LABEL_FRACTION = 0.1


def SCAN_SETTINGS(seed: int = 0) -> ScanSettings:  # noqa: N802 (a settings factory)
    """Short-run SCAN: the official 50 + 200 epochs of 50,000 images with the whole network at Adam
    1e-4 do not fit a CPU minute. Measured on seed 0 (k-means 27.1%): fine-tuning the backbone at
    1e-4 for 20 epochs with strong views gave 21.8%; heads only at 1e-2 on weak views, 10 epochs,
    26.7% (and self-labelling at 1e-2 then collapsed to 18.0%); heads only on the frozen,
    un-augmented features at 1e-3, 30 epochs: 28.9%, self-labelling (3 epochs, heads only,
    strong views) 29.4%. The last is used."""
    return ScanSettings(scan_epochs=30, self_label_epochs=3, lr=1e-3, update_backbone=False,
                        scan_augment="none", batch_size=256, seed=seed)


def simclr_checkpoint(folder: Path, seed: int = 0, epochs: int = SIMCLR_EPOCHS) -> Path:
    """The SimCLR checkpoint of the learning-test settings trained for ``epochs``, in
    ``folder/simclr-e<epochs>`` (trained once per folder)."""
    cfg = learning_config("simclr", folder / f"simclr-e{epochs}", seed=seed, epochs=epochs)
    ckpt = Path(cfg["run"]["dir"]) / cfg["run"]["name"] / "checkpoints" / "last.ckpt"
    if not (ckpt.parent.parent / "summary.json").is_file():
        pretrain(cfg)
    return ckpt


def paws_config(folder: Path, seed: int = 0, overrides: dict | None = None) -> dict:
    """The test's PAWS run; ``overrides`` replace model arguments of configs/cifar10-tiny/paws.yaml
    (benchmarks/scan_paws.py)."""
    return learning_config("paws", folder, seed=seed, label_seed=seed, **(overrides or {}))


_SCRATCH: dict[int, float] = {}  # supervised-only accuracy per seed (two tests compare with it)


def supervised_baseline(seed: int = 0, init=None) -> float:
    """Val top-1 of tiny_cnn trained on the labelled 10% that PAWS uses (same seed), from scratch or,
    with ``init`` (a pretrained backbone), fine-tuned from it with the same recipe."""
    if init is None and seed in _SCRATCH:
        return _SCRATCH[seed]
    cfg = paws_config(Path("unused"), seed)
    dm = build_datamodule(cfg["data"], seed=cfg["run"]["seed"])
    train = dm.source.train
    idx = labelled_indices(train.labels, LABEL_FRACTION, seed=seed)
    view = view_augment("strong", dm.image_size, dm.mean, dm.std)
    model = train_supervised(train.images[idx], train.labels[idx], view, dm.num_classes,
                             backbone_kwargs=cfg["model"]["backbone_kwargs"], epochs=100, seed=seed, init=init)
    top1 = accuracy(model, dm.source.val.images, dm.source.val.labels, dm.eval_batch_transform)
    if init is None:
        _SCRATCH[seed] = top1
    return top1


def paws_finetuned(folder: Path, seed: int = 0) -> float:
    """The PAWS backbone pretrained in ``folder`` (by :func:`paws_config`), fine-tuned on its labelled
    subset with the supervised-only recipe (PAWS paper, Sec. 5: fine-tuning after pretraining)."""
    ckpt = folder / paws_config(folder, seed)["run"]["name"] / "checkpoints" / "last.ckpt"  # run name: args-independent
    method, _, _ = load_checkpoint(ckpt)
    return supervised_baseline(seed, init=method.backbone)


def test_scan_beats_kmeans_on_the_same_features(learning_runs, tmp_path):
    """On a 40-epoch SimCLR run of test_learning.py's config (seed 0)."""
    summary = run_scan(simclr_checkpoint(learning_runs), SCAN_SETTINGS(0), out=tmp_path / "scan")
    print(f"\nk-means {summary['kmeans']}, SCAN {summary['scan']['acc']:.1f}, self-label "
          f"{summary['self_label']['acc']:.1f}")
    assert summary["scan"]["acc"] > summary["kmeans"]["acc"]
    assert summary["self_label"]["acc"] > summary["kmeans"]["acc"]
    assert json.loads((tmp_path / "scan" / "summary.json").read_text())["scan"]["best_head"] >= 0


_PAWS: dict = {}


def paws_metrics(tmp_path) -> dict:
    """PAWS pretrained once per module (in the first caller's ``tmp_path``): its metrics and folder."""
    if "metrics" not in _PAWS:
        _PAWS["metrics"] = pretrain(paws_config(tmp_path))["all_metrics"]
        _PAWS["folder"] = tmp_path
    return _PAWS["metrics"]


def test_paws_learns(baseline, tmp_path):
    assert learning_config("paws", "x")["data"]["train_subset"] * LABEL_FRACTION == 400
    knn = paws_metrics(tmp_path)["val_knn_top1"]
    print(f"\nPAWS k-NN {knn:.2f}% vs random init {baseline:.2f}%")
    assert knn > baseline + MARGIN


def test_paws_beats_supervised_only_with_the_same_labels(tmp_path):
    """Fine-tuned PAWS against supervised-only: the same 400 labelled images, the same 100-epoch
    recipe and seed; only the starting weights differ (PAWS-pretrained vs random)."""
    paws_metrics(tmp_path)
    finetuned, supervised = paws_finetuned(_PAWS["folder"], 0), supervised_baseline(0)
    print(f"\nPAWS fine-tuned {finetuned:.2f}% vs supervised-only {supervised:.2f}%")
    assert finetuned > supervised


@pytest.mark.xfail(strict=True, reason="short CPU run: PAWS's frozen protocols (soft-NN, linear head on the "
                                       "400 labels) stay 1-8 points below supervised-only; see the module docstring")
def test_paws_frozen_protocols_beat_supervised_only(tmp_path):
    metrics = paws_metrics(tmp_path)
    supervised = supervised_baseline(0)
    print(f"\nPAWS soft-NN {metrics['val_snn_top1']:.2f}%, few-label linear {metrics['val_fewlabel_linear_top1']:.2f}%, "
          f"supervised-only {supervised:.2f}%")
    assert max(metrics["val_snn_top1"], metrics["val_fewlabel_linear_top1"]) > supervised
