"""The reference for the training-overhead benchmark: the SimCLR / BYOL step in plain PyTorch.

Same modules, same pre-made batches, same forward, loss, backward, optimiser + per-step LR schedule
and (BYOL) EMA update as ``BaseMethod.training_step`` under Lightning, with nothing else: no Trainer,
no callbacks, no logging. Only ssl_bench's pure functions (losses, optimiser builders, EMA update)
are reused, so both sides do the same arithmetic.

- SimCLR (Chen et al. 2020): both views through the backbone as one batch, projector per view,
  NT-Xent (Eq. 1) at the method's temperature.
- BYOL (Grill et al. 2020): the same plus the no-grad teacher backbone/projector, the symmetrised
  normalised MSE (Eq. 2 + Eq. 4) and the EMA ``xi <- tau xi + (1 - tau) theta`` after the optimiser
  step with BYOL's cosine tau schedule (Sec. 3.2).
"""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch import Tensor

from ssl_bench import losses
from ssl_bench.methods import BYOL, BaseMethod, SimCLR, ema_update_
from ssl_bench.optim import (TrainingSchedule, build_optimizer, cosine_momentum, parameter_groups, scaled_lr,
                             warmup_cosine_scheduler)

Batch = tuple[list[Tensor], Tensor]


def make_batches(num_batches: int, batch_size: int, image_size: int = 32, num_views: int = 2,
                 num_classes: int = 10, seed: int = 0) -> list[Batch]:
    """``num_batches`` fixed ``(views, labels)`` CPU batches: ``num_views`` normalised-looking
    float (B, 3, S, S) views (standard normal) and int64 labels, seeded."""
    g = torch.Generator().manual_seed(seed)
    return [([torch.randn(batch_size, 3, image_size, image_size, generator=g) for _ in range(num_views)],
             torch.randint(0, num_classes, (batch_size,), generator=g))
            for _ in range(num_batches)]


def _backbone_input(model: BaseMethod, views: list[Tensor]) -> Tensor:
    x = torch.cat(views)  # concat_views: one backbone call for the equal-size global views
    return x.contiguous(memory_format=torch.channels_last) if model.hparams.channels_last else x


def bare_loss(model: BaseMethod, views: list[Tensor]) -> Tensor:
    """The method's loss written out with its modules (no Lightning, no logging, no callbacks)."""
    hp = model.hparams
    if not hp.concat_views or len(views) != 2:
        raise ValueError("the bare loop covers the default two global views with concat_views=True")
    x = _backbone_input(model, views)
    f1, f2 = model.backbone(x).chunk(2)
    z1, z2 = model.projector(f1), model.projector(f2)
    if isinstance(model, SimCLR):
        return losses.nt_xent(z1, z2, hp.temperature)
    if isinstance(model, BYOL):
        with torch.no_grad():
            t1, t2 = model.teacher_backbone(x).chunk(2)
        p1, p2 = model.predictor(z1), model.predictor(z2)
        tz1, tz2 = model.teacher_projector(t1), model.teacher_projector(t2)
        return losses.byol_loss(p1, tz2) + losses.byol_loss(p2, tz1)
    raise TypeError(f"no bare loop for {type(model).__name__}; written for SimCLR and BYOL")


def one_epoch_schedule(model: BaseMethod, batch_size: int, total_steps: int) -> TrainingSchedule:
    """The derived values (``build.derive_schedule``) of one process and one epoch of ``total_steps``
    premade batches of ``batch_size`` images: the fit and the bare loop are both handed this one."""
    hp = model.hparams
    return TrainingSchedule(global_batch_size=batch_size,
                            lr=scaled_lr(hp.lr, batch_size, hp.reference_batch_size, hp.lr_scaling),
                            warmup_steps=int(round(hp.warmup_epochs * total_steps)), steps_per_epoch=total_steps,
                            total_steps=total_steps)


def bare_optimization(model: BaseMethod, schedule: TrainingSchedule
                      ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimiser and per-step warmup+cosine schedule ``BaseMethod.configure_optimizers`` builds
    from ``schedule``."""
    hp = model.hparams
    groups = parameter_groups(model, hp.weight_decay, hp.exclude_bias_n_norm)
    fused = hp.fused_optimizer and model.device.type == "cuda"
    opt = build_optimizer(hp.optimizer, groups, schedule.lr, momentum=hp.momentum,
                          lars_trust_coeff=hp.lars_trust_coeff, betas=tuple(hp.betas), fused=fused)
    return opt, warmup_cosine_scheduler(opt, schedule.warmup_steps, schedule.total_steps, hp.final_lr_factor)


def ema_step(model: BaseMethod, step: int, total_steps: int) -> None:
    """BYOL's EMA of the teacher after optimiser step ``step`` (1-based, as Lightning's global_step)."""
    tau = cosine_momentum(step, total_steps, model.hparams.base_tau, model.hparams.final_tau)
    ema_update_(model.teacher_backbone, model.backbone, tau, model.hparams.ema_buffers)
    ema_update_(model.teacher_projector, model.projector, tau, model.hparams.ema_buffers)


class BareLoop:
    """One epoch of ``total_steps`` plain PyTorch training steps of ``model``: forward, loss, backward,
    optimiser step, LR-schedule step and (BYOL) EMA update, in Lightning's order (loss, zero_grad,
    backward, step; scheduler; then the EMA in on_train_batch_end)."""

    def __init__(self, model: BaseMethod, batch_size: int, total_steps: int) -> None:
        self.model, self.total_steps, self.steps_done = model, total_steps, 0
        self.optimizer, self.scheduler = bare_optimization(model, one_epoch_schedule(model, batch_size, total_steps))
        self.is_byol = isinstance(model, BYOL)
        model.train()

    def step(self, views: list[Tensor]) -> Tensor:
        loss = bare_loss(self.model, views)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.steps_done += 1
        if self.is_byol:
            ema_step(self.model, self.steps_done, self.total_steps)
        return loss.detach()


def run_bare_loop(model: BaseMethod, batches: list[Batch], clock: Callable[[], float] = time.perf_counter
                  ) -> list[float]:
    """Train ``model`` one epoch over ``batches``; returns ``clock()`` at the start of every step,
    plus one after the last step (so ``len(batches) + 1`` stamps, step i took ``t[i+1] - t[i]``)."""
    loop = BareLoop(model, batches[0][1].shape[0], len(batches))
    stamps = []
    for views, _labels in batches:
        stamps.append(clock())
        loop.step(views)
    stamps.append(clock())
    return stamps
