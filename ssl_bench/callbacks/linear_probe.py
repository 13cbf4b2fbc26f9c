"""Online linear probe: a linear classifier trained on detached backbone features during SSL."""
from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional.classification import multiclass_accuracy

from ..distributed import gather_uneven
from .eval_split import gather_split


class OnlineLinearProbe(pl.Callback):
    """Trains ``nn.Linear(feature_dim, num_classes)`` on the detached features of the first view of
    every training batch (its own SGD optimiser, Nesterov momentum, no weight decay, cosine lr),
    and logs ``val_linear_top1`` / ``val_linear_top5`` on validation dataloader 0 (the whole split,
    gathered over ranks, each image once).

    Under DDP the features of all ranks are gathered and every rank takes the same step, so the
    probes stay identical without wrapping them in DDP. Reads ``outputs["feats"]`` /
    ``outputs["labels"]`` from training_step and validation_step.
    """

    def __init__(self, feature_dim: int, num_classes: int, lr: float = 0.1, momentum: float = 0.9,
                 total_steps: int | None = None) -> None:
        """``total_steps``: the run's optimiser steps (the cosine schedule's length; the build layer's
        derived value). Needed to train; a validation-only use may leave it out."""
        self.feature_dim, self.num_classes, self.total_steps = feature_dim, num_classes, total_steps
        self.lr, self.momentum = lr, momentum
        self.probe = nn.Linear(feature_dim, num_classes)
        self.optimizer = torch.optim.SGD(self.probe.parameters(), lr=lr, momentum=momentum, nesterov=True)
        self._logits: list[Tensor] = []
        self._labels: list[Tensor] = []
        self._pending_state: dict | None = None

    @property
    def state_key(self) -> str:
        return "OnlineLinearProbe"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        device = pl_module.device
        self.probe.to(device)
        # optimiser state created before .to() must follow the parameters
        for state in self.optimizer.state.values():
            for k, v in state.items():
                if isinstance(v, Tensor):
                    state[k] = v.to(device)

    def _lr(self, trainer: pl.Trainer) -> float:
        if self.total_steps is None:
            raise RuntimeError("OnlineLinearProbe was built without total_steps: it cannot train")
        progress = min(1.0, trainer.global_step / max(1, self.total_steps))
        return self.lr * 0.5 * (1 + math.cos(math.pi * progress))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        feats = gather_uneven(outputs["feats"].float())
        labels = gather_uneven(outputs["labels"])
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(trainer)
        with torch.enable_grad(), torch.autocast(pl_module.device.type, enabled=False):
            logits = self.probe(feats)
            # unlabelled images (STL-10's unlabeled split) carry label -1; no boolean indexing,
            # which would synchronise with the GPU every step
            loss = F.cross_entropy(logits, labels, ignore_index=-1, reduction="sum") / (labels >= 0).sum().clamp_min(1)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        if trainer.global_step % max(1, trainer.log_every_n_steps) == 0:
            pl_module.log("train_linear_loss", loss.detach(), on_step=True, on_epoch=False)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._logits, self._labels = [], []

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx != 0:
            return
        with torch.no_grad(), torch.autocast(pl_module.device.type, enabled=False):
            self._logits.append(self.probe(outputs["feats"].float()))
        self._labels.append(outputs["labels"])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._logits or trainer.sanity_checking:
            return
        # the whole val split, once each image (every rank computes the same value from it)
        logits, labels = gather_split(self._logits, trainer, 0), gather_split(self._labels, trainer, 0)
        self._logits, self._labels = [], []
        for k in (1, 5):
            acc = multiclass_accuracy(logits, labels, self.num_classes, top_k=min(k, self.num_classes), average="micro")
            pl_module.log(f"val_linear_top{k}", 100 * acc, sync_dist=True)  # equal on every rank

    def state_dict(self) -> dict[str, Any]:
        return {"probe": self.probe.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.probe.load_state_dict(state_dict["probe"])
        self.optimizer.load_state_dict(state_dict["optimizer"])
