"""Online linear probe: a linear classifier trained on detached backbone features during SSL."""
from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from ..distributed import gather_uneven


class OnlineLinearProbe(pl.Callback):
    """Trains ``nn.Linear(feature_dim, num_classes)`` on the detached features of the first view of
    every training batch (its own SGD optimiser, Nesterov momentum, no weight decay, cosine lr),
    and logs ``val_linear_top1`` / ``val_linear_top5`` on validation dataloader 0.

    Under DDP the features of all ranks are gathered and every rank takes the same step, so the
    probes stay identical without wrapping them in DDP. Reads ``outputs["feats"]`` /
    ``outputs["labels"]`` from training_step and validation_step.
    """

    def __init__(self, feature_dim: int, num_classes: int, lr: float = 0.1, momentum: float = 0.9) -> None:
        self.feature_dim, self.num_classes = feature_dim, num_classes
        self.lr, self.momentum = lr, momentum
        self.probe = nn.Linear(feature_dim, num_classes)
        self.optimizer = torch.optim.SGD(self.probe.parameters(), lr=lr, momentum=momentum, nesterov=True)
        self.top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")
        self._pending_state: dict | None = None

    @property
    def state_key(self) -> str:
        return "OnlineLinearProbe"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        device = pl_module.device
        self.probe.to(device)
        self.top1.to(device)
        self.top5.to(device)
        # optimiser state created before .to() must follow the parameters
        for state in self.optimizer.state.values():
            for k, v in state.items():
                if isinstance(v, Tensor):
                    state[k] = v.to(device)

    def _lr(self, trainer: pl.Trainer) -> float:
        total = max(1, int(trainer.estimated_stepping_batches))
        return self.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, trainer.global_step / total)))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        feats = gather_uneven(pl_module, outputs["feats"].float())
        labels = gather_uneven(pl_module, outputs["labels"])
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

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx != 0:
            return
        with torch.no_grad(), torch.autocast(pl_module.device.type, enabled=False):
            logits = self.probe(outputs["feats"].float())
        self.top1.update(logits, outputs["labels"])
        self.top5.update(logits, outputs["labels"])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.top1.update_count == 0:
            return
        # torchmetrics already synchronised the counts; sync_dist only averages equal values
        pl_module.log("val_linear_top1", 100 * self.top1.compute(), sync_dist=True)
        pl_module.log("val_linear_top5", 100 * self.top5.compute(), sync_dist=True)
        self.top1.reset()
        self.top5.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"probe": self.probe.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.probe.load_state_dict(state_dict["probe"])
        self.optimizer.load_state_dict(state_dict["optimizer"])
