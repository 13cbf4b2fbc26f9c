"""SCAN and PAWS learn on a CIFAR-10 subset (tiny CNN, the settings of
tests/learning/test_learning_simclr_byol_simsiam_barlow.py). The runs: benchmarks/scan_paws_runs.py.

- SCAN on a SimCLR checkpoint clusters the val split better (Hungarian accuracy) than k-means on
  the same frozen backbone features. The pretext matters: after test_learning's 14-epoch SimCLR
  only 26-28% of the mined neighbours share the anchor's class and SCAN minus k-means averaged
  +0.5 points over seeds 0-14, negative on 4; after 40 epochs (purity 30-31%) it is
  +3.5 / +1.8 / +0.8 on seeds 0 / 1 / 2 and +1.1 / +1.0 / +0.6 on fresh seeds 3 / 4 / 5. k-means on
  the SimCLR projector output (31-33%) beats SCAN on every seed, though: the backbone features
  cluster badly under k-means (benchmarks/RESULTS.md). This test runs seed 0 with 40 epochs.
- PAWS with 10% of the labels (400 images) learns (k-NN beats random init by MARGIN), and its
  backbone fine-tuned on the 400 labelled images keeps up with the same backbone trained
  supervised-only on them (same 100-epoch recipe and seed; only the starting weights differ): within
  TIE points. Seed 0 is a tie, so this test cannot ask for a lead (see below); the lead over seeds is
  benchmarks/scan_paws.py's to show. The support batch is 16
  images per class (160, 2.5x the unlabelled batch of 64: the official CIFAR-10 config's 640
  against 256); with 4 per class (stop 16) fine-tuned and supervised-only tied (-0.9 / +0.7 / +0.1
  points, seeds 0 / 1 / 2). With 16 (2026-12-04, one VM): fine-tuned minus supervised-only
  +1.1 / +3.1 / +1.8 on seeds 0 / 1 / 2 and +1.9 / +0.9 / +1.6 on fresh seeds 3 / 4 / 5 (a
  difference's s.e. is ~0.7 points on the 10,000-image test split), both sides then trained by a
  helper of this test. Since 2026-12-06 both sides are the ``finetune`` protocol of ``ssl-bench
  eval`` (the checkpoint, and the config's network at random init: the one random-init path), which
  starts the head from another draw: seed 0 gives 40.24 against 39.95 (+0.29, two threads), inside
  one standard error; the lead is thin at this scale. With one thread (each test process's since
  2026-12-07) seed 0 gives 39.87 against 39.91 (-0.04), and fine-tuning seeds 1 / 2 on the same
  checkpoint and labels +0.28 / -0.31: on seed 0 PAWS and supervised-only tie, so "beats" was a coin
  flip there; seeds 1 / 2 lead by +1.51 / +1.99 (two threads). PAWS's frozen evaluations
  (soft-NN 31-35%, linear head on the labelled subset 35-38%) stay below supervised-only (39-40%):
  a strict xfail, so the day they pass the test says so.

Three-seed numbers: benchmarks/scan_paws.py (see benchmarks/RESULTS.md); this module runs seed 0.
"""
from __future__ import annotations

import json

import pytest

from learning_configs import MARGIN, learning_config
from scan_paws_runs import (LABEL_FRACTION, SCAN_SETTINGS, paws_config, paws_finetuned, simclr_checkpoint,
                            supervised_baseline)
from ssl_bench.pretrain import pretrain
from ssl_bench.eval.scan import run_scan

pytestmark = pytest.mark.slow


def test_scan_beats_kmeans_on_the_same_features(learning_runs, tmp_path):
    """On a 40-epoch SimCLR run of test_learning_simclr_byol_simsiam_barlow.py's config (seed 0)."""
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


TIE = 1.0  # points: about 1.4 standard errors of a difference of two accuracies on 10,000 images


def test_paws_finetuned_keeps_up_with_supervised_only_with_the_same_labels(tmp_path):
    """Fine-tuned PAWS against supervised-only: the same 400 labelled images, the same 100-epoch
    recipe and seed; only the starting weights differ (PAWS-pretrained vs random). It fails when
    PAWS's pretraining leaves the backbone a worse start for fine-tuning than random weights."""
    paws_metrics(tmp_path)
    finetuned, supervised = paws_finetuned(_PAWS["folder"], 0), supervised_baseline(0)
    print(f"\nPAWS fine-tuned {finetuned:.2f}% vs supervised-only {supervised:.2f}%")
    assert finetuned > supervised - TIE


@pytest.mark.xfail(strict=True, reason="short CPU run: PAWS's frozen protocols (soft-NN, linear head on the "
                                       "400 labels) stay 1-8 points below supervised-only; see the module docstring")
def test_paws_frozen_protocols_beat_supervised_only(tmp_path):
    metrics = paws_metrics(tmp_path)
    supervised = supervised_baseline(0)
    print(f"\nPAWS soft-NN {metrics['val_snn_top1']:.2f}%, few-label linear {metrics['val_fewlabel_linear_top1']:.2f}%, "
          f"supervised-only {supervised:.2f}%")
    assert max(metrics["val_snn_top1"], metrics["val_fewlabel_linear_top1"]) > supervised
