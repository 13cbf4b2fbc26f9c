"""Checkpoint and log files that survive crashes and resumes.

- ``AtomicCheckpointIO``: ``last.ckpt`` is written to ``last.ckpt.tmp`` and renamed over the old one.
- ``LastCheckpoint``: the only checkpoint callback: one file, rewritten at every epoch end and,
  optionally, every N optimiser steps and/or every M minutes (mid-epoch; resume stays exact). It
  stores an ``ssl_bench`` entry in the checkpoint: the method and backbone (checked before a
  resume), the first metrics step a resumed run logs, and the cumulative training time.
- ``RunCSVLogger``: ``<run dir>/metrics.csv``, flushed at every logging step; ``truncate_metrics``
  drops the rows a resumed run is about to log again. ``hparams.yaml`` is plain YAML.
"""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.plugins.io import TorchCheckpointIO

from .config import to_yaml
from .run_dir import write_atomic

CKPT_META = "ssl_bench"  # the checkpoint entry written by LastCheckpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``path.tmp`` then renames it over ``path``: a crash mid-write (or a diverging loss,
    which BaseMethod refuses to save) never destroys the last good checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str, storage_options: Any = None) -> None:
        # Written here rather than with Lightning's _atomic_save, which stages the file in the system
        # temp dir (fsspec's transaction): a full /tmp failed a run whose own disk had room, and a
        # failed write left the staged copy behind. A failed write here removes its .tmp.
        tmp = Path(f"{path}.tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)


class LastCheckpoint(Checkpoint):
    """Keeps ``<dirpath>/last.ckpt`` current: at every epoch end and, when set, every
    ``every_n_steps`` optimiser steps and/or every ``every_seconds`` of training (the time test is
    decided on rank 0 and broadcast, so all ranks save together).

    Lightning's ModelCheckpoint cannot combine a step or time interval with epoch-end saves in one
    callback (its options are mutually exclusive), hence this small one. Subclassing ``Checkpoint``
    keeps Lightning from adding its default ModelCheckpoint.
    """

    def __init__(self, dirpath: str | os.PathLike, every_n_steps: int | None = None,
                 every_seconds: float | None = None, metadata: dict[str, Any] | None = None,
                 previous_seconds: float = 0.0) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_steps, self.every_seconds = every_n_steps, every_seconds
        self.metadata = dict(metadata or {})
        self.previous_seconds = previous_seconds
        self._start: float | None = None
        self._last_save = time.monotonic()
        self._next_log_step = 0
        self.saved_at_stop: int | None = None  # the global step saved when a stop request ended the fit
        self._saved_step: int | None = None     # the global step of the last save of this process

    @property
    def train_seconds(self) -> float:
        """Training time of this run including the earlier processes it resumed (up to their checkpoint)."""
        now = time.monotonic()
        return self.previous_seconds + (now - self._start if self._start is not None else 0.0)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last_save = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loop = trainer.fit_loop.epoch_loop
        if loop.batch_progress.is_last_batch:
            return  # the epoch-end checkpoint follows
        due = bool(self.every_n_steps) and trainer.global_step % self.every_n_steps == 0
        if self.every_seconds:
            late = time.monotonic() - self._last_save >= self.every_seconds
            due = due or bool(trainer.strategy.broadcast(late))
        if due:
            # Lightning logs this batch's metrics right after this hook at step `_batches_that_stepped`
            # and a run resumed from here starts logging one step later
            self._save(trainer, next_log_step=loop._batches_that_stepped + 1)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the epoch's metrics are logged after this hook at step `_batches_that_stepped - 1`; a resumed
        # run starts logging at `_batches_that_stepped`
        self._save(trainer, next_log_step=trainer.fit_loop.epoch_loop._batches_that_stepped)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """A stop request (SIGTERM, ``stopping.StopOnSigterm``) ends the fit after a training step on
        every rank together: save the state reached there."""
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.training and self._start is not None:
            # raised in on_train_batch_end (StopOnSigterm): saved as a mid-epoch checkpoint there; the
            # stopped batch's metrics row is not written, and a resumed run logs from the next step.
            # Raised at an epoch's start: the previous epoch's end saved this step already.
            if trainer.global_step != self._saved_step:
                self._save(trainer, next_log_step=trainer.fit_loop.epoch_loop._batches_that_stepped + 1)
            self.saved_at_stop = trainer.global_step

    def _save(self, trainer: pl.Trainer, next_log_step: int) -> None:
        self._next_log_step = next_log_step
        trainer.save_checkpoint(self.path, weights_only=False)  # the full training state
        self._last_save = time.monotonic()
        self._saved_step = trainer.global_step

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[CKPT_META] = {**self.metadata, "next_log_step": self._next_log_step,
                                 "train_seconds": round(self.train_seconds, 3)}


# ----------------------------------------------------------------------------- metrics.csv

def truncate_metrics(path: str | os.PathLike, next_step: int) -> int:
    """Drop the rows of ``metrics.csv`` logged at ``step >= next_step``: a run resumed from a
    checkpoint logs those steps again. Returns the number of rows dropped; the file is rewritten
    atomically."""
    path = Path(path)
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    kept = [r for r in rows if not r.get("step") or int(float(r["step"])) < next_step]
    if len(kept) != len(rows):
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
        write_atomic(path, out.getvalue())
    return len(rows) - len(kept)


class _RunDirWriter(ExperimentWriter):
    """Lightning's CSV writer warns about any non-empty directory and deletes metrics.csv; the run
    directory always holds config.yaml, so: append when resuming, else start metrics.csv afresh.
    Header changes are rewritten atomically; ``hparams.yaml`` is written as plain YAML."""

    append = False

    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        if not self.append:
            self._fs.rm_file(self.metrics_file_path)
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            self.metrics_keys = list(csv.DictReader(f).fieldnames or [])

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as f:
            rows = list(csv.DictReader(f))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.metrics_file_path, out.getvalue())

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(params)
        write_atomic(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), to_yaml(self.hparams))


class _AppendingWriter(_RunDirWriter):
    append = True


class RunCSVLogger(CSVLogger):
    """CSVLogger writing ``<run dir>/metrics.csv`` at every logging step (a kill loses no logged row);
    keeps earlier rows when ``append`` (resume)."""

    def __init__(self, run_dir: str, append: bool = False) -> None:
        super().__init__(save_dir=run_dir, name="", version="", flush_logs_every_n_steps=1)
        self._writer_cls = _AppendingWriter if append else _RunDirWriter

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = self._writer_cls(log_dir=self.log_dir)
        return self._experiment
