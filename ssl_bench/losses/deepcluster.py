"""DeepCluster v2 (Caron et al. 2020, SwAV paper, Appendix A.2 / Sec. 4): cross-entropy between the
prototype scores of every view and the sample's k-means assignment of the previous epoch."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def deepcluster_loss(scores: list[Tensor], assignments: Tensor, temperature: float = 0.1) -> Tensor:
    """``mean over views v and samples b with an assignment of -log softmax(scores_v[b] / t)[a_b]``.

    Args:
        scores: per-view scores (B, K) against one head's prototypes (the k-means centroids).
        assignments: (B,) int64 cluster of each sample, -1 where the sample has none yet (it is
            left out; a batch without any assignment gives a zero loss that still has a graph).
        temperature: 0.1 (DeepCluster v2's setting, as SwAV).
    """
    if assignments.ndim != 1 or any(s.ndim != 2 or s.shape[0] != assignments.shape[0] for s in scores):
        raise ValueError(f"deepcluster_loss: need scores (B, K) per view and assignments (B,); got "
                         f"{[tuple(s.shape) for s in scores]} and {tuple(assignments.shape)}")
    known = assignments >= 0
    count = known.sum().clamp(min=1) * len(scores)
    total = scores[0].new_zeros(()).float()
    for s in scores:
        ce = F.cross_entropy(s.float() / temperature, assignments.clamp(min=0), reduction="none")
        total = total + torch.where(known, ce, torch.zeros_like(ce)).sum()
    return total / count
