"""DINO (Caron et al., 2021, "Emerging Properties in Self-Supervised Vision Transformers"):
self-distillation cross-entropy between the centred, sharpened teacher distribution and the student
distribution (Eq. 1-3, Algorithm 1), and the centre's EMA (Sec. 3.1, Eq. 4)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..distributed import all_reduce_sum, world_size


def dino_loss(student: list[Tensor], teacher: list[Tensor], center: Tensor, student_temp: float = 0.1,
              teacher_temp: float = 0.04) -> Tensor:
    """Multi-crop self-distillation loss (Caron et al. 2021, Eq. 3 and Algorithm 1).

    ``P_t = softmax((g_t - C) / teacher_temp)`` (centred, sharpened, no gradient) for each global
    view, ``log P_s = log_softmax(g_s / student_temp)`` for every view; the loss is
    ``-sum P_t log P_s`` summed over the K output dimensions, averaged over the batch and over all
    (teacher view, student view) pairs with different view indices (the teacher's global views are
    the student's first views).

    Standard hyperparameters: student 0.1, teacher 0.04 -> 0.07 with a linear warm-up (Sec. 3.1 /
    Appendix; the warm-up is the caller's schedule).

    Args:
        student: per-view (B, K) student head outputs, global views first.
        teacher: per-global-view (B, K) teacher head outputs (detached here).
        center: (1, K) or (K,) centre C.
    Returns:
        Scalar tensor, computed in float32.
    """
    if not teacher or len(student) < 2:
        raise ValueError(f"dino_loss: need >= 1 teacher and >= 2 student views, got {len(teacher)} and {len(student)}")
    if student_temp <= 0 or teacher_temp <= 0:
        raise ValueError(f"dino_loss: temperatures must be > 0, got {student_temp} and {teacher_temp}")
    shape = teacher[0].shape
    if any(t.shape != shape for t in teacher) or any(s.shape != shape for s in student):
        raise ValueError(f"dino_loss: every view must be (B, K) = {tuple(shape)}")
    dtype = torch.promote_types(teacher[0].dtype, torch.float32)
    log_ps = [F.log_softmax(s.to(dtype) / student_temp, dim=-1) for s in student]
    pts = [F.softmax((t.detach().to(dtype) - center.to(dtype)) / teacher_temp, dim=-1) for t in teacher]
    total, terms = 0.0, 0
    for i, pt in enumerate(pts):
        for j, log_ps_j in enumerate(log_ps):
            if i == j:
                continue  # the same view: no loss (Algorithm 1 pairs only different views)
            total = total + (-(pt * log_ps_j).sum(dim=-1)).mean()
            terms += 1
    return total / terms


@torch.no_grad()
def batch_center(teacher: list[Tensor]) -> Tensor:
    """Mean teacher output over the global batch, ``(1, K)``: the per-rank sums are all-reduced over
    ranks before dividing (official code: ``dist.all_reduce`` of the batch sum, then / (B * W))."""
    out = torch.cat(teacher)
    out = out.to(torch.promote_types(out.dtype, torch.float32))
    total = all_reduce_sum(out.sum(dim=0, keepdim=True))
    return total / (out.shape[0] * world_size())


@torch.no_grad()
def ema_center(center: Tensor, batch_mean: Tensor, momentum: float = 0.9) -> Tensor:
    """Centre update (Caron et al. 2021, Eq. 4): ``C <- m C + (1 - m) mean_batch(g_t)``; m = 0.9."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"ema_center: momentum must be in [0, 1], got {momentum}")
    return center * momentum + batch_mean.to(center.dtype) * (1.0 - momentum)
