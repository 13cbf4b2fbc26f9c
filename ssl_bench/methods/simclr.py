"""SimCLR (Chen et al., ICML 2020)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from .. import distributed, losses
from .base import BaseMethod
from .heads import mlp


class SimCLR(BaseMethod):
    """A Simple Framework for Contrastive Learning (Chen et al. 2020). Projector g (Sec. 2.1:
    Linear-ReLU-Linear, here with BN as in SimCLR v2), NT-Xent over both views (Eq. 1) with the
    negatives of every rank gathered with gradients."""

    def __init__(self, proj_hidden_dim: int = 2048, proj_dim: int = 256, temperature: float = 0.2,
                 **base: Any) -> None:
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        z1, z2 = (self.projector(f) for f in feats[:2])
        loss = losses.nt_xent(z1, z2, self.hparams.temperature, self.gather(z1), self.gather(z2),
                              rank=distributed.rank())  # plain torch.distributed: also without a Trainer
        return {"loss": loss, "z": [z1, z2]}
