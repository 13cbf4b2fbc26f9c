"""Collapse / ER monitor: embedding statistics logged every N steps for every method."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from ..distributed import gather_uneven
from ..metrics import alignment, rankme, uniformity, vmf_kde_entropy, vmf_reconstruction, z_std
from ..metrics.entropy import DEFAULT_KAPPA


class EmbeddingBuffer:
    """Ring buffer of the last ``size`` embedding pairs (view 1, view 2), kept on the device."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.z1: Tensor | None = None
        self.z2: Tensor | None = None
        self.count = 0

    def add(self, z1: Tensor, z2: Tensor) -> None:
        z1, z2 = z1[-self.size:].float(), z2[-self.size:].float()
        if self.z1 is None:
            self.z1 = z1.new_zeros(self.size, z1.shape[1])
            self.z2 = z1.new_zeros(self.size, z1.shape[1])
        idx = (torch.arange(z1.shape[0], device=z1.device) + self.count) % self.size
        self.z1[idx], self.z2[idx] = z1, z2
        self.count += z1.shape[0]

    def pairs(self) -> tuple[Tensor, Tensor]:
        n = min(self.count, self.size)
        return self.z1[:n], self.z2[:n]


@torch.no_grad()
def collapse_metrics(z1: Tensor, z2: Tensor, kappa: float) -> dict[str, Tensor]:
    """The logged statistics of paired embeddings (N, d): SimSiam's std of normalised embeddings,
    RankMe (Garrido et al. 2023), alignment/uniformity (Wang & Isola 2020), and the ER terms
    (Rodriguez-Galvez et al. 2023): vMF-KDE entropy and vMF reconstruction."""
    return {
        "z_std": z_std(z1),
        "rankme": rankme(z1),
        "alignment": alignment(z1, z2),
        "uniformity": uniformity(z1),
        "entropy": vmf_kde_entropy(z1, kappa),
        "reconstruction": vmf_reconstruction(z1, z2, kappa),
    }


class CollapseMonitor(pl.Callback):
    """Buffers the embeddings ``outputs["z"]`` (first two views) of each training step, gathered
    over ranks, and every ``every_n_steps`` optimiser steps (and at each epoch end) logs
    ``z_std``, ``rankme``, ``alignment``, ``uniformity``, ``entropy`` and ``reconstruction``."""

    def __init__(self, every_n_steps: int = 50, buffer_size: int = 2048, kappa: float | None = None) -> None:
        self.every_n_steps, self.kappa = every_n_steps, kappa or DEFAULT_KAPPA
        self.buffer = EmbeddingBuffer(buffer_size)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        z = outputs["z"]
        z1, z2 = (gather_uneven(pl_module, zi) for zi in (z[0], z[1] if len(z) > 1 else z[0]))
        self.buffer.add(z1, z2)
        if trainer.global_step % self.every_n_steps == 0:
            self._log(pl_module, on_step=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(pl_module, on_step=False)

    def _log(self, pl_module: pl.LightningModule, on_step: bool) -> None:
        if self.buffer.count < 2:
            return
        z1, z2 = self.buffer.pairs()
        if not (torch.isfinite(z1).all() and torch.isfinite(z2).all()):
            return  # a diverged step: BaseMethod reports it; SVD of NaNs would fail first
        # every rank holds the same gathered buffer, so no further sync is needed
        for name, value in collapse_metrics(z1, z2, kappa=self.kappa).items():
            pl_module.log(name, value, on_step=on_step, on_epoch=not on_step, sync_dist=not on_step)
