"""Collapse monitors for a batch of embeddings z (N, d): per-dimension std, effective rank,
alignment and uniformity. Pure functions, differentiable, 0-dim tensors out."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _as_float(z: Tensor) -> Tensor:
    """float16/bfloat16/int inputs are upcast to float32; float32/float64 are kept."""
    return z if z.dtype in (torch.float32, torch.float64) else z.float()


def _check_2d(z: Tensor, name: str = "z") -> None:
    if z.dim() != 2:
        raise ValueError(f"{name} must be (N, d), got shape {tuple(z.shape)}")


def z_std(z: Tensor) -> Tensor:
    """Mean over dimensions of the per-dimension std (over the batch) of the l2-normalised rows.

    SimSiam (Chen & He 2021, Sec. 4.1, Fig. 2 middle): ~1/sqrt(d) for embeddings spread
    isotropically on the sphere, ~0 when they collapse to a constant vector. Unbiased std
    (N - 1 in the denominator), so N = 1 gives nan.
    """
    _check_2d(z)
    return F.normalize(_as_float(z), dim=1).std(dim=0).mean()


def rankme(z: Tensor, eps: float = 1e-7) -> Tensor:
    """RankMe effective rank (Garrido et al. 2023, Eq. 1) of the (N, d) embedding matrix.

    exp(-sum_k p_k log p_k) with p_k = sigma_k / ||sigma||_1 + eps over the singular values
    sigma (torch.linalg.svdvals, in float32 or float64). Between 1 and min(N, d) (up to eps).
    """
    _check_2d(z)
    s = torch.linalg.svdvals(_as_float(z))
    p = s / s.sum() + eps
    return torch.exp(-(p * torch.log(p)).sum())


def alignment(z1: Tensor, z2: Tensor, alpha: float = 2) -> Tensor:
    """Alignment loss of Wang & Isola 2020 (Sec. 4.1): E ||f(x) - f(y)||_2^alpha over positive
    pairs, i.e. the mean over rows of ``z1``, ``z2`` (N, d), after l2-normalisation."""
    _check_2d(z1, "z1")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    z1 = F.normalize(_as_float(z1), dim=1)
    z2 = F.normalize(_as_float(z2), dim=1)
    return (z1 - z2).norm(dim=1).pow(alpha).mean()


def uniformity(z: Tensor, t: float = 2) -> Tensor:
    """Uniformity loss of Wang & Isola 2020 (Sec. 4.1, Gaussian potential):
    log of the mean over pairs i != j of exp(-t ||z_i - z_j||^2), on l2-normalised rows.

    0 when all rows are equal; lower is more uniform. Computed with a logsumexp over the
    off-diagonal entries of the (N, N) matrix of squared distances. Needs N >= 2.
    """
    _check_2d(z)
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"uniformity needs at least 2 rows, got {n}")
    z = F.normalize(_as_float(z), dim=1)
    sq_dist = (2.0 - 2.0 * (z @ z.T)).clamp_min(0.0)
    diagonal = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (-t * sq_dist).masked_fill(diagonal, float("-inf"))
    return torch.logsumexp(logits.flatten(), dim=0) - math.log(n * (n - 1))
