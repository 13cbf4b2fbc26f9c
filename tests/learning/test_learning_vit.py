"""The ViT-era zoo learns (issue #23): MoCo v3 and MAE, pretrained briefly on the CIFAR-10 subset of the
other learning tests (4,000 images, batch 64) with a tiny ViT, beat the same ViT at random
initialisation (k-NN top-1 on the 10,000 test images) by MARGIN. Each row's baseline is its own
network untrained (``learning_configs.random_init_knn``), not the tiny CNN's.

Settings (configs/cifar10-tiny/<method>.yaml), each measured on seed 0 (k-NN top-1 %):
- MoCo v3: 8x8 patches (16 tokens), width 64, depth 2, frozen random patch projection, AdamW lr 2e-3,
  20 epochs: 30.82 against 26.16 at random init (10 epochs at lr 1e-3: 29.66).
- MAE: 4x4 patches (64 tokens, 16 visible), width 64, depth 2, one-block decoder, k-NN on the mean
  patch token (MAE's [CLS] is not trained by its loss), 20 epochs: 31.42 against 25.14 (10 epochs:
  29.21, 14 epochs: 30.52, but seed 2 at 14 epochs gained only 3.86). MAE's k-NN numbers are low by
  design (its paper evaluates by fine-tuning); in this short run the k-NN clears the margin, so the
  test uses k-NN like the others (the fine-tuning protocol is ``vit_finetune``).

Seeds 0 / 1 / 2 (benchmarks/RESULTS.md): MoCo v3 30.82 / 31.78 / 31.61 against 26.16 / 26.57 / 25.94,
smallest gain +4.66; MAE 31.42 / 30.67 / 30.97 against 25.14 / 25.45 / 25.57, smallest gain +5.22.
I-JEPA has no learning test: +4.05 on seed 0 at its best short-run setting (configs/cifar10-tiny/ijepa.yaml).
CPU cost (one thread, process CPU seconds per run on a quiet machine, baseline included): MoCo v3 ~65,
MAE ~85.
"""
from __future__ import annotations

import pytest

from learning_configs import MARGIN, learning_config, random_init_knn
from ssl_bench.pretrain import pretrain

pytestmark = pytest.mark.slow

SEED0 = {"mocov3": (30.82, 26.16), "mae": (31.42, 25.14)}  # (trained, random init), seed 0, one thread


@pytest.mark.parametrize("method", list(SEED0))
def test_vit_method_beats_random_init(method, tmp_path):
    baseline = random_init_knn(method, tmp_path / "random_init")
    summary = pretrain(learning_config(method, tmp_path))
    print(f"\n{method}: k-NN top-1 {summary['val_knn_top1']:.2f}% vs random init {baseline:.2f}% "
          f"(seed 0 recorded: {SEED0[method][0]:.2f} vs {SEED0[method][1]:.2f})")
    assert summary["val_knn_top1"] > baseline + MARGIN
