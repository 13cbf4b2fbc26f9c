"""Cosine-similarity losses with stop-gradient on the target: BYOL and SimSiam."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def _check(name: str, p: Tensor, z: Tensor) -> None:
    if p.ndim != 2 or p.shape != z.shape:
        raise ValueError(f"{name}: p and z must both be (B, d), got {tuple(p.shape)} and {tuple(z.shape)}")


def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """BYOL (Grill et al., 2020, "Bootstrap Your Own Latent", Eq. 2) for one ordered pair of views.

    ``L = mean_i || p_i/||p_i|| - z_i/||z_i|| ||^2 = mean_i (2 - 2 cos(p_i, z_i))``, where ``p`` is
    the online prediction q(z) and ``z`` the target projection, detached here (stop-gradient: the
    target network is updated only by EMA). Symmetrise by calling it with the views swapped
    (Eq. 2's ``L + L~``). Standard hyperparameters live in the method (EMA 0.996 -> 1, cosine).

    Args:
        p: (B, d) online predictions.
        z: (B, d) target projections (gradients are not propagated into them).
    """
    _check("byol_loss", p, z)
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


def simsiam_loss(p: Tensor, z: Tensor) -> Tensor:
    """SimSiam (Chen & He, 2021, "Exploring Simple Siamese Representation Learning"), Eq. 1 with the
    stop-gradient of Eq. 3: ``D(p, stopgrad(z)) = -mean_i cos(p_i, z_i)``, one half of the
    symmetric loss ``L = D(p1, sg(z2))/2 + D(p2, sg(z1))/2`` (Eq. 4). Its minimum is -1.

    Args:
        p: (B, d) predictor outputs of one view.
        z: (B, d) projections of the other view (detached here).
    """
    _check("simsiam_loss", p, z)
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()
