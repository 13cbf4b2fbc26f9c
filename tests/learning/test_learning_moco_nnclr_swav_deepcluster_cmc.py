"""Method zoo, part 1 learns: MoCo v2+, NNCLR, SwAV, DeepCluster v2 and CMC, pretrained briefly on the
CIFAR-10 subset of tests/learning/test_learning_simclr_byol_simsiam_barlow.py (4,000 images,
tiny_cnn width 16, batch 64), each beat the same architecture at random initialisation (k-NN top-1 on the 10,000 test images) by MARGIN.

CMC's baseline is CMC's own random-init network (one tiny CNN per Lab view, features concatenated),
not the single RGB tiny CNN of the other methods.

Short-run settings (configs/cifar10-tiny/<method>.yaml, 10 epochs), tuned on seed 0; measured
2026-12-06 with ``benchmarks/learning_seeds.py`` (k-NN top-1 %, seeds 0 / 1 / 2, each seed with its
own training order; seed 0 reproduced the values tuned on it to the last digit):
    method          seed 0   seed 1   seed 2   smallest gain
    random init      28.71    29.76    28.67   (tests/learning/test_learning_simclr_byol_simsiam_barlow.py's table)
    MoCo v2+         37.54    37.70    38.16   +7.9
    NNCLR            35.19    35.68    36.93   +5.9
    DeepCluster v2   35.42    35.88    33.56   +4.9
    CMC random init  28.71    30.06    28.75   (CMC's own two-encoder network)
    CMC (L, ab)      34.84    36.05    35.91   +6.0
    SwAV             35.92    36.24    35.81   +6.5
DeepCluster v2 clears MARGIN by less than a point on one seed: watch it.
Tuning on seed 0: DeepCluster v2 with SGD lr 0.3 and 2 x 100 prototypes reached 29.91 (LARS lr 2.0
and 3 x 30: 35.42); SwAV with SGD and 100 prototypes 30.75 (with 2 small 16x16 crops) and 31.08
(without), LARS lr 2.0 with 30 prototypes 33.30, but seeds 1 and 2 only 30.33 and 29.34 (RankMe 3-4:
the codes used few dimensions); with the queue (512, from epoch 1) removed, 35.92 / 36.21 / 36.31
(RankMe 11-12). With batch 64 and 30 prototypes a batch already holds ~2 samples per prototype for
Sinkhorn's equipartition, and early queued embeddings are stale (the paper starts its queue after
15 ImageNet epochs). SwAV's seeds were run with one torch thread each, two runs side by side.
MoCo v2+ with 14 epochs: 38.46 (seed 0).
"""
from __future__ import annotations

import pytest

from ssl_bench.pretrain import pretrain
from learning_configs import MARGIN, learning_config, untrained_knn

pytestmark = pytest.mark.slow

ASSERTED = ["moco_v2plus", "nnclr", "deepcluster_v2", "cmc", "swav"]


@pytest.mark.parametrize("method", ASSERTED)
def test_zoo_method_beats_random_init(method, baseline, tmp_path):
    cfg = learning_config(method, tmp_path)  # configs/cifar10-tiny/<method>.yaml
    reference = untrained_knn(cfg, tmp_path) if method == "cmc" else baseline
    summary = pretrain(cfg)
    print(f"\n{method}: k-NN top-1 {summary['val_knn_top1']:.2f}% vs random init {reference:.2f}%, "
          f"{summary['fit_seconds']:.0f} s")
    assert summary["val_knn_top1"] > reference + MARGIN
