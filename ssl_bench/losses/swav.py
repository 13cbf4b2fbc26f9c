"""SwAV (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments"): distributed Sinkhorn-Knopp codes (Sec. 3.1, Eq. 3; Algorithm 1) and the swapped
prediction loss (Eq. 1-2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..distributed import all_reduce_sum


@torch.no_grad()
def sinkhorn(scores: Tensor, epsilon: float = 0.05, iterations: int = 3) -> Tensor:
    """Soft codes Q (B, K) of prototype scores (B, K) by Sinkhorn-Knopp (SwAV Eq. 3, Algorithm 1).

    ``Q = exp(scores / epsilon)^T``; then ``iterations`` times: scale the K rows to sum 1/K each,
    scale the B columns to sum 1/B each, where B is the GLOBAL number of columns: every sum over
    samples is all-reduced across ranks, so the result on each rank equals the rows of that rank in
    Sinkhorn of the concatenated batch (the paper's distributed version). The returned codes are
    ``B * Q^T``: each sample's code sums to 1, and the columns (prototypes) share the mass equally
    (sum ``B/K``) up to the finite number of iterations. Computed in float32 with autocast off;
    no gradient (codes are targets). Scores are cosine similarities (|s| <= 1), so the exponential
    cannot overflow for epsilon >= 0.05 and no max-shift is needed (a global shift would cancel in
    the first normalisation anyway).
    """
    if epsilon <= 0 or iterations < 1:
        raise ValueError(f"sinkhorn: need epsilon > 0 and iterations >= 1, got {epsilon}, {iterations}")
    with torch.autocast(device_type=scores.device.type, enabled=False):
        return sinkhorn_knopp(torch.exp(scores.float() / epsilon), iterations)


@torch.no_grad()
def sinkhorn_knopp(weights: Tensor, iterations: int = 3) -> Tensor:
    """The Sinkhorn-Knopp iterations of :func:`sinkhorn` on non-negative ``weights`` (B, K) (SwAV's
    ``exp(scores / epsilon)``; MSN's sharpened target probabilities, its official
    ``distributed_sinkhorn``): the total is normalised to 1, then ``iterations`` times the K
    prototype sums are scaled to 1/K each and the B sample sums to 1/B each, B and every sum over
    samples global (all-reduced across ranks). Returns ``B * Q`` (B, K): rows sum to 1, the columns
    share the mass equally up to the finite number of iterations. float32, autocast off, no gradient.
    """
    if iterations < 1:
        raise ValueError(f"sinkhorn_knopp: need iterations >= 1, got {iterations}")
    with torch.autocast(device_type=weights.device.type, enabled=False):
        q = weights.float().T  # (K, B_local)
        k = q.shape[0]
        b = all_reduce_sum(torch.tensor(float(q.shape[1]), device=q.device))
        q = q / all_reduce_sum(q.sum())
        for _ in range(iterations):
            q = q / all_reduce_sum(q.sum(dim=1, keepdim=True)) / k  # rows: 1/K each (global sums)
            q = q / q.sum(dim=0, keepdim=True) / b                   # columns: 1/B each (local: a column is one sample)
        return (q * b).T


def swav_loss(scores: list[Tensor], codes: list[Tensor], temperature: float = 0.1) -> Tensor:
    """Swapped prediction (SwAV Eq. 1-2): for every view i with a code ``codes[i]`` (the global views)
    and every other view v, ``l(z_v, q_i) = -sum_k q_ik log softmax(scores_v / t)_k``, averaged over
    the samples, over the ``len(scores) - 1`` other views, and over the coded views. ``codes`` are
    targets (detached).

    Args:
        scores: per-view prototype scores (B, K): 2 global views first, then the small crops.
        codes: Sinkhorn codes (B, K) of the first ``len(codes)`` views.
        temperature: 0.1 (paper, Sec. 4 / Appendix A).
    """
    if not 1 <= len(codes) <= len(scores) or len(scores) < 2:
        raise ValueError(f"swav_loss: need >= 2 views and 1..{len(scores)} codes, got {len(scores)} views, "
                         f"{len(codes)} codes")
    total = scores[0].new_zeros(()).float()
    for i, q in enumerate(codes):
        q = q.detach().float()
        sub = sum(-(q * F.log_softmax(s.float() / temperature, dim=1)).sum(1).mean()
                  for v, s in enumerate(scores) if v != i)
        total = total + sub / (len(scores) - 1)
    return total / len(codes)
