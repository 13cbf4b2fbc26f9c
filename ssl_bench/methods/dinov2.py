"""DINOv2's training objective (Oquab et al., 2023) at small scale."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import losses
from .ibot import IBOT


class DINOv2(IBOT):
    """DINOv2: Learning Robust Visual Features without Supervision (Oquab et al. 2023), Sec. 4
    ("Discriminative Self-supervised Pre-training"), the objective only:

        m = iBOT block masks of the global views      # half the images, ratio ~ U(0.1, 0.5)
        s_cls, s_patch = student(global views, mask tokens at m); s_local = student(small crops)
        t_cls, t_patch = teacher(global views)        # EMA teacher, unmasked, no grad
        L_dino = H(SK(h_dino'(t_cls_i) / tau_t), softmax(h_dino(s_j) / tau_s))    over views i != j
        L_ibot = H(SK(h_ibot'(t_patch_i[m]) / tau_t), softmax(h_ibot(s_patch_i[m]) / tau_s))
                 per image over its masked patches, then over images
        L_koleo = sum over global views of -mean_i log(min_j!=i ||z_i - z_j||),  z = l2-normalised s_cls
        loss = L_dino + L_ibot + 0.1 L_koleo

    with separate DINO and iBOT heads and Sinkhorn-Knopp centring of the teacher (SK: 3 iterations,
    float32 with autocast off, the batch sums all-reduced over ranks: ``losses.sinkhorn`` with
    ``epsilon = tau_t``, SwAV's algorithm; for L_ibot over the masked patch tokens of the global batch)
    instead of iBOT's EMA centres. The KoLeo term sees each rank's batch only (nearest neighbours
    within the per-GPU batch, as the official code): it is the one term whose value depends on how
    the batch is split over ranks. Settings (Sec. 4 / Appendix and the official configs, partly from
    memory, so unsure where marked): student temperature 0.1, teacher 0.04 -> 0.07 over 30 epochs,
    KoLeo weight 0.1, mask probability 0.5 and ratio (0.1, 0.5), teacher EMA 0.992 -> 1 (unsure:
    0.994 for ViT-g), heads of 3 layers, hidden 2048, bottleneck 256 (384 for the iBOT head, unsure),
    K = 65536 (131072 for ViT-g), AdamW with weight decay 0.04 -> 0.4 (cosine; 0.2 for ViT-g), lr 4e-3 scaled by
    sqrt(B / 1024) (``lr_scaling: sqrt``; unsure of the base value), gradient clipping 3.0, last layer
    frozen in the first epoch, 2 global crops (0.32, 1) and 8 local crops (0.05, 0.32).

    Not included (the paper's recipe beyond the objective): the LVD-142M data curation (retrieval
    and deduplication), the high-resolution adaptation phase at the end of training, registers
    (Darcet et al. 2024), layer-wise lr decay and the patch-embedding lr multiplier, efficient
    attention / sequence packing / FSDP, distillation into smaller models (the weight-decay schedule
    is BaseMethod's ``final_weight_decay``; the teacher temperature follows DINO's warm-up),
    and the official mask sampler's batch-level ratios (each masked image draws its own ratio here).
    The [CLS] centre ``center`` and ``patch_center`` that iBOT keeps are unused (and stay zero).
    ER switch: as iBOT (the heads' softmax); note that KoLeo is itself an entropy estimate
    (Kozachenko-Leonenko) of the [CLS] features, i.e. DINOv2 already has an explicit entropy term.
    """

    def __init__(self, koleo_weight: float = 0.1, sinkhorn_iterations: int = 3, separate_heads: bool = True,
                 out_dim: int = 65536, base_tau: float = 0.992, **ibot: Any) -> None:
        super().__init__(separate_heads=separate_heads, out_dim=out_dim, base_tau=base_tau, **ibot)

    @torch.no_grad()
    def cls_targets(self, teacher_cls: Tensor) -> Tensor:
        """Sinkhorn-Knopp-centred teacher [CLS] probabilities (B, K) over the global batch."""
        return losses.sinkhorn(self.teacher_head(teacher_cls), self.teacher_temp, self.hparams.sinkhorn_iterations)

    @torch.no_grad()
    def patch_targets(self, teacher_patches: Tensor, mask: Tensor) -> Tensor:
        """Sinkhorn-Knopp-centred teacher probabilities (M, K) of the masked patch tokens (the iBOT
        head runs on those only; the column count is all-reduced, so ranks may hold different M)."""
        return losses.sinkhorn(self.teacher_patch_head(teacher_patches[mask]), self.teacher_patch_temp,
                               self.hparams.sinkhorn_iterations)

    def regulariser(self, global_cls: list[Tensor]) -> dict[str, Tensor]:
        """KoLeo on the student's [CLS] features of each global view, summed over views, weighted."""
        if not self.hparams.koleo_weight:
            return {}
        return {"koleo": self.hparams.koleo_weight * sum(losses.koleo_loss(c) for c in global_cls)}
