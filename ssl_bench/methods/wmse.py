"""W-MSE (Ermolov et al., ICML 2021)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import losses
from ..distributed import all_reduce_sum, rank
from ..errors import ConfigError
from .base import BaseMethod
from .heads import mlp


class WMSE(BaseMethod):
    """Whitening MSE (Ermolov et al. 2021, "Whitening for Self-Supervised Representation Learning"),
    Algorithm 1:

        z_i = projector(encoder(view_i))        for the d views (2: "W-MSE 2"; 4: "W-MSE 4")
        repeat w_iter times: split the batch into random sub-batches of w_size,
            whiten each view per sub-batch (Cholesky, Eq. 4-5)
        loss = mean over view pairs of || normalise(w_i) - normalise(w_j) ||^2   (Eq. 6)

    Hyperparameters (Sec. 5, CIFAR): projector 1024 hidden with BN, 64-d embedding, whitening size 128
    (>= 2x the embedding dimension, a config error otherwise), 1 iteration, Adam lr 3e-3, wd 1e-6.
    Every view of the batch is used: 4 views come from the data recipe (e.g. two more crops of the
    global size: ``num_small_crops: 2, small_crop_size: 32``). Under DDP the embeddings are gathered
    with gradients and rank 0's random sub-batch split is shared, so every rank whitens the same
    global sub-batches.
    """

    def __init__(self, proj_hidden_dim: int = 1024, proj_dim: int = 64, whiten_size: int = 128,
                 whiten_iters: int = 1, whiten_eps: float = 0.0, **base: Any) -> None:
        if whiten_size < 2 * proj_dim:
            raise ConfigError(f"model.whiten_size must be >= 2 x model.proj_dim = {2 * proj_dim} "
                              f"for a well-conditioned covariance, got {whiten_size}")
        if whiten_iters < 1:
            raise ConfigError(f"model.whiten_iters must be >= 1, got {whiten_iters}")
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)

    def shared_permutations(self, n: int, device: torch.device) -> Tensor:
        """``whiten_iters`` random permutations of range(n), drawn on rank 0 and shared with all ranks."""
        perms = torch.stack([torch.randperm(n, device=device) for _ in range(self.hparams.whiten_iters)])
        return all_reduce_sum(perms if rank() == 0 else torch.zeros_like(perms))

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        z = [self.projector(f) for f in feats]
        gathered = [self.gather(zi) for zi in z]
        perms = self.shared_permutations(gathered[0].shape[0], gathered[0].device)
        loss = losses.wmse_loss(gathered, perms, self.hparams.whiten_size, self.hparams.whiten_eps)
        return {"loss": loss, "z": z[:2]}
