"""iBOT (Zhou et al., ICLR 2022)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import losses
from ..masking import ibot_masks
from .dino import DINO, warmed_up
from .er import ERInputs
from .heads import DINOHead
from .vit_heads import MaskSeed, patch_vit


class IBOT(DINO):
    """iBOT: Image BERT Pre-Training with Online Tokenizer (Zhou et al. 2022), Sec. 3.3 and Algorithm 1:

        m = block masks of the global views          # half the images, ratio ~ U(0.1, 0.5) each
        s_cls, s_patch = student(global views, mask tokens at m); s_local = student(small crops)
        t_cls, t_patch = teacher(global views)       # EMA teacher, unmasked, no grad
        L_cls = H(softmax((h(t_cls_i) - C) / tau_t), softmax(h(s_j) / tau_s))  over views i != j
        L_mim = H(softmax((h(t_patch_i) - C') / tau_t'), softmax(h(s_patch_i) / tau_s))
                over the masked patches of the same view i, averaged per image, then over images
        loss = L_cls + L_mim;  C, C' <- EMA of the batch means (m = 0.9), gathered over ranks

    ``h`` is one DINO head for [CLS] and patch tokens (``separate_heads: false``, the paper's default:
    its ablation finds sharing the projection head best); ``separate_heads: true`` gives the patch tokens a
    second full DINOHead of ``patch_out_dim`` outputs (DINOv2's choice; iBOT's official non-shared
    variant shares the MLP and has only a second last layer, which is not implemented).
    Paper settings (ViT-S/16, Sec. 4 and the Appendix): K = 8192 for both heads, student temperature 0.1, teacher
    temperatures 0.04 -> 0.07 ([CLS], over 30 epochs) and 0.04 -> 0.07 (patches), centre momenta
    0.9, teacher EMA 0.996 -> 1 (cosine), AdamW lr 5e-4 x B / 256, weight decay 0.04 -> 0.4 (cosine),
    10 warm-up epochs, gradient clipping 3.0, last layer frozen in the first epoch, 2 global crops and
    10 local crops (the local crops take only L_cls), masking probability 0.5, prediction ratio
    U(0.1, 0.5), BEiT block masking. Inherited from DINO: the head, the [CLS] temperature schedule,
    the frozen last layer(s) and per-parameter clipping. The weight-decay schedule is BaseMethod's
    ``final_weight_decay``. Masks: ``masking.block_masking`` follows BEiT's generator (each block
    capped by what is left to mask); ``mask_min_block`` is its smallest block area (BEiT 4; iBOT's
    code uses (min(H, W) // 3)^2, 16 on a 14x14 grid).

    State in every checkpoint: the centres ``center`` / ``patch_center`` (buffers), the mask seed
    (``mask_seed``; masks are a function of (seed, step, rank)) and the learnable ``mask_token``.
    The online probe sees the student's feature of the first global view, masked or not.
    """

    def __init__(self, separate_heads: bool = False, patch_out_dim: int | None = None,
                 teacher_patch_temp: float = 0.07, warmup_teacher_patch_temp: float = 0.04,
                 patch_center_momentum: float = 0.9, mask_ratio: tuple[float, float] = (0.1, 0.5),
                 mask_prob: float = 0.5, mask_min_block: int = 4, cls_weight: float = 1.0,
                 patch_weight: float = 1.0, out_dim: int = 8192, **dino: Any) -> None:
        super().__init__(out_dim=out_dim, **dino)
        hp = self.hparams
        vit = patch_vit(self.backbone, type(self).__name__)
        if not separate_heads and patch_out_dim not in (None, out_dim):
            raise ValueError(f"{type(self).__name__}: a shared head has out_dim = patch_out_dim, got {out_dim} and {patch_out_dim}")
        patch_dim = patch_out_dim or out_dim
        if separate_heads:
            self.patch_head = DINOHead(self.feature_dim, patch_dim, hp.proj_hidden_dim, hp.bottleneck_dim,
                                       hp.head_layers, hp.head_batch_norm, hp.norm_last_layer)
            self.teacher_patch_head = self.make_teacher(self.patch_head)
        self.mask_token = nn.Parameter(torch.zeros(vit.embed_dim))
        self.register_buffer("patch_center", torch.zeros(1, patch_dim))
        self.mask_seed = MaskSeed()

    # ----------------------------------------------------------------------------- pieces
    def patch_heads(self) -> tuple[nn.Module, nn.Module]:
        """(student, teacher) heads of the patch tokens: the [CLS] heads unless ``separate_heads``."""
        if self.hparams.separate_heads:
            return self.patch_head, self.teacher_patch_head
        return self.head, self.teacher_head

    @property
    def teacher_patch_temp(self) -> float:
        hp = self.hparams
        return warmed_up(self.current_epoch, hp.warmup_teacher_temp_epochs, hp.warmup_teacher_patch_temp,
                         hp.teacher_patch_temp)

    def masks(self, images: Tensor) -> Tensor:
        """(B, N) bool masks of the student's global views (this step's generator, per rank)."""
        hp = self.hparams
        gen = self.mask_seed.generator(self.global_step, images.device)
        return ibot_masks(images.shape[0], self.backbone.grid_size(images), gen, tuple(hp.mask_ratio),
                          hp.mask_prob, hp.mask_min_block)

    @torch.no_grad()
    def cls_targets(self, teacher_cls: Tensor) -> Tensor:
        """Teacher [CLS] probabilities (B, K): centred and sharpened; the centre then moves (DINO Eq. 4)."""
        logits = self.teacher_head(teacher_cls)
        targets = losses.centered_softmax(logits, self.center, self.teacher_temp)
        self.center.copy_(losses.ema_center(self.center, losses.batch_center([logits]), self.hparams.center_momentum))
        return targets

    @torch.no_grad()
    def patch_targets(self, teacher_patches: Tensor, mask: Tensor) -> Tensor:
        """Teacher probabilities (M, K) at the masked patches; the patch centre moves with the mean
        over every patch token of the batch (gathered over ranks), as the official code."""
        b, n, d = teacher_patches.shape
        logits = self.patch_heads()[1](teacher_patches.reshape(b * n, d)).reshape(b, n, -1)   # (B, N, K)
        targets = losses.centered_softmax(logits[mask], self.patch_center, self.teacher_patch_temp)
        batch_mean = losses.batch_center([logits.mean(1)])
        self.patch_center.copy_(losses.ema_center(self.patch_center, batch_mean, self.hparams.patch_center_momentum))
        return targets

    def regulariser(self, global_cls: list[Tensor]) -> dict[str, Tensor]:
        """Extra weighted loss terms on the student's [CLS] features of the global views (none; DINOv2: KoLeo)."""
        return {}

    # ----------------------------------------------------------------------------- the objective
    def compute_ssl_loss(self, views: list[Tensor]) -> tuple[list[Tensor], dict[str, Any]]:
        hp, g = self.hparams, self.num_global_views
        images = torch.cat(views[:g])
        mask = self.masks(images)
        with torch.no_grad():
            t_cls, t_patch = self.teacher_backbone.tokens(images)
        s_cls, s_patch = self.backbone.tokens(images, mask=mask, mask_token=self.mask_token)
        cls = list(s_cls.chunk(g))
        if len(views) > g:  # small crops: [CLS] only, unmasked, one batch per crop size
            by_size: dict[tuple, list[int]] = {}
            for i, v in enumerate(views[g:]):
                by_size.setdefault(tuple(v.shape[1:]), []).append(i)
            local: list[Tensor | None] = [None] * (len(views) - g)
            for idx in by_size.values():
                for i, c in zip(idx, self.backbone.tokens(torch.cat([views[g + i] for i in idx]))[0].chunk(len(idx))):
                    local[i] = c
            cls += local
        emb = [self.head.bottleneck(c) for c in cls]
        student = [self.head.last_layer(e) for e in emb]
        student_patch = self.patch_heads()[0](s_patch[mask])                  # masked patches only
        targets = list(self.cls_targets(t_cls).chunk(g))
        patch_targets = self.patch_targets(t_patch, mask)
        loss_cls = losses.self_distillation_loss(student, targets, hp.student_temp)
        loss_mim = losses.ibot_patch_loss(student_patch, patch_targets, mask, hp.student_temp)
        extra = self.regulariser(cls[:g])
        loss = hp.cls_weight * loss_cls + hp.patch_weight * loss_mim + sum(extra.values())
        if self._trainer is not None and self.is_logging_step:
            terms = {"loss_cls": loss_cls, "loss_mim": loss_mim, **{f"loss_{k}": v for k, v in extra.items()}}
            self.log_dict({k: v.detach() for k, v in terms.items()}, on_step=True, on_epoch=False)
            self.log_dict({"teacher_temp": self.teacher_temp, "mask_fraction": mask.float().mean()},
                          on_step=True, on_epoch=False)
        feats = [self.backbone.pool(c, p) for c, p in zip(cls[:g], s_patch.chunk(g))]
        er = self.ibot_er_inputs(student, targets, student_patch, patch_targets)
        return feats, {"loss": loss, "z": emb[:g], "er": er}

    def ibot_er_inputs(self, student: list[Tensor], targets: list[Tensor], student_patch: Tensor,
                       patch_targets: Tensor) -> ERInputs:
        """The ER objective's inputs (Rodriguez-Galvez et al. 2023, Sec. 5), as DINO's: entropy of the
        batch-mean student [CLS] softmax of the global views; reconstruction pairs: every pair of
        ``L_cls`` (teacher targets of view i from the student logits of view j != i) and, for
        ``L_mim``, the masked patches' targets from the student's patch logits (one pair, a mean over
        the masked tokens rather than per image)."""
        tau = self.hparams.student_temp
        s = [x / tau for x in student]
        pairs = [(s[j], t) for i, t in enumerate(targets) for j in range(len(s)) if j != i]
        if student_patch.shape[0]:
            pairs.append((student_patch / tau, patch_targets))
        return ERInputs.softmax(entropy_logits=s[: self.num_global_views], pairs=pairs)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """DINO's frozen last layer in the first epoch(s), for the patch head's too, and clipping."""
        if self.hparams.separate_heads and self.current_epoch < self.hparams.freeze_last_layer_epochs:
            for p in self.patch_head.last_layer.parameters():
                p.grad = None
        super().on_before_optimizer_step(optimizer)
