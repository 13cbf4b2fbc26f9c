"""MoCo v3 (Chen, Xie and He, ICCV 2021)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import distributed, losses
from .heads import mlp
from .momentum import BaseMomentumMethod


class MoCoV3(BaseMomentumMethod):
    """An Empirical Study of Training Self-Supervised Vision Transformers (Chen, Xie and He 2021),
    Algorithm 1:

        q1, q2 = predictor(projector(f(x1))), predictor(projector(f(x2)))    # queries
        k1, k2 = projector_m(f_m(x1)), projector_m(f_m(x2))                  # momentum keys, no grad
        loss = ctr(q1, k2) + ctr(q2, k1)      # InfoNCE over the batch, keys gathered over ranks, no queue
        f_m, projector_m <- m * (f_m, projector_m) + (1 - m) * (f, projector)  # m: 0.99 -> 1, cosine

    Heads (Sec. 3 and the official code): projector of 3 layers for ViT and 2 for ResNet
    (``proj_layers``), predictor of 2 layers, hidden 4096, output 256, BatchNorm in hidden layers, the
    projector's output BatchNorm without affine. Temperature 0.2 (ViT) / 1.0 (ResNet).
    ViT (Sec. 4, Table 1 / Appendix): AdamW, lr 1.5e-4 x B / 256, weight decay 0.1, 40 warm-up epochs,
    300 epochs, momentum 0.99 -> 1 (cosine), and the frozen random patch projection of Sec. 5.1
    (``backbone: vit`` with ``freeze_patch_embed: true``). ResNet-50: LARS, lr 0.3 x B / 256 (0.6 for
    100 epochs), weight decay 1.5e-6 (1e-6), momentum 0.99 (0.996 for 1000 epochs).
    """

    def __init__(self, proj_hidden_dim: int = 4096, proj_dim: int = 256, proj_layers: int = 3,
                 pred_hidden_dim: int = 4096, temperature: float = 0.2, base_tau: float = 0.99,
                 **base: Any) -> None:
        super().__init__(base_tau=base_tau, **base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=proj_layers,
                             last_batch_norm=True)
        self.predictor = mlp(proj_dim, pred_hidden_dim, proj_dim, num_layers=2, last_bias=False)
        self.teacher_projector = self.make_teacher(self.projector)

    def ssl_loss(self, feats: list[Tensor], teacher_feats: list[Tensor]) -> dict[str, Any]:
        q1, q2 = (self.predictor(self.projector(f)) for f in feats[:2])
        with torch.no_grad():
            k1, k2 = (self.teacher_projector(t) for t in teacher_feats[:2])
        k1_all, k2_all = self.gather(k1, sync_grads=False), self.gather(k2, sync_grads=False)
        loss = losses.mocov3_loss(q1, q2, k1_all, k2_all, self.hparams.temperature, rank=distributed.rank())
        return {"loss": loss, "z": [q1, q2]}
