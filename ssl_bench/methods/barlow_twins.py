"""Barlow Twins (Zbontar et al., ICML 2021)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from .. import losses
from .base import BaseMethod
from .heads import mlp


class BarlowTwins(BaseMethod):
    """Barlow Twins (Zbontar et al. 2021): 3-layer projector with BN (Sec. 4, 8192 units on
    ImageNet; 2048 is the usual CIFAR setting), Eq. 1 on the cross-correlation of the globally
    gathered, per-dimension standardised embeddings, lambda = 0.0051."""

    def __init__(self, proj_hidden_dim: int = 2048, proj_dim: int = 2048, lambd: float = 0.0051,
                 scale_loss: float = 1.0, **base: Any) -> None:
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=3)

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        z1, z2 = (self.projector(f) for f in feats[:2])
        loss = losses.barlow_twins_loss(self.gather(z1), self.gather(z2), self.hparams.lambd)
        return {"loss": self.hparams.scale_loss * loss, "z": [z1, z2]}
