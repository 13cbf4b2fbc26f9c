"""BaseMomentumMethod: an EMA teacher (BYOL, MoCo, DINO, ...) with a cosine (or linear) momentum schedule."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from ..optim import RAMPS, ramp
from .base import BaseMethod, SSLOutput


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, tau: float, buffers: bool = True) -> None:
    """teacher <- tau * teacher + (1 - tau) * student, in place, one fused foreach call per kind
    (Grill et al. 2020, Sec. 3.1: xi <- tau xi + (1 - tau) theta). Integer buffers (BatchNorm's
    num_batches_tracked) are copied."""
    t_params = [p for p in teacher.parameters()]
    s_params = [p.detach() for p in student.parameters()]
    torch._foreach_lerp_(t_params, s_params, 1.0 - tau)
    if not buffers:
        return
    t_float, s_float = [], []
    for tb, sb in zip(teacher.buffers(), student.buffers()):
        if tb.is_floating_point():
            t_float.append(tb)
            s_float.append(sb)
        else:
            tb.copy_(sb)
    if t_float:
        torch._foreach_lerp_(t_float, s_float, 1.0 - tau)


class BaseMomentumMethod(BaseMethod):
    """Adds teacher copies of chosen online modules, updated by EMA after every optimiser step.

    The EMA coefficient rises from ``base_tau`` to ``final_tau`` over the run by a half-cosine
    (``tau_schedule: cosine``, BYOL's) or linearly (``linear``, I-JEPA's and MSN's).

    ``self.teacher_backbone`` always exists; a subclass makes more with
    ``self.teacher_projector = self.make_teacher(self.projector)``. It then implements
    ``ssl_loss(feats, teacher_feats)`` where ``teacher_feats`` are the teacher backbone's features
    of the global views.
    """

    def __init__(self, base_tau: float = 0.99, final_tau: float = 1.0, tau_schedule: str = "cosine",
                 ema_buffers: bool = True, **base: Any) -> None:
        if tau_schedule not in RAMPS:
            raise ValueError(f"tau_schedule must be one of {', '.join(RAMPS)}, got {tau_schedule!r}")
        super().__init__(**base)
        self.momentum_pairs: list[tuple[nn.Module, nn.Module]] = []
        self.teacher_backbone = self.make_teacher(self.backbone)

    def make_teacher(self, online: nn.Module) -> nn.Module:
        """A frozen copy of ``online`` registered for EMA updates."""
        teacher = copy.deepcopy(online)
        teacher.requires_grad_(False)
        self.momentum_pairs.append((online, teacher))
        return teacher

    @property
    def tau(self) -> float:
        # the run's derived step count (set_schedule); outside a fit (unit tests) the schedule may be unset
        total = self.schedule.total_steps if self.schedule is not None else 1
        hp = self.hparams
        return ramp(self.global_step, total, hp.base_tau, hp.final_tau, hp.tau_schedule)

    def teacher_forward(self, images: Tensor) -> Tensor:
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.teacher_backbone(images)

    def compute_ssl_loss(self, views: list[Tensor]) -> tuple[list[Tensor], SSLOutput]:
        feats = self.encode_views(views)
        with torch.no_grad():
            teacher_feats = self.encode_views(views[: self.num_global_views], self.teacher_forward)
        return feats, self.ssl_loss(feats, teacher_feats)

    def ssl_loss(self, feats: list[Tensor], teacher_feats: list[Tensor]) -> SSLOutput:  # type: ignore[override]
        raise NotImplementedError(f"{type(self).__name__} must implement ssl_loss(feats, teacher_feats)")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """EMA step after the optimiser step (skipped on gradient-accumulation micro-batches)."""
        if (batch_idx + 1) % self.trainer.accumulate_grad_batches:
            return
        tau = self.tau
        for online, teacher in self.momentum_pairs:
            ema_update_(teacher, online, tau, self.hparams.ema_buffers)
        if self.is_logging_step:
            self.log("tau", tau, on_step=True, on_epoch=False)
