"""LeJEPA learns (issue #24): pretrained briefly on the CIFAR-10 subset of the other learning tests
(4,000 images, batch 64) with the tiny CNN of the CNN rows (LeJEPA needs no ViT), it beats the same
CNN at random initialisation (k-NN top-1 on the 10,000 test images) by MARGIN. Settings and measured
numbers: configs/cifar10-tiny/lejepa.yaml. CPU cost: ~63 s training + ~3 s baseline (one thread).

MSN has no learning test: with the tiny ViT of MoCo v3's test its best short runs gained 2.2-2.4
points over random init (configs/cifar10-tiny/msn.yaml lists the variants tried), below MARGIN.
"""
from __future__ import annotations

import pytest

from learning_configs import MARGIN, learning_config, random_init_knn
from ssl_bench.pretrain import pretrain

pytestmark = pytest.mark.slow

SEED0 = {"lejepa": (39.36, 28.71)}  # (trained, random init), seed 0, one thread


@pytest.mark.parametrize("method", list(SEED0))
def test_lejepa_beats_random_init(method, tmp_path):
    baseline = random_init_knn(method, tmp_path / "random_init")
    summary = pretrain(learning_config(method, tmp_path))
    print(f"\n{method}: k-NN top-1 {summary['val_knn_top1']:.2f}% vs random init {baseline:.2f}% "
          f"(seed 0 recorded: {SEED0[method][0]:.2f} vs {SEED0[method][1]:.2f})")
    assert summary["val_knn_top1"] > baseline + MARGIN
