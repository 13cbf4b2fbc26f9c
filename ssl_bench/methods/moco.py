"""MoCo v2+ (Chen et al. 2020, "Improved Baselines with Momentum Contrastive Learning")."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import losses
from ..errors import ConfigError
from .heads import mlp
from .momentum import BaseMomentumMethod
from .queue import FeatureQueue


class MoCoV2Plus(BaseMomentumMethod):
    """Momentum Contrast (He et al. 2020, Algorithm 1) with the v2 improvements (Chen et al. 2020:
    MLP projection head, t = 0.2, stronger augmentation) and the "+" of the common CIFAR setting:
    BN in the projector, symmetric loss, momentum 0.99 -> 1 (cosine).

    Per step (Algorithm 1): q = g(f(x1)), k = g_m(f_m(x2)) (no gradient), InfoNCE (MoCo Eq. 1) with k
    as the positive and the queue as the K negatives, symmetrised over the two views; then both views'
    keys (gathered over ranks) are enqueued, the oldest dequeued. Queue size 65,536 (paper)."""

    def __init__(self, proj_hidden_dim: int = 2048, proj_dim: int = 256, temperature: float = 0.2,
                 queue_size: int = 65536, **base: Any) -> None:
        if queue_size < 1:
            raise ConfigError(f"model.queue_size must be >= 1, got {queue_size}")
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)
        self.teacher_projector = self.make_teacher(self.projector)
        self.queue = FeatureQueue(queue_size, proj_dim)

    def ssl_loss(self, feats: list[Tensor], teacher_feats: list[Tensor]) -> dict[str, Any]:
        q1, q2 = (self.projector(f) for f in feats[:2])
        with torch.no_grad():
            k1, k2 = (self.teacher_projector(t) for t in teacher_feats[:2])
        negatives = self.queue.contents()
        t = self.hparams.temperature
        loss = 0.5 * (losses.infonce(q1, k2, negatives, t) + losses.infonce(q2, k1, negatives, t))
        self.queue.enqueue(torch.nn.functional.normalize(torch.cat([k1, k2]).float(), dim=1))
        return {"loss": loss, "z": [q1, q2]}
