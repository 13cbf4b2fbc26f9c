"""MSN (Assran et al., ECCV 2022)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import losses
from ..masking import random_masking
from .er import ERInputs
from .heads import mlp
from .momentum import BaseMomentumMethod
from .vit_heads import MaskSeed, patch_vit


class MSN(BaseMomentumMethod):
    """Masked Siamese Networks for Label-Efficient Learning (Assran et al. 2022), Sec. 3:

        z+ = h_target(f_target(x_target))           # target view, unmasked, EMA encoder, no grad
        z_1 = h(f(random_mask(x_anchor)))           # random masking: patches dropped before the encoder
        z_m = h(f(focal crop m)), m = 2..M          # focal masking: the small crops
        p_m = softmax(cos(z_m, q) / 0.1)            # q: K learnable prototypes
        p+ = sharpen(softmax(cos(z+, q) / 0.1), 0.25)
        loss = mean_m H(p+, p_m) - lambda H(mean over the global batch and anchors of p_m)   # ME-MAX

    The batch's first view is the target, the second the randomly masked anchor, the small crops
    (``data.augment.num_small_crops``) the focal anchors. Paper settings (Sec. 4, Appendix; ViT-S/16
    on ImageNet): 1 random-masked anchor of 224 px and 10 focal views of 96 px, patch-drop ratio
    0.15 for ViT-S/16 (larger for larger ViTs), projection head 3 layers (hidden 2048, BN, GELU)
    to 256, K = 1024 prototypes, tau = 0.1, T = 0.25, lambda = 1, EMA 0.996 -> 1 (linear), AdamW lr
    1e-3 per 1024 images with 15 warm-up epochs, weight decay 0.04 -> 0.4 (``final_weight_decay``),
    [CLS] token as the representation.

    ``use_sinkhorn`` (default True): the official code's Sinkhorn-Knopp balancing of the sharpened
    targets over the global batch (3 iterations, its ``distributed_sinkhorn``). It is not in the
    paper's equations; the official code's loss defaults it off, but its released pretraining config
    (configs/pretrain/msn_vits16.yaml, the one config we have seen) sets ``use_sinkhorn: true``, so we
    take it as the official default (whether every paper run used it is not stated).

    The online linear probe and the collapse monitor see the masked anchor's features (as I-JEPA's
    context): the k-NN and evaluation use unmasked images.

    ER switch: MSN's objective is an ER objective on a softmax support: ME-MAX is the entropy of
    the batch-mean anchor prediction (``ERInputs.softmax`` with all anchors as one entropy input, so
    the mean runs over anchors and images as in ME-MAX), and its cross-entropy is the reconstruction
    of the target's p+ from each anchor. With ``er_entropy_weight: w`` and ``er_reconstruction: auto``
    the loss is this one with lambda = w (``er_reconstruction: native`` adds w to lambda).
    """

    def __init__(self, proj_hidden_dim: int = 2048, proj_dim: int = 256, proj_layers: int = 3,
                 num_prototypes: int = 1024, temperature: float = 0.1, sharpen_temperature: float = 0.25,
                 me_max_weight: float = 1.0, mask_ratio: float = 0.15, base_tau: float = 0.996,
                 tau_schedule: str = "linear", use_sinkhorn: bool = True, **base: Any) -> None:
        super().__init__(base_tau=base_tau, tau_schedule=tau_schedule, **base)
        patch_vit(self.backbone, "MSN")
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=proj_layers,
                             activation=nn.GELU)
        self.teacher_projector = self.make_teacher(self.projector)
        bound = proj_dim ** -0.5  # uniform in +-1/sqrt(d), as the official initialisation
        self.prototypes = nn.Parameter(torch.empty(num_prototypes, proj_dim).uniform_(-bound, bound))
        self.mask_seed = MaskSeed()

    def anchor_features(self, views: list[Tensor]) -> list[Tensor]:
        """Backbone features of the anchors: view 1 with random masking, then the focal views."""
        images, vit = views[1], self.backbone
        gen = self.mask_seed.generator(self.global_step, images.device)
        n = vit.grid_size(images)
        keep = random_masking(images.shape[0], n[0] * n[1], self.hparams.mask_ratio, gen).keep
        masked = vit.pool(*vit.tokens(images, keep=keep))
        return [masked, *self.encode_views(views[2:])] if len(views) > 2 else [masked]

    def compute_ssl_loss(self, views: list[Tensor]) -> tuple[list[Tensor], dict[str, Any]]:
        hp = self.hparams
        if len(views) < 2:
            raise ValueError(f"MSN needs a target and an anchor view, got {len(views)} view(s)")
        with torch.no_grad():
            target_z = self.teacher_projector(self.teacher_forward(views[0]))
            targets = losses.msn_targets(losses.prototype_logits(target_z, self.prototypes, hp.temperature),
                                         hp.sharpen_temperature, use_sinkhorn=hp.use_sinkhorn)
        feats = self.anchor_features(views)
        z = list(self.projector(torch.cat(feats)).split([f.shape[0] for f in feats]))  # one BatchNorm batch, as the official head
        logits = [losses.prototype_logits(zi, self.prototypes, hp.temperature) for zi in z]
        mean_probs = self.gather(torch.cat([lg.softmax(-1) for lg in logits])).mean(0)  # global batch, all anchors
        loss = losses.msn_loss(logits, targets, mean_probs, hp.me_max_weight)
        er = ERInputs.softmax(entropy_logits=[torch.cat(logits)], pairs=[(lg, targets) for lg in logits])
        return feats, {"loss": loss, "z": z[:1], "er": er}
