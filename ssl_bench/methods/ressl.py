"""ReSSL (Zheng et al., NeurIPS 2021)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import losses
from .base import SSLOutput
from .heads import mlp
from .momentum import BaseMomentumMethod
from .queue import FeatureQueue


class ReSSL(BaseMomentumMethod):
    """Relational Self-Supervised Learning with weak augmentation (Zheng et al. 2021), Algorithm 1:

        z_s = student(strong view);  z_t = teacher(weak view)         # EMA teacher, m = 0.99
        p_s = softmax(z_s . queue / tau_s);  p_t = softmax(z_t . queue / tau_t)
        loss = H(p_t, p_s);  enqueue(z_t)

    Data: the ``weak`` recipe (view 0 weak: crop and flip; view 1 strong). Hyperparameters (Sec. 4):
    tau_s 0.1, tau_t 0.04, 2-layer projector with 128-d output; queue 65,536 on ImageNet, 4,096 on
    CIFAR. The queue starts with random unit vectors (as the official code) and is a FeatureQueue,
    so it is gathered over ranks and in every checkpoint.
    """

    def __init__(self, proj_hidden_dim: int = 512, proj_dim: int = 128, queue_size: int = 4096,
                 student_temp: float = 0.1, teacher_temp: float = 0.04, base_tau: float = 0.99,
                 **base: Any) -> None:
        super().__init__(base_tau=base_tau, **base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)
        self.teacher_projector = self.make_teacher(self.projector)
        self.queue = FeatureQueue(queue_size, proj_dim)
        self.queue.enqueue(F.normalize(torch.randn(queue_size, proj_dim), dim=1), gather=False)

    def compute_ssl_loss(self, views: list[Tensor]) -> tuple[list[Tensor], SSLOutput]:
        """The student sees the strong view(s) (views[1:]), the teacher the weak view (views[0])."""
        feats = self.encode_views(views[1:])
        with torch.no_grad():
            teacher_feats = [self.teacher_forward(views[0])]
        return feats, self.ssl_loss(feats, teacher_feats)

    def ssl_loss(self, feats: list[Tensor], teacher_feats: list[Tensor]) -> dict[str, Any]:
        hp = self.hparams
        z_s = self.projector(feats[0])
        with torch.no_grad():
            z_t = F.normalize(self.teacher_projector(teacher_feats[0]), dim=1)
        loss = losses.ressl_loss(z_s, z_t, self.queue.contents(), hp.student_temp, hp.teacher_temp)
        self.queue.enqueue(z_t)
        return {"loss": loss, "z": [z_s, z_t]}
