"""Collapse / ER monitor: embedding statistics logged every N steps for every method.

The ER terms (Rodriguez-Galvez et al. 2023) use the method's ER estimator settings (``er_kappa``,
``er_entropy_reduction``, ``er_leave_one_out``; ``monitor_kappa`` overrides the kappa), so the
logged nats are those the ER losses optimise. They are taken on the monitored embeddings ``z`` of
the first two views for every method (the same quantity whatever the method, ER or not):
``entropy`` = H(z1), ``reconstruction`` = E[-log vMF(z2; z1, kappa)], ``er_bound`` = their
difference, an ER estimate of I(Z1; Z2) with the identity as the reconstruction model (a method's
own loss may reconstruct through a predictor, as BYOL's ER loss does: its ``er_reconstruction``
per-step log is that term). A method that declares softmax ER inputs also gets
``softmax_entropy`` (of the mean softmax over the window since the last log), ``softmax_reconstruction``
and ``softmax_er_bound``.
"""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from ..distributed import gather_uneven
from ..distributed import all_reduce_sum
from ..metrics import alignment, rankme, softmax_entropy, uniformity, vmf_kde_entropy, vmf_reconstruction, z_std
from ..metrics.entropy import DEFAULT_KAPPA, softmax_window_sums


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
        elif self.z1.device != z1.device:  # restored from a checkpoint onto another device
            self.z1, self.z2 = self.z1.to(z1.device), self.z2.to(z1.device)
        idx = (torch.arange(z1.shape[0], device=z1.device) + self.count) % self.size
        self.z1[idx], self.z2[idx] = z1, z2
        self.count += z1.shape[0]

    def pairs(self) -> tuple[Tensor, Tensor]:
        n = min(self.count, self.size)
        return self.z1[:n], self.z2[:n]


@torch.no_grad()
def collapse_metrics(z1: Tensor, z2: Tensor, kappa: float, reduction: str = "average",
                     leave_one_out: bool = False) -> dict[str, Tensor]:
    """The logged statistics of paired embeddings (N, d): SimSiam's std of normalised embeddings,
    RankMe (Garrido et al. 2023), alignment/uniformity (Wang & Isola 2020), and the ER terms
    (Rodriguez-Galvez et al. 2023): vMF-KDE entropy, vMF reconstruction and their difference."""
    entropy = vmf_kde_entropy(z1, kappa, reduction, leave_one_out and z1.shape[0] > 1)
    reconstruction = vmf_reconstruction(z1, z2, kappa)
    return {
        "z_std": z_std(z1),
        "rankme": rankme(z1),
        "alignment": alignment(z1, z2),
        "uniformity": uniformity(z1),
        "entropy": entropy,
        "reconstruction": reconstruction,
        "er_bound": entropy - reconstruction,
    }


class SoftmaxWindow:
    """Running sums since the last log of a softmax method's ER inputs: the summed probabilities
    (K,) of its first entropy input and the summed cross-entropy of its first pair. Sums rather
    than a buffer of rows: K can be 65,536 (DINO)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prob_sum: Tensor | None = None
        self.ce_sum: Tensor | None = None
        self.count = 0

    def add(self, prob_sum: Tensor, ce_sum: Tensor, count: int) -> None:
        self.prob_sum = prob_sum if self.prob_sum is None else self.prob_sum.to(prob_sum.device) + prob_sum
        self.ce_sum = ce_sum if self.ce_sum is None else self.ce_sum.to(ce_sum.device) + ce_sum
        self.count += count

    def metrics(self) -> dict[str, Tensor]:
        """Entropy of the window's mean softmax, mean cross-entropy, and their difference; resets."""
        assert self.prob_sum is not None and self.ce_sum is not None
        entropy = softmax_entropy((self.prob_sum / self.count).unsqueeze(0))
        reconstruction = self.ce_sum / self.count
        self.reset()
        return {"softmax_entropy": entropy, "softmax_reconstruction": reconstruction,
                "softmax_er_bound": entropy - reconstruction}


class CollapseMonitor(pl.Callback):
    """Buffers the embeddings ``outputs["z"]`` (first two views) of each training step, gathered
    over ranks, and every ``every_n_steps`` optimiser steps (and at each epoch end) logs
    ``z_std``, ``rankme``, ``alignment``, ``uniformity``, ``entropy``, ``reconstruction`` and
    ``er_bound`` (plus the ``softmax_*`` terms for methods declaring softmax ER inputs)."""

    def __init__(self, every_n_steps: int = 50, buffer_size: int = 2048, kappa: float | None = None,
                 reduction: str = "average", leave_one_out: bool = False) -> None:
        self.every_n_steps, self.kappa = every_n_steps, kappa or DEFAULT_KAPPA
        self.reduction, self.leave_one_out = reduction, leave_one_out
        self.buffer = EmbeddingBuffer(buffer_size)
        self.softmax = SoftmaxWindow()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        z = outputs["z"]
        z1, z2 = (gather_uneven(zi) for zi in (z[0], z[1] if len(z) > 1 else z[0]))
        self.buffer.add(z1, z2)
        er = outputs.get("er")
        if er is not None and er.support == "softmax":
            prob_sum, ce_sum, count = softmax_window_sums(er.entropy[0], er.pairs[0])
            # sums over ranks: the window statistics are those of the global batch
            self.softmax.add(all_reduce_sum(prob_sum), all_reduce_sum(ce_sum),
                             int(all_reduce_sum(torch.tensor(count, device=prob_sum.device))))
        if trainer.global_step % self.every_n_steps == 0:
            self._log(pl_module, on_step=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(pl_module, on_step=False)

    def state_dict(self) -> dict[str, Any]:
        """The buffered embeddings and the softmax window (the same on every rank) go into checkpoints,
        so a resumed run logs the statistics the uninterrupted run logs."""
        b, w = self.buffer, self.softmax
        return {"z1": b.z1, "z2": b.z2, "count": b.count, "prob_sum": w.prob_sum, "ce_sum": w.ce_sum,
                "window_count": w.count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.buffer.z1, self.buffer.z2, self.buffer.count = state_dict["z1"], state_dict["z2"], state_dict["count"]
        self.softmax.prob_sum, self.softmax.ce_sum = state_dict["prob_sum"], state_dict["ce_sum"]
        self.softmax.count = state_dict["window_count"]

    def _log(self, pl_module: pl.LightningModule, on_step: bool) -> None:
        if self.buffer.count < 2:
            return
        z1, z2 = self.buffer.pairs()
        if not (torch.isfinite(z1).all() and torch.isfinite(z2).all()):
            return  # a diverged step: BaseMethod reports it; SVD of NaNs would fail first
        # every rank holds the same gathered buffer (and window sums), so no further sync is needed
        metrics = collapse_metrics(z1, z2, self.kappa, self.reduction, self.leave_one_out)
        if self.softmax.count:
            metrics.update(self.softmax.metrics())
        for name, value in metrics.items():
            pl_module.log(name, value, on_step=on_step, on_epoch=not on_step, sync_dist=not on_step)
