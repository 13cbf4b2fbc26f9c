"""W-MSE (Ermolov, Siarohin, Sangineto & Sebe, ICML 2021, "Whitening for Self-Supervised
Representation Learning"): Cholesky whitening of sub-batches (Eq. 4-5) and the MSE between the
normalised whitened embeddings of every pair of views (Eq. 6, Algorithm 1)."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor


def whiten(x: Tensor, eps: float = 0.0) -> Tensor:
    """Cholesky whitening (Eq. 4-5): ``W = L^-1`` with ``L L^T = (1 - eps) Cov(x) + eps I`` (the
    official code's shrinkage; the paper uses eps = 0), output ``(x - mean) W^T``, so the sample
    covariance of the output is the identity. Computed in float32 with autocast disabled; the
    inverse is applied by a triangular solve, never formed explicitly.

    Args:
        x: (n, d) with n > d (the covariance must be full rank).
    Returns:
        (n, d) whitened x in float32.
    """
    if x.ndim != 2 or x.shape[0] <= x.shape[1]:
        raise ValueError(f"whiten: need (n, d) with n > d for a full-rank covariance, got {tuple(x.shape)}")
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        n, d = x.shape
        xc = x - x.mean(dim=0, keepdim=True)
        cov = xc.T @ xc / (n - 1)
        eye = torch.eye(d, device=x.device, dtype=x.dtype)
        chol = torch.linalg.cholesky((1 - eps) * cov + eps * eye)
        return torch.linalg.solve_triangular(chol, xc.T, upper=False).T


def sub_batches(perm: Tensor, size: int) -> list[Tensor]:
    """Split a permutation of the batch into whitening sub-batches of ``size``; a remainder smaller
    than ``size`` joins the last sub-batch (the official code needs the batch to be a multiple)."""
    if perm.numel() < size:
        raise ValueError(f"wmse: the (global) batch of {perm.numel()} is smaller than the whitening size {size}")
    parts = list(perm.split(size))
    if len(parts) > 1 and parts[-1].numel() < size:
        parts[-2:] = [torch.cat(parts[-2:])]
    return parts


def wmse_loss(views: list[Tensor], perms: Tensor, whiten_size: int, eps: float = 0.0) -> Tensor:
    """W-MSE loss (Ermolov et al. 2021, Algorithm 1).

    For each whitening iteration (one row of ``perms``) the batch is split into random sub-batches of
    ``whiten_size``; each view's embeddings are whitened per sub-batch (same sample indices for all
    views); the loss is ``2 - 2 cos`` (MSE of l2-normalised vectors) between every pair of views,
    averaged over samples, pairs and iterations.

    Standard hyperparameters: whitening size 128 for a 64-d embedding on CIFAR (``w_size >= 2 d``
    for a well-conditioned covariance), 1 iteration, 2 views ("W-MSE 2") or 4 ("W-MSE 4").

    Args:
        views: d >= 2 tensors (N, D) (the global batch under DDP).
        perms: (w_iter, N) int64, one permutation of range(N) per whitening iteration; every rank
            must pass the same ones.
        whiten_size: sub-batch size.
    """
    if len(views) < 2 or any(v.ndim != 2 or v.shape != views[0].shape for v in views):
        raise ValueError("wmse_loss: need >= 2 views of the same (N, D) shape")
    n = views[0].shape[0]
    if perms.ndim != 2 or perms.shape[1] != n:
        raise ValueError(f"wmse_loss: perms must be (w_iter, {n}), got {tuple(perms.shape)}")
    total, terms = views[0].new_zeros((), dtype=torch.float32), 0
    for perm in perms:
        white = []
        for v in views:
            w = torch.empty(v.shape, dtype=torch.float32, device=v.device)
            for idx in sub_batches(perm, whiten_size):
                w[idx] = whiten(v[idx], eps)
            white.append(F.normalize(w, dim=1))
        for a, b in itertools.combinations(white, 2):
            total = total + (2 - 2 * (a * b).sum(dim=1)).mean()
            terms += 1
    return total / terms
