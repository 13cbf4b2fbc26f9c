"""I-JEPA (Assran et al., CVPR 2023)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import losses
from ..masking import gather_tokens, multiblock_masks
from .momentum import BaseMomentumMethod
from .vit_heads import MaskSeed, TokenTransformer, patch_vit


class IJEPA(BaseMomentumMethod):
    """Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture
    (Assran et al. 2023), Sec. 3:

        context, targets = multiblock_masks()           # 1 context block, M = 4 target blocks
        s_y = layer_norm(target_encoder(x))[targets]    # EMA encoder on the full image, no grad
        s_x = context_encoder(x[context])               # the context block's tokens only
        s_hat_y = predictor(s_x, mask tokens at the positions of each target block)
        loss = L2(s_hat_y, s_y), averaged over the M blocks (Eq. 1)

    Paper settings (Sec. 4 and Appendix C, ViT-H/14 on ImageNet): targets 4 blocks of scale
    (0.15, 0.2), aspect (0.75, 1.5); context scale (0.85, 1.0), aspect 1; predictor a narrow ViT of
    depth 12 and width 384; AdamW, lr warmed up linearly from 1e-4 to 1e-3 over 15 epochs then
    cosine to 1e-6 (``warmup_start_factor: 0.1``, ``final_lr_factor: 0.001``), weight decay 0.04 ->
    0.4 (``final_weight_decay``), EMA 0.996 -> 1.0 linearly (``tau_schedule: linear``, this class's
    default), batch 2048, 300 epochs, random resized crop (0.3, 1) as the only augmentation. The
    official code stretches the EMA and weight-decay schedules over 1.25x the run (they end at 0.9992
    and ~0.37); here they reach their end values at the last step. One view per image (the first view
    of the batch).
    Evaluation features: the average-pooled patch tokens (``backbone_kwargs: {feature: mean}``), as
    the paper's linear probes.
    """

    def __init__(self, pred_dim: int = 384, pred_depth: int = 12, pred_heads: int = 12, num_targets: int = 4,
                 target_scale: tuple[float, float] = (0.15, 0.2), target_aspect: tuple[float, float] = (0.75, 1.5),
                 context_scale: tuple[float, float] = (0.85, 1.0), base_tau: float = 0.996,
                 tau_schedule: str = "linear", **base: Any) -> None:
        super().__init__(base_tau=base_tau, tau_schedule=tau_schedule, **base)
        vit = patch_vit(self.backbone, "I-JEPA")
        self.grid = tuple(vit.vit.patch_embed.grid_size)
        self.predictor = TokenTransformer(vit.embed_dim, pred_dim, pred_depth, pred_heads, vit.embed_dim, self.grid)
        self.mask_seed = MaskSeed()

    def masks(self, batch: int, device: torch.device) -> tuple[Tensor, Tensor]:
        hp = self.hparams
        return multiblock_masks(batch, self.grid, self.mask_seed.generator(self.global_step, device), hp.num_targets,
                                tuple(hp.target_scale), tuple(hp.target_aspect), tuple(hp.context_scale))

    def compute_ssl_loss(self, views: list[Tensor]) -> tuple[list[Tensor], dict[str, Any]]:
        images = views[0]
        context, targets = self.masks(images.shape[0], images.device)
        b, m, n = targets.shape
        with torch.no_grad():
            _, h = self.teacher_backbone.tokens(images)
            h = F.layer_norm(h, h.shape[-1:])
            s_y = gather_tokens(h, targets.reshape(b, m * n)).reshape(b, m, n, -1)
        cls, s_x = self.backbone.tokens(images, keep=context)
        # one predictor pass per (image, target block): the context repeated M times
        pred = self.predictor(s_x.repeat_interleave(m, 0), context.repeat_interleave(m, 0), targets.reshape(b * m, n))
        loss = losses.ijepa_loss(pred.reshape(b, m, n, -1), s_y)
        feats = self.backbone.pool(cls, s_x)
        return [feats], {"loss": loss, "z": [feats]}
