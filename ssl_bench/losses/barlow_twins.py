"""Barlow Twins (Zbontar et al., 2021, "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction"), Eq. 1 and Algorithm 1."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def barlow_twins_loss(z1: Tensor, z2: Tensor, lambd: float = 0.0051, eps: float = 1e-5) -> Tensor:
    """Barlow Twins redundancy-reduction loss (Zbontar et al. 2021, Eq. 1; Algorithm 1).

    Each embedding dimension is standardised over the batch, ``(z - mean) / sqrt(var + eps)``
    with the biased variance (as ``BatchNorm1d(affine=False)`` in training mode); then
    ``C = z1n^T z2n / N`` is the (d, d) cross-correlation matrix and::

        L = sum_i (1 - C_ii)^2 + lambd * sum_i sum_{j != i} C_ij^2

    Standard hyperparameters: ``lambd = 0.0051`` (paper, Sec. 4 / Appendix; ~1/d for the 8192-d
    projector); the scale-loss factor of the official code is not applied (it rescales the
    learning rate only).

    Args:
        z1, z2: (N, d) projections of the two views. Under DDP the caller passes the globally
            gathered batch, so C is the global cross-correlation.
        lambd: weight of the off-diagonal (redundancy reduction) term.
        eps: variance epsilon of the standardisation (BatchNorm's default).

    Returns:
        Scalar tensor. Half-precision inputs are computed in float32.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"barlow_twins_loss: z1 and z2 must both be (N, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    if n < 2:
        raise ValueError(f"barlow_twins_loss: need at least 2 samples to standardise, got {n}")
    dtype = torch.promote_types(z1.dtype, torch.float32)
    z1n = F.batch_norm(z1.to(dtype), None, None, training=True, eps=eps)
    z2n = F.batch_norm(z2.to(dtype), None, None, training=True, eps=eps)
    c = z1n.T @ z2n / n
    diag = torch.diagonal(c)
    on_diag = (1 - diag).pow(2).sum()
    off_diag = (c - torch.diag(diag)).pow(2).sum()  # zero the diagonal exactly, no cancellation
    return on_diag + lambd * off_diag
