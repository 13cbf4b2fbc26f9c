"""LeJEPA (Balestriero and LeCun, 2025, "LeJEPA: Provable and Scalable Self-Supervised Learning
Without the Heuristics"): a prediction loss between the views' embeddings plus SIGReg, the sketched
isotropic-Gaussian regulariser, with one trade-off weight lambda (0.05 in the paper):

    centre_n = mean over the global views v of z_{n,v}                         (per image)
    pred     = mean over views v (global and local), images n, coordinates k of (centre_n - z_{n,v})_k^2
    SIGReg(Z) = mean over M random unit directions a of EP(Z a)                (Z: one view's batch)
    loss     = (1 - lambda) pred + lambda mean_v SIGReg(Z_v)

as the paper's pseudo-code (written from memory of it: no stop-gradient, the centres carry
gradients). EP is the Epps-Pulley statistic of a 1-D sample x_1..x_N against N(0, 1):

    EP = N * integral |phi_N(t) - phi(t)|^2 w(t) dt,   phi_N(t) = 1/N sum_j exp(i t x_j),
    phi(t) = w(t) = exp(-t^2 / 2)

evaluated by the trapezoidal rule on 17 equally spaced points of [-5, 5] (the grid and Gaussian
weight of the paper's listing). phi_N is a batch statistic: the per-rank sums of cos(t x) and
sin(t x) are gathered across ranks with gradients and summed, and N is the global batch, so every
rank computes the single-process value and (after DDP's averaging) its gradient.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ssl_bench.distributed import gather_no_grad, gather_with_grad


def random_directions(dim: int, num: int, generator: torch.Generator) -> Tensor:
    """``num`` directions uniform on the unit sphere of R^dim, as the columns of a (dim, num) matrix
    (normalised Gaussian draws from ``generator``, on its device)."""
    a = torch.randn(dim, num, generator=generator, device=generator.device)
    return a / a.norm(dim=0, keepdim=True)


def quadrature_grid(t_max: float = 5.0, points: int = 17) -> Tensor:
    """The t grid of the Epps-Pulley integral: ``points`` equally spaced values in [-t_max, t_max]."""
    return torch.linspace(-t_max, t_max, points)


def epps_pulley(x: Tensor, t: Tensor) -> Tensor:
    """Epps-Pulley statistics (M,) of the columns of ``x`` (N, M) (M one-dimensional samples of
    this rank's N values) against N(0, 1), over the global batch (see the module docstring), by the
    trapezoidal rule on the grid ``t`` (T,). Computed in float32 at least (``sigreg`` turns autocast off)."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    t = t.to(x)
    xt = x.unsqueeze(-1) * t                                       # (N, M, T)
    sums = torch.stack([torch.cos(xt).sum(0), torch.sin(xt).sum(0)])  # (2, M, T): this rank's part
    sums = gather_with_grad(sums.unsqueeze(0)).sum(0)              # over ranks, with gradients
    n = gather_no_grad(torch.tensor([x.shape[0]], device=x.device)).sum().to(x)
    gauss = torch.exp(-0.5 * t**2)                                  # phi(t) = w(t)
    err = ((sums[0] / n - gauss) ** 2 + (sums[1] / n) ** 2) * gauss
    return n * torch.trapezoid(err, t, dim=-1)


def sigreg(z: Tensor, directions: Tensor, t: Tensor) -> Tensor:
    """SIGReg of one view's embeddings ``z`` (N, d): the mean over the ``directions`` (d, M) of the
    Epps-Pulley statistic of the projections ``z a``, in float32 with autocast off (cos(t x) of a
    bfloat16 projection would lose the statistic)."""
    with torch.autocast(device_type=z.device.type, enabled=False):
        return epps_pulley(z.float() @ directions.to(torch.float32), t).mean()


def lejepa_prediction_loss(global_z: list[Tensor], all_z: list[Tensor]) -> Tensor:
    """Mean squared distance of every view's embedding (B, d) in ``all_z`` to the mean of the
    ``global_z`` embeddings of the same image (mean over views, images and coordinates)."""
    if not global_z or not all_z:
        raise ValueError("lejepa_prediction_loss: needs at least one global view")
    centre = torch.stack([z.float() for z in global_z]).mean(0)
    return torch.stack([(centre - z.float()).pow(2).mean() for z in all_z]).mean()


def lejepa_loss(global_z: list[Tensor], all_z: list[Tensor], directions: Tensor, lambd: float = 0.05,
                t: Tensor | None = None) -> Tensor:
    """``(1 - lambd) * lejepa_prediction_loss + lambd * mean_v sigreg(all_z[v])``; ``t`` defaults to
    ``quadrature_grid()`` (17 points on [-5, 5])."""
    if not 0.0 <= lambd <= 1.0:
        raise ValueError(f"lejepa_loss: lambd must be in [0, 1], got {lambd}")
    grid = quadrature_grid() if t is None else t
    reg = torch.stack([sigreg(z, directions, grid) for z in all_z]).mean()
    return (1.0 - lambd) * lejepa_prediction_loss(global_z, all_z) + lambd * reg
