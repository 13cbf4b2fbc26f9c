"""iBOT (Zhou et al., ICLR 2022, "iBOT: Image BERT Pre-Training with Online Tokenizer") and the
DINOv2 objective (Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision"):

- :func:`centered_softmax`: DINO / iBOT teacher targets, ``softmax((g_t - C) / tau_t)``;
- :func:`self_distillation_loss`: the [CLS] cross-entropy between teacher targets and student
  distributions over pairs of different views (iBOT Eq. 1's L_[CLS], DINOv2's DINO loss);
- :func:`ibot_patch_loss`: masked image modelling by self-distillation on the masked patch tokens
  (iBOT Eq. 2's L_MIM, DINOv2's iBOT loss);
- :func:`koleo_loss`: the KoLeo regulariser on l2-normalised features (DINOv2 Sec. 4,
  Sablayrolles et al. 2019).

The teacher targets of DINOv2 (Sinkhorn-Knopp centring) are :func:`ssl_bench.losses.swav.sinkhorn`
with ``epsilon = teacher_temp``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def centered_softmax(logits: Tensor, center: Tensor, temperature: float) -> Tensor:
    """Teacher targets by centring and sharpening (DINO Eq. 4 / iBOT Sec. 3.3):
    ``softmax((logits - center) / temperature)`` along the last dim, in float32, no gradient."""
    if temperature <= 0:
        raise ValueError(f"centered_softmax: temperature must be > 0, got {temperature}")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return F.softmax((logits.to(dtype) - center.to(dtype)) / temperature, dim=-1)


def _cross_entropy(targets: Tensor, student: Tensor, student_temp: float) -> Tensor:
    """Per-row ``-sum_k targets_k log softmax(student / student_temp)_k`` in float32."""
    dtype = torch.promote_types(student.dtype, torch.float32)
    return -(targets.detach().to(dtype) * F.log_softmax(student.to(dtype) / student_temp, dim=-1)).sum(-1)


def self_distillation_loss(student: list[Tensor], targets: list[Tensor], student_temp: float = 0.1) -> Tensor:
    """[CLS] self-distillation over views (iBOT Eq. 1, L_[CLS]; DINO Eq. 3; DINOv2's DINO loss).

    ``targets[i]`` (B, K) are the teacher's probabilities for global view i (detached here);
    ``student[j]`` (B, K) the student's logits for view j (global views first, then small crops).
    The loss is ``-sum_k t_ik log softmax(s_j / student_temp)_k``, averaged over the batch and over
    all pairs (i, j) with i != j. With ``targets = centered_softmax(g_t, C, tau_t)`` it is
    :func:`ssl_bench.losses.dino_loss`. Student temperature 0.1 (all three papers).
    """
    if not targets or len(student) < 2:
        raise ValueError(f"self_distillation_loss: need >= 1 target and >= 2 student views, "
                         f"got {len(targets)} and {len(student)}")
    if student_temp <= 0:
        raise ValueError(f"self_distillation_loss: student_temp must be > 0, got {student_temp}")
    terms = [_cross_entropy(t, s, student_temp).mean() for i, t in enumerate(targets)
             for j, s in enumerate(student) if j != i]
    return torch.stack(terms).mean()


def ibot_patch_loss(student: Tensor, targets: Tensor, mask: Tensor, student_temp: float = 0.1) -> Tensor:
    """Masked-patch self-distillation (iBOT Eq. 2, L_MIM; DINOv2's iBOT loss).

    ``mask`` (B, N) bool marks the patches the student saw as mask tokens; ``student`` (M, K) are the
    student's logits and ``targets`` (M, K) the teacher's probabilities (the teacher saw the patch)
    at those M = mask.sum() positions, in ``tokens[mask]`` order (row-major over images, then patches).
    The per-patch cross-entropy ``-sum_k t_k log softmax(s / student_temp)_k`` is averaged over each
    image's masked patches, then summed over images and divided by B: an image without masked patches
    adds 0 but counts in B (the official iBOT and DINOv2 code). Several global views: concatenate
    them along the batch (the mean over views of the per-view losses, as iBOT's loop).
    """
    if mask.dtype != torch.bool or mask.dim() != 2:
        raise ValueError(f"ibot_patch_loss: mask must be (B, N) bool, got {tuple(mask.shape)} {mask.dtype}")
    m = int(mask.sum())
    if student.shape[0] != m or targets.shape != student.shape:
        raise ValueError(f"ibot_patch_loss: student and targets must be (M, K) with M = mask.sum() = {m}, "
                         f"got {tuple(student.shape)} and {tuple(targets.shape)}")
    if student_temp <= 0:
        raise ValueError(f"ibot_patch_loss: student_temp must be > 0, got {student_temp}")
    per_image = mask.sum(1, keepdim=True).clamp(min=1).expand_as(mask)[mask]    # (M,) masked patches of its image
    ce = _cross_entropy(targets, student, student_temp)
    return (ce / per_image.to(ce.dtype)).sum() / mask.shape[0]


def koleo_loss(x: Tensor, eps: float = 1e-8) -> Tensor:
    """KoLeo regulariser (DINOv2 Sec. 4 "KoLeo regularizer", from the Kozachenko-Leonenko entropy
    estimator, Sablayrolles et al. 2019): ``-1/n sum_i log(d_i + eps)`` with ``d_i`` the distance
    from the l2-normalised ``x_i`` to its nearest neighbour among the other rows of ``x`` (B, D).
    Minimising it spreads the features within the batch; DINOv2 weights it 0.1 on the student's
    [CLS] tokens of each global view. The neighbour is chosen without gradient; the distance has one.
    Computed in float32."""
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"koleo_loss: need (B, D) with B >= 2, got {tuple(x.shape)}")
    z = F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=-1, eps=eps)
    with torch.no_grad():
        sims = z @ z.T
        sims.fill_diagonal_(-float("inf"))
        nearest = sims.argmax(dim=1)
    dist = (z - z[nearest]).norm(dim=-1)
    return -torch.log(dist + eps).mean()
