"""VICReg (Bardes, Ponce & LeCun, ICLR 2022, "VICReg: Variance-Invariance-Covariance
Regularization for Self-Supervised Learning"), Eq. 1-6, following the official code's conventions.

Under DDP the caller passes the globally gathered embeddings (with gradients), so the statistics
are those of the global batch."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(name: str, z1: Tensor, z2: Tensor) -> None:
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"{name}: z1 and z2 must both be (N, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 samples for batch statistics, got {z1.shape[0]}")


def _f32(z: Tensor) -> Tensor:
    return z.to(torch.promote_types(z.dtype, torch.float32))


def invariance_loss(z1: Tensor, z2: Tensor) -> Tensor:
    """s(Z, Z') (Eq. 5): mean squared error, averaged over samples and dimensions (``F.mse_loss``)."""
    _check("invariance_loss", z1, z2)
    return F.mse_loss(_f32(z1), _f32(z2))


def _std_hinge(z: Tensor, gamma: float, eps: float) -> Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)  # unbiased variance, as torch.var in the official code
    return F.relu(gamma - std).mean()


def variance_loss(z1: Tensor, z2: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """v(Z) (Eq. 1-2): hinge ``mean_j max(0, gamma - sqrt(Var(z_j) + eps))`` per view.

    Convention: the two views' hinge terms are **averaged** (``v(Z)/2 + v(Z')/2``), as in the
    official VICReg code (and lightly); a peer implementation sums them, which doubles the weight.
    """
    _check("variance_loss", z1, z2)
    return (_std_hinge(_f32(z1), gamma, eps) + _std_hinge(_f32(z2), gamma, eps)) / 2


def _off_diagonal_cov_sq(z: Tensor) -> Tensor:
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = z.T @ z / (n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


def covariance_loss(z1: Tensor, z2: Tensor) -> Tensor:
    """c(Z) (Eq. 3-4): ``(1/d) sum_{i != j} C(Z)_ij^2`` with the unbiased covariance, **summed** over
    the two views (``c(Z) + c(Z')``, Eq. 6 and the official code)."""
    _check("covariance_loss", z1, z2)
    return _off_diagonal_cov_sq(_f32(z1)) + _off_diagonal_cov_sq(_f32(z2))


def vicreg_loss(z1: Tensor, z2: Tensor, sim_weight: float = 25.0, var_weight: float = 25.0,
                cov_weight: float = 1.0, eps: float = 1e-4) -> Tensor:
    """Eq. 6: ``lambda s + mu [v(Z) + v(Z')]/2 + nu [c(Z) + c(Z')]``; defaults 25 / 25 / 1 (Sec. 4.3)."""
    return (sim_weight * invariance_loss(z1, z2) + var_weight * variance_loss(z1, z2, eps=eps)
            + cov_weight * covariance_loss(z1, z2))
