"""NNCLR (Dwibedi et al., ICCV 2021, "With a Little Help from My Friends: Nearest-Neighbor
Contrastive Learning of Visual Representations")."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import losses
from ..distributed import rank
from ..errors import ConfigError
from .base import BaseMethod
from .heads import mlp
from .queue import FeatureQueue


@torch.no_grad()
def nearest_neighbours(z: Tensor, support: Tensor) -> Tensor:
    """The support-set row with the largest cosine similarity to each row of ``z`` (Eq. 2's NN(z, Q)),
    l2-normalised; no gradient flows through the lookup."""
    z, support = F.normalize(z.float(), dim=1), F.normalize(support.float(), dim=1)
    return support[(z @ support.T).argmax(dim=1)]


class NNCLR(BaseMethod):
    """NNCLR (Dwibedi et al. 2021): the positive of an embedding is its top-1 nearest neighbour
    (cosine) in a support set Q of past embeddings (Sec. 3.2). Eq. 2 with the predictor of Sec. 3.3:
    ``L_i = -log exp(NN(z_i).p_i+ / t) / sum_k exp(NN(z_i).p_k+ / t)`` over the predictions p+ of
    the other view (negatives: the other predictions of the global batch), symmetrised. The support
    set is a FIFO queue (98,304 in the paper; 65,536 here by default) filled with the first view's
    embeddings gathered across ranks. Projector 3 layers (2048) with BN, predictor 4096 -> 256,
    t = 0.1 (paper; 0.2 is the usual CIFAR setting)."""

    def __init__(self, proj_hidden_dim: int = 2048, proj_dim: int = 256, proj_layers: int = 3,
                 pred_hidden_dim: int = 4096, temperature: float = 0.1, queue_size: int = 65536,
                 **base: Any) -> None:
        if queue_size < 1:
            raise ConfigError(f"model.queue_size must be >= 1, got {queue_size}")
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=proj_layers,
                             last_batch_norm=True)
        self.predictor = mlp(proj_dim, pred_hidden_dim, proj_dim)
        self.support = FeatureQueue(queue_size, proj_dim)

    def neighbour(self, z: Tensor) -> Tensor:
        """NN(z, Q); before the first enqueue (the very first step) the embedding itself, detached."""
        if len(self.support) == 0:
            return F.normalize(z.detach().float(), dim=1)
        return nearest_neighbours(z, self.support.contents())

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        z1, z2 = (self.projector(f) for f in feats[:2])
        p1, p2 = self.predictor(z1), self.predictor(z2)
        nn1, nn2 = self.neighbour(z1), self.neighbour(z2)
        t, r = self.hparams.temperature, rank()
        loss = 0.5 * (losses.batch_infonce(nn1, self.gather(p2), t, r) + losses.batch_infonce(nn2, self.gather(p1), t, r))
        self.support.enqueue(F.normalize(z1.detach().float(), dim=1))
        return {"loss": loss, "z": [z1, z2]}
