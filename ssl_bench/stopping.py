"""How a run ends when it cannot finish: a scheduler's stop signal, or ranks that fell out of step.

- ``StopOnSigterm`` (a callback): SIGTERM (what SLURM and ``timeout`` send before they kill) only
  sets a flag; one process stops after the step it is in, several sum their flags (one scalar
  all-reduce) after each logging step (``trainer.log_every_n_steps``) and all stop after the same
  step, where ``LastCheckpoint`` saves the state reached, so ``--run.resume auto`` continues
  exactly. Lightning's own handler runs a collective inside the signal handler, which can pair with
  another rank's unrelated collective, and its validation loop stops one rank alone; this one does
  neither.
- ``collective_timeout_line``: a collective that waited past ``run.collective_timeout_minutes``
  (the process group's timeout) raises in the waiting rank, and the ranks still waiting then lose
  their peer; this turns either error into one line that names the rank, the collective and the
  code that called it.
"""
from __future__ import annotations

import os
import signal
import threading
import traceback
from types import FrameType, TracebackType
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from .distributed import all_reduce_sum

SIGTERM_EXIT_CODE = 128 + signal.SIGTERM  # the shell's convention for "ended by SIGTERM"
_LIBRARY_DIRS = tuple(os.sep + d + os.sep for d in ("torch", "pytorch_lightning", "lightning_fabric", "lightning"))


class Stopped(KeyboardInterrupt):
    """The run was stopped by SIGTERM; the message says which checkpoint was kept."""


class StopOnSigterm(pl.Callback):
    """Replaces Lightning's SIGTERM handler for the fit with one that only records the request; the
    ranks then decide together, after a training step, to stop there (``SIGTERMException``, which
    ``LastCheckpoint.on_exception`` answers with a checkpoint). Lightning's own check would let a
    rank stop alone in the middle of a validation while the others wait for it.

    A stop decided after an epoch's last batch waits for the epoch's end (its validation, hooks and
    epoch-end checkpoint) and ends the fit where the next epoch would start: Lightning resumes a
    checkpoint saved after the last batch as a finished epoch, without the validation and epoch-end
    hooks the uninterrupted run has there, so the resumed run would not continue exactly. A stop
    decided after the last batch of the last epoch lets the fit finish."""

    def __init__(self) -> None:
        self.received = False
        self.at_next_epoch = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread

        def request_stop(signum: int, frame: FrameType | None) -> None:
            self.received = True

        # Lightning restores the handlers it found before the fit when the fit ends
        signal.signal(signal.SIGTERM, request_stop)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.world_size == 1:
            stop = self.received  # a Python flag: no tensor, no host-device synchronisation
        elif trainer.global_step % max(1, trainer.log_every_n_steps) == 0:
            # the ranks agree on the logging steps only (the same steps on every rank): reading the
            # sum back is a synchronisation, which logging steps pay anyway
            flags = torch.tensor([float(self.received)], device=pl_module.device)
            stop = bool(all_reduce_sum(flags) > 0)  # any rank asked: every rank stops after this step
        else:
            return
        if stop:
            self.received = True
            if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
                self.at_next_epoch = True  # every rank: they agreed on ``stop`` and share the epoch length
                return
            raise SIGTERMException

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.at_next_epoch:
            raise SIGTERMException  # the last epoch-end checkpoint holds this state (LastCheckpoint.on_exception)


def collective_timeout_line(err: BaseException, rank: int, world_size: int, minutes: float) -> str | None:
    """One line for a collective that failed in this rank: it timed out (gloo: ``Timed out waiting
    ...``; NCCL's watchdog: ``... timeout ...``), or another rank ended while this one waited (gloo:
    ``Connection closed by peer``); ``None`` for any other error."""
    text = str(err).lower()
    if not isinstance(err, RuntimeError):
        return None
    collective, caller = _where(err.__traceback__)
    if "timed out" in text or "timeout" in text:
        what = f"waited more than {minutes:g} min (run.collective_timeout_minutes)"
    elif "closed by peer" in text or "connection reset" in text:
        what = "lost its peer (another rank ended while this one waited)"
    else:
        return None
    return (f"rank {rank} of {world_size}: {collective} {what} in {caller}; the ranks fell out of step (one "
            f"rank skipped or added a collective, died, or started too late); the last checkpoint is kept")


def _where(tb: TracebackType | None) -> tuple[str, str]:
    """The innermost torch.distributed call, and the innermost frame of the code that called it
    (outside torch and Lightning), with the Lightning hook it ran in."""
    frames = traceback.extract_tb(tb)
    collective = next((f.name for f in reversed(frames) if "distributed" in f.filename and
                       os.sep + "torch" + os.sep in f.filename), "a collective")
    own = [f for f in frames if not any(d in f.filename for d in _LIBRARY_DIRS)]
    hook = None
    while tb is not None:  # Lightning's hook runner keeps the hook's name in a local variable
        hook = tb.tb_frame.f_locals.get("hook_name", hook) if "pytorch_lightning" in tb.tb_frame.f_code.co_filename \
            else hook
        tb = tb.tb_next
    where = f"{own[-1].name} ({_short(own[-1].filename)}:{own[-1].lineno})" if own else "Lightning's loop"
    return collective, where + (f", during {hook}" if isinstance(hook, str) else "")


def _short(path: str) -> str:
    parts = path.split(os.sep)
    for anchor in ("ssl_bench", "tests", "benchmarks"):
        if anchor in parts:
            return os.sep.join(parts[parts.index(anchor):])
    return os.path.basename(path)
