"""BaseMethod: what every SSL method shares, so a method file only declares heads and a loss.

Owns the backbone (from the registry), the multi-view batch contract, the optimiser with its
per-step warmup+cosine schedule at the batch-scaled LR that the build layer derives
(``set_schedule``; ``warmup_start_factor`` sets where the warm-up starts, ``final_weight_decay``
ramps the weight decay over the run), divergence checks, RNG state in checkpoints, and (via ``configure_callbacks``)
online linear probing, k-NN evaluation and the collapse monitor.
"""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from .. import rng_streams
from ..backbones import build_backbone
from ..data.train_data import TrainData
from ..distributed import gather_no_grad, gather_with_grad
from ..errors import DivergenceError
from ..optim import TrainingSchedule, build_optimizer, parameter_groups, warmup_cosine_scheduler
from .er import ERInputs, ERSettings

SSLOutput = Tensor | dict[str, Any]


class BaseMethod(pl.LightningModule):
    """Base class of all methods.

    A subclass builds its heads in ``__init__`` and implements ``ssl_loss(feats)``: given the
    backbone features of the views (a list of (B, D) tensors, global views first), return the loss,
    or a dict ``{"loss": loss, "z": [z1, z2, ...]}`` where ``z`` are the per-view embeddings the
    collapse monitor should watch (by default it watches the backbone features), and optionally
    ``"er": ERInputs(...)``, the method's inputs to the ER objective (``ssl_bench/methods/er.py``):
    with ``er_entropy_weight`` set, the loss becomes ``reconstruction - er_entropy_weight * entropy``.

    Batches are ``(views, labels)``: ``views`` a list of N image tensors (2 global views, then
    optional small crops); labels are used only by the evaluation callbacks, never by the loss.
    A subclass that sets ``needs_sample_indices = True`` gets ``(views, labels, indices)`` from the
    data module (indices into the training split, for per-sample memory) and reads them itself.
    """

    #: number of leading views that are global (full-resolution) views
    num_global_views: int = 2
    #: ask the data module for ``(views, labels, indices)`` training batches (the sample-index contract)
    needs_sample_indices: bool = False
    #: the evaluated network is the registry's ``backbone`` with ``backbone_kwargs``; a method that
    #: replaces it (CMC: one encoder per colour view) sets False, so a sweep gives it its own random-init row
    evaluates_registry_backbone: bool = True

    def __init__(
        self,
        backbone: str = "resnet18",
        backbone_kwargs: dict | None = None,
        num_classes: int = 10,
        optimizer: str = "sgd",
        lr: float = 0.05,
        weight_decay: float = 5e-4,
        momentum: float = 0.9,
        lars_trust_coeff: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        exclude_bias_n_norm: bool = True,
        lr_scaling: str = "linear",
        reference_batch_size: int = 256,
        warmup_epochs: float = 10.0,
        final_lr_factor: float = 0.0,
        warmup_start_factor: float = 0.0,
        final_weight_decay: float | None = None,
        fused_optimizer: bool = True,
        concat_views: bool = True,
        check_finite_every_n_steps: int = 50,
        linear_probe: bool = True,
        probe_lr: float = 0.1,
        knn: bool = True,
        knn_k: int = 20,
        knn_temperature: float = 0.07,
        collapse_monitor: bool = True,
        monitor_every_n_steps: int = 50,
        monitor_buffer_size: int = 2048,
        monitor_kappa: float | None = None,
        er_entropy_weight: float | None = None,
        er_reconstruction: str = "auto",
        er_kappa: float = 10.0,
        er_entropy_reduction: str = "average",
        er_leave_one_out: bool = False,
        channels_last: bool = False,
        compile_backbone: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.er_settings = ERSettings(er_entropy_weight, er_reconstruction, er_kappa, er_entropy_reduction, er_leave_one_out)
        self.backbone, self.feature_dim = build_backbone(backbone, **(backbone_kwargs or {}))
        if channels_last:
            self.backbone = self.backbone.to(memory_format=torch.channels_last)
        if compile_backbone:
            self.backbone.compile()
        self.register_buffer("_nonfinite_steps", torch.zeros((), dtype=torch.long), persistent=False)
        self.schedule: TrainingSchedule | None = None  # set by the build layer (set_schedule)

    # ----------------------------------------------------------------------------- forward pieces
    def forward(self, images: Tensor) -> Tensor:
        """Backbone features of an image batch (what evaluation uses)."""
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.backbone(images)

    def encode_views(self, views: list[Tensor], encoder=None) -> list[Tensor]:
        """Features of each view. Views of the same resolution go through the encoder as one batch
        (``concat_views``: fewer, larger kernels; BatchNorm then sees all views, as in SimCLR's
        global BN), and the result is split back per view."""
        encoder = encoder or self.forward
        if not self.hparams.concat_views:
            return [encoder(v) for v in views]
        feats: list[Tensor | None] = [None] * len(views)
        by_shape: dict[tuple, list[int]] = {}
        for i, v in enumerate(views):
            by_shape.setdefault(tuple(v.shape[1:]), []).append(i)
        for idx in by_shape.values():
            out = encoder(torch.cat([views[i] for i in idx])).chunk(len(idx))
            for i, f in zip(idx, out):
                feats[i] = f
        return feats  # type: ignore[return-value]

    def gather(self, x: Tensor, sync_grads: bool = True) -> Tensor:
        """Concatenate ``x`` over all ranks in rank order (with gradients flowing back to each rank's
        part unless ``sync_grads=False``); the identity on one process. Plain ``torch.distributed``
        (what Lightning's ``all_gather`` wraps), so it also works in a bare process group: the
        1-process vs 2-process equality tests call methods without a Trainer."""
        return gather_with_grad(x) if sync_grads else gather_no_grad(x)

    def ssl_loss(self, feats: list[Tensor]) -> SSLOutput:
        """The method's loss from the per-view backbone features. Subclasses implement this."""
        raise NotImplementedError(f"{type(self).__name__} must implement ssl_loss(feats)")

    def compute_ssl_loss(self, views: list[Tensor]) -> tuple[list[Tensor], SSLOutput]:
        """Features of the views and the method's loss (BaseMomentumMethod adds the teacher)."""
        feats = self.encode_views(views)
        return feats, self.ssl_loss(feats)

    # ----------------------------------------------------------------------------- steps
    def training_step(self, batch: tuple[list[Tensor], Tensor], batch_idx: int) -> dict[str, Any]:
        views, labels = batch[0], batch[1]  # batch[2]: sample indices, for methods that ask for them
        feats, out = self.compute_ssl_loss(views)
        out = self.er_settings.apply(out if isinstance(out, dict) else {"loss": out}, type(self).__name__)
        loss = out["loss"]
        self._check_finite(loss)
        self.log("train_loss", loss.detach(), on_step=False, on_epoch=True, prog_bar=False, sync_dist=True)
        self.log("train_loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        if self.is_logging_step:
            self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
            for key in ("er_entropy", "er_reconstruction"):
                if key in out:
                    self.log(key, out[key], on_step=True, on_epoch=False)
        monitored = out.get("z") or feats[: self.num_global_views]
        return {  # what the callbacks read in on_train_batch_end
            "loss": loss,
            "feats": feats[0].detach(),
            "labels": labels,
            "z": [z.detach() for z in monitored],
            "er": out["er"].detached() if isinstance(out.get("er"), ERInputs) else None,
        }

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Backbone features of un-augmented images, for the probe and k-NN callbacks
        (dataloader 0: val split; 1: the train split used as k-NN bank)."""
        images, labels = batch
        return {"feats": self(images).float(), "labels": labels}

    @property
    def is_logging_step(self) -> bool:
        """True on the steps the logger writes; per-step extras are logged only then (each
        ``self.log`` costs ~0.5 ms of Python)."""
        return self.global_step % max(1, self.trainer.log_every_n_steps) == 0

    def _check_finite(self, loss: Tensor) -> None:
        """Count non-finite losses on the device; synchronise (``int()``) only every N steps, and
        always before a checkpoint is written (``on_save_checkpoint``)."""
        self._nonfinite_steps += (~torch.isfinite(loss.detach())).long()
        every = max(1, self.hparams.check_finite_every_n_steps)
        if self.global_step % every == 0:
            self.raise_if_diverged()

    def raise_if_diverged(self) -> None:
        if int(self._nonfinite_steps) > 0:
            raise DivergenceError(
                f"loss became NaN/inf by step {self.global_step} (epoch {self.current_epoch}); "
                "try a lower lr or more warmup")

    # ----------------------------------------------------------------------------- what it is handed
    def attach_data(self, data: TrainData) -> None:
        """What the method needs from its training data (``TrainData``), handed over by the build layer
        before ``fit`` (``build.prepare_fit``), before a checkpoint is restored. Default: nothing.
        Override it rather than reading ``trainer.datamodule``."""

    # ----------------------------------------------------------------------------- optimisation
    def set_schedule(self, schedule: TrainingSchedule) -> None:
        """The derived optimisation values (``build.derive_schedule``: global batch, scaled lr, steps),
        computed once from the whole config; the optimiser, its schedule and the probe use them as they are."""
        self.schedule = schedule

    def _schedule_for(self, trainer: pl.Trainer) -> TrainingSchedule:
        schedule = self.schedule
        if schedule is None:
            raise RuntimeError(f"{type(self).__name__} has no training schedule: build the run with "
                               "ssl_bench.build (pretrain does), or call set_schedule(derive_schedule(...)) "
                               "before fitting with a Trainer of your own")
        stepping = int(trainer.estimated_stepping_batches)
        if stepping != schedule.total_steps:
            raise RuntimeError(f"the schedule was derived for {schedule.total_steps} optimiser steps, but the "
                               f"trainer will take {stepping}: derive it from this trainer and data module")
        return schedule

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        schedule = self._schedule_for(self.trainer)
        groups = parameter_groups(self, hp.weight_decay, hp.exclude_bias_n_norm)
        fused = hp.fused_optimizer and self.device.type == "cuda"
        opt = build_optimizer(hp.optimizer, groups, schedule.lr, momentum=hp.momentum,
                              lars_trust_coeff=hp.lars_trust_coeff, betas=tuple(hp.betas), fused=fused)
        sched = warmup_cosine_scheduler(opt, schedule.warmup_steps, schedule.total_steps, hp.final_lr_factor,
                                        hp.warmup_start_factor, hp.final_weight_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ----------------------------------------------------------------------------- callbacks
    def configure_callbacks(self) -> list[pl.Callback]:
        """Every method gets the probe, k-NN and collapse monitor without asking."""
        from ..callbacks import CollapseMonitor, KNNEvaluator, OnlineLinearProbe

        hp = self.hparams
        callbacks: list[pl.Callback] = []
        if hp.linear_probe:
            callbacks.append(OnlineLinearProbe(self.feature_dim, hp.num_classes, lr=hp.probe_lr,
                                               total_steps=self.schedule.total_steps if self.schedule else None))
        if hp.knn:
            callbacks.append(KNNEvaluator(k=hp.knn_k, temperature=hp.knn_temperature))
        if hp.collapse_monitor:
            callbacks.append(CollapseMonitor(every_n_steps=hp.monitor_every_n_steps,
                                             buffer_size=hp.monitor_buffer_size,
                                             kappa=hp.monitor_kappa or self.er_settings.kappa,
                                             reduction=self.er_settings.reduction, leave_one_out=self.er_settings.leave_one_out))
        return callbacks

    # ----------------------------------------------------------------------------- checkpoint state
    def setup(self, stage: str) -> None:
        """Fitting under DDP: each rank gets its own random stream (``rng_streams.split_per_rank``), so
        ranks draw different augmentations; a resumed run then restores every rank's own stream."""
        if stage == "fit" and self._trainer is not None:
            rng_streams.split_per_rank(self.global_rank, self.trainer.world_size)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse to save diverged weights, and store every RNG (each rank's) so a resumed run continues exactly."""
        self.raise_if_diverged()
        checkpoint["rng_states"] = rng_streams.capture(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states")
        if states:
            rng_streams.restore(states, self.global_rank, self.device)
