"""DINO (Caron et al., ICCV 2021)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import losses
from .er import ERInputs
from .heads import DINOHead
from .momentum import BaseMomentumMethod


def warmed_up(epoch: int, epochs: int, start: float, end: float) -> float:
    """Linear per-epoch warm-up from ``start`` to ``end`` over ``epochs`` epochs, then ``end`` (the
    official ``np.linspace`` teacher-temperature schedule of DINO and iBOT)."""
    if epoch >= epochs:
        return end
    return start + (epoch / (epochs - 1) if epochs > 1 else 1.0) * (end - start)


class DINO(BaseMomentumMethod):
    """Self-distillation with no labels (Caron et al. 2021, "Emerging Properties in Self-Supervised
    Vision Transformers"), Algorithm 1:

        s = student_head(student(all views))             # global + small crops
        t = teacher_head(teacher(global views))          # EMA teacher, tau 0.996 -> 1 (cosine)
        loss = H(softmax((t - C) / tau_t), softmax(s / tau_s))   over pairs of different views
        C <- m C + (1 - m) mean(t)                       # over the global batch, m = 0.9 (Eq. 4)

    Hyperparameters (Sec. 3.1, Appendix): head 3 layers, hidden 2048, bottleneck 256, K = 65536,
    weight-normalised last layer (gain frozen at 1), student temperature 0.1, teacher temperature
    warmed up linearly from 0.04 to 0.04-0.07 over 30 epochs (per epoch), last layer frozen during
    the first epoch, per-parameter gradient-norm clipping at 3.0; for ViTs, weight decay 0.04 -> 0.4
    by a cosine (BaseMethod's ``final_weight_decay``, set in ``configs/cifar10/dino_vit.yaml``).

    The centre ``self.center`` is a registered buffer, so it is in every checkpoint; the teacher
    temperature is a function of the epoch, so a resumed run continues with the same schedule.
    """

    def __init__(self, proj_hidden_dim: int = 2048, bottleneck_dim: int = 256, out_dim: int = 65536,
                 head_layers: int = 3, head_batch_norm: bool = False, norm_last_layer: bool = True,
                 student_temp: float = 0.1, teacher_temp: float = 0.07, warmup_teacher_temp: float = 0.04,
                 warmup_teacher_temp_epochs: int = 30, center_momentum: float = 0.9,
                 freeze_last_layer_epochs: int = 1, clip_grad: float = 3.0, base_tau: float = 0.996,
                 **base: Any) -> None:
        super().__init__(base_tau=base_tau, **base)
        self.head = DINOHead(self.feature_dim, out_dim, proj_hidden_dim, bottleneck_dim, head_layers,
                             head_batch_norm, norm_last_layer)
        self.teacher_head = self.make_teacher(self.head)
        self.register_buffer("center", torch.zeros(1, out_dim))

    @property
    def teacher_temp(self) -> float:
        """Linear warm-up over the first epochs, then constant (``np.linspace`` per epoch, as the
        official code)."""
        hp = self.hparams
        return warmed_up(self.current_epoch, hp.warmup_teacher_temp_epochs, hp.warmup_teacher_temp, hp.teacher_temp)

    def ssl_loss(self, feats: list[Tensor], teacher_feats: list[Tensor]) -> dict[str, Any]:
        hp = self.hparams
        emb = [self.head.bottleneck(f) for f in feats]
        student = [self.head.last_layer(e) for e in emb]
        with torch.no_grad():
            teacher = [self.teacher_head(t) for t in teacher_feats]
        temp = self.teacher_temp
        loss = losses.dino_loss(student, teacher, self.center, hp.student_temp, temp)
        er = self.er_inputs(student, teacher, temp)
        self.center.copy_(losses.ema_center(self.center, losses.batch_center(teacher), hp.center_momentum))
        if self._trainer is not None and self.is_logging_step:
            self.log("teacher_temp", temp, on_step=True, on_epoch=False)
        return {"loss": loss, "z": emb[: self.num_global_views], "er": er}

    def er_inputs(self, student: list[Tensor], teacher: list[Tensor], teacher_temp: float) -> ERInputs:
        """The ER objective's inputs (Rodriguez-Galvez et al. 2023, Sec. 5): entropy of the batch-mean
        student softmax of the global views (the distribution the teacher's targets are drawn from,
        and the one whose collapse the centring guards against), reconstruction of the centred,
        sharpened teacher distribution of view i from the student logits of every other view j,
        the same pairs as ``dino_loss``."""
        s = [x / self.hparams.student_temp for x in student]
        with torch.no_grad():
            t = [torch.softmax((x - self.center) / teacher_temp, dim=-1) for x in teacher]
        pairs = [(s[j], t[i]) for i in range(len(t)) for j in range(len(s)) if j != i]
        return ERInputs.softmax(entropy_logits=s[: self.num_global_views], pairs=pairs)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Freeze the last layer during the first epoch(s) (its gradients are dropped, so the
        optimiser skips it), then clip each parameter's gradient norm (official ``clip_gradients``)."""
        if self.current_epoch < self.hparams.freeze_last_layer_epochs:
            for p in self.head.last_layer.parameters():
                p.grad = None
        if self.hparams.clip_grad > 0:
            for p in self.parameters():
                if p.grad is not None:
                    torch.nn.utils.clip_grad_norm_(p, self.hparams.clip_grad)
