"""InfoMin learns: pretrained briefly on the CIFAR-10 subset of tests/test_learning.py (4,000 images,
tiny_cnn width 16, batch 64, 10 epochs; configs/cifar10-tiny/infomin.yaml), its k-NN top-1 on the
10,000 test images beats the same network at random initialisation by MARGIN.

Measured with ``benchmarks/learning_seeds.py`` (k-NN top-1 %, one torch thread): SEE_RESULTS
"""
from __future__ import annotations

import pytest

from learning_configs import MARGIN, learning_config
from ssl_bench.pretrain import pretrain

pytestmark = pytest.mark.slow


def test_infomin_beats_random_init(baseline, tmp_path):
    summary = pretrain(learning_config("infomin", tmp_path))
    print(f"\ninfomin: k-NN top-1 {summary['val_knn_top1']:.2f}% vs random init {baseline:.2f}%, "
          f"{summary['fit_seconds']:.0f} s")
    assert summary["val_knn_top1"] > baseline + MARGIN
