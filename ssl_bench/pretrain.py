"""One pretraining run: config -> data module, method, trainer -> run directory.

The run directory holds ``config.yaml`` (the resolved config), ``metrics.csv``,
``checkpoints/last.ckpt`` and ``summary.json`` (DESIGN.md, "Contracts").

Nothing a user types loses a result:

- everything is built and checked (config keys and types, data, model on one dummy batch, trainer,
  the checkpoint to resume) before the run directory is touched;
- a directory holding an earlier run (``run_dir.run_state``: partial or finished) is refused in one
  line unless ``run.resume`` (continue it) or ``run.overwrite`` (delete its files, start afresh);
- ``run.resume auto`` on a finished run returns its summary untouched (more epochs continue it);
- after a resume, the metrics.csv rows the resumed run logs again are dropped first, and
  ``fit_seconds`` is the cumulative training time.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger

from . import locking, run_dir as rd
from .build import (TRAINER_DEFAULTS, build_datamodule, build_loggers, build_method, build_trainer,
                    check_model_input, derived_values, method_path, schedule_model)
from .checkpointing import CKPT_META, LastCheckpoint, truncate_metrics
from .config import DERIVED, check_run, dump_config, plain
from .distributed import is_launch_rank_zero
from .errors import RUN_NOTE, CollectiveTimeoutError, ConfigError, DivergenceError, RunDirectoryError
from .methods import BaseMethod
from .stopping import StopOnSigterm, Stopped, collective_timeout_line

SUMMARY_KEYS = ("val_knn_top1", "val_knn_top5", "val_linear_top1", "val_linear_top5", "train_loss",
                "rankme", "z_std", "entropy", "reconstruction", "alignment", "uniformity")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says which checkpoint was kept."""


def run_name(cfg: dict[str, dict[str, Any]]) -> str:
    """``run.name``, else ``<method>-<dataset name>-seed<seed>`` (the dataset's name: ``data.name``,
    else a folder dataset's root folder name, else ``data.dataset``; see ``sources.dataset_name``)."""
    from .data.sources import dataset_name

    method = str(cfg["model"].get("name", "method")).rsplit(".", 1)[-1].lower()
    return cfg["run"]["name"] or f"{method}-{dataset_name(cfg['data'])}-seed{cfg['run']['seed']}"


def _final_metrics(trainer: pl.Trainer) -> dict[str, float]:
    out = {}
    for key, value in trainer.callback_metrics.items():
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        out[key] = value if math.isfinite(value) else None
    return out


def read_resume_checkpoint(path: Path, model: BaseMethod) -> dict[str, Any]:
    """Load ``path`` safely (plain tensors only) and check that it holds this method and backbone.
    Returns its ``ssl_bench`` entry (with ``next_log_step`` filled in for older checkpoints)."""
    ckpt = rd.load_lightning_checkpoint(path, "run.resume")  # one line for pickled objects or a broken file
    meta = dict(ckpt.get(CKPT_META) or {})
    asked = f"{type(model).__name__} with backbone {model.hparams.backbone}"
    if meta.get("method") and (meta["method"], meta.get("backbone")) != (method_path(type(model)),
                                                                          model.hparams.backbone):
        held = f"{meta['method'].rsplit('.', 1)[-1]} with backbone {meta.get('backbone')}"
        raise ConfigError(f"run.resume: {path} holds {held}, but the config asks for {asked}; resume with the "
                          f"run's own config.yaml, or start a new run")
    own, theirs = model.state_dict(), ckpt["state_dict"]
    missing, unexpected = sorted(own.keys() - theirs.keys()), sorted(theirs.keys() - own.keys())
    # shapes are compared for parameters only: a buffer may be sized by the data and resized on load
    # (DeepCluster v2's per-sample memory bank), while a parameter's shape fixes the architecture
    params = {name for name, _ in model.named_parameters()}
    shaped = sorted(k for k in params & theirs.keys() if tuple(own[k].shape) != tuple(theirs[k].shape))
    if missing or unexpected or shaped:
        example = (missing or unexpected or shaped)[0]
        raise ConfigError(f"run.resume: {path} does not fit {asked}: {len(missing)} missing, {len(unexpected)} "
                          f"unexpected and {len(shaped)} differently shaped weights (e.g. {example}); it holds "
                          f"another method, backbone or head size")
    if "next_log_step" not in meta:  # written by an older ssl-bench (epoch ends only)
        loop = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
        meta["next_log_step"] = int(loop.get("_batches_that_stepped", ckpt.get("global_step", 0)))
    meta.update(epoch=ckpt.get("epoch"), global_step=ckpt.get("global_step"))
    return meta


def _limits_reached(summary: dict[str, Any], trainer_kwargs: dict[str, Any]) -> bool:
    steps = trainer_kwargs.get("max_steps", -1)
    if isinstance(steps, int) and steps > 0 and summary.get("global_step", -1) >= steps:
        return True
    epochs = trainer_kwargs.get("max_epochs")
    return isinstance(epochs, int) and epochs > 0 and summary.get("epochs", -1) >= epochs


# ----------------------------------------------------------------------------- the run

@dataclass
class _Plan:
    """Everything pretrain decided before touching the run directory."""

    run_dir: Path
    state: rd.RunState
    ckpt_path: Path | None = None
    ckpt_meta: dict[str, Any] = field(default_factory=dict)


def _plan_run_directory(cfg: dict[str, dict[str, Any]], run_dir: Path, rank_zero: bool) -> _Plan:
    """Where this run goes and what it resumes; refuses (one line) to overwrite an earlier run."""
    run_cfg = cfg["run"]
    state = rd.run_state(run_dir)
    resume, overwrite = run_cfg["resume"], run_cfg["overwrite"]
    ckpt: Path | None = None
    if resume == "auto":
        ckpt = rd.last_checkpoint(run_dir)
    elif resume is not None:
        ckpt = Path(resume)
        if not ckpt.is_file():
            raise ConfigError(f"run.resume: checkpoint not found: {resume} (or use run.resume auto)")
    if not rank_zero or state is rd.RunState.ABSENT or overwrite:
        return _Plan(run_dir, state, ckpt)
    how = ("continue it with --run.resume auto, or start afresh with --run.overwrite true (deletes its "
           "checkpoint, metrics and summary), or choose another --run.name")
    if resume is None:
        raise RunDirectoryError(f"run directory {rd.describe(run_dir)}; {how}")
    own = rd.last_checkpoint(run_dir)
    if ckpt is not None and (own is None or ckpt.resolve() != own.resolve()):
        raise RunDirectoryError(f"run.resume {resume} is not this run's checkpoint, and run directory "
                                f"{rd.describe(run_dir)}; choose another --run.name for a run started from it")
    return _Plan(run_dir, state, ckpt)


def _prepare_run_directory(cfg: dict[str, dict[str, Any]], plan: _Plan) -> None:
    """The first write: clear (overwrite) or trim (resume) the earlier run's files, write config.yaml."""
    run_dir = plan.run_dir
    if cfg["run"]["overwrite"] or (plan.ckpt_path is None and plan.state is rd.RunState.PARTIAL):
        rd.clear_run(run_dir)  # nothing to resume: the partial run's rows would mix with the new ones
    run_dir.mkdir(parents=True, exist_ok=True)
    if plan.ckpt_path is not None:
        truncate_metrics(run_dir / rd.METRICS, int(plan.ckpt_meta["next_log_step"]))
        if plan.state is rd.RunState.FINISHED:  # extended to more epochs: unfinished until it ends again
            os.replace(run_dir / rd.SUMMARY, run_dir / rd.PREVIOUS_SUMMARY)
    dump_config(plain(cfg), run_dir / rd.CONFIG)


def pretrain(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run one pretraining from a loaded config; returns the summary also written to summary.json.

    The launching process holds the run directory's lock (``locking.hold``) from the first look at
    an existing directory, or from its creation, to the end: a second process on the same directory
    ends in one line naming this one."""
    with ExitStack() as lock:
        return _pretrain(cfg, lock)


def _lock_run_directory(lock: ExitStack, run_dir: Path, plan: _Plan | None = None) -> None:
    """Take the run directory's lock; with ``plan``, also check that nobody changed the directory
    between the plan (made without the lock, the directory did not exist) and now."""
    lock.enter_context(locking.hold(run_dir, "run directory"))
    if plan is not None and (rd.run_state(run_dir), rd.last_checkpoint(run_dir)) != (plan.state, None):
        raise RunDirectoryError(f"run directory {rd.describe(run_dir)}: another process wrote it while this run "
                                f"was being built; run the command again to see what to do with it")


def _pretrain(cfg: dict[str, dict[str, Any]], lock: ExitStack) -> dict[str, Any]:
    run_cfg = cfg["run"]
    check_run(run_cfg)
    pl.seed_everything(int(run_cfg["seed"]), workers=True, verbose=False)
    name = run_name(cfg)
    run_dir = Path(run_cfg["dir"]) / name
    rank_zero = is_launch_rank_zero()
    locked = rank_zero and run_dir.is_dir()
    if locked:  # an earlier or concurrent run: its holder is named, if any
        _lock_run_directory(lock, run_dir)
    plan = _plan_run_directory(cfg, run_dir, rank_zero)

    # build and check everything before the run directory is touched
    dm = build_datamodule(cfg["data"], seed=int(run_cfg["seed"]))
    model = build_method(cfg["model"], dm.num_classes)
    check_model_input(model, dm)
    if plan.ckpt_path is not None:
        plan.ckpt_meta = read_resume_checkpoint(plan.ckpt_path, model)
    checkpoint = LastCheckpoint(run_dir / "checkpoints", every_n_steps=run_cfg["ckpt_every_n_steps"],
                                every_seconds=(run_cfg["ckpt_every_minutes"] or 0) * 60 or None,
                                metadata={"method": method_path(type(model)), "backbone": model.hparams.backbone},
                                previous_seconds=float(plan.ckpt_meta.get("train_seconds", 0.0)))
    loggers = build_loggers(run_cfg, run_dir, name, plan.ckpt_path is not None)
    stop = StopOnSigterm()
    trainer = build_trainer(cfg["trainer"], run_dir, loggers, checkpoint, extra_callbacks=[stop],
                            collective_timeout_minutes=run_cfg["collective_timeout_minutes"])
    schedule = schedule_model(model, dm, trainer)
    derived = derived_values(schedule, run_cfg["seed"], dm, trainer.world_size)

    if plan.state is rd.RunState.FINISHED and run_cfg["resume"] is not None:
        summary = rd.read_summary(run_dir) or {}
        if _limits_reached(summary, {**TRAINER_DEFAULTS, **cfg["trainer"]}):
            return {**summary, "already_finished": True}
        if plan.ckpt_path is None:
            raise RunDirectoryError(f"run directory {run_dir} holds a finished run without a checkpoint "
                                    f"(trainer.enable_checkpointing was false): it cannot be continued")

    if rank_zero:
        if not locked:  # the directory did not exist when this run was planned
            _lock_run_directory(lock, run_dir, plan)
        _prepare_run_directory({**cfg, DERIVED: derived}, plan)
    for logger in _wandb_loggers(loggers):  # the whole resolved config, and what was derived from it
        logger.experiment.config.update(plain({**cfg, DERIVED: derived}), allow_val_change=True)

    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=str(plan.ckpt_path) if plan.ckpt_path else None,
                    weights_only=True)  # tensors and plain values only: a checkpoint can run no code
    except BaseException as err:
        _finish_wandb(loggers, 1)
        # a first attempt that ends before its first checkpoint has nothing to resume: its files are set
        # aside, so the same command starts afresh instead of finding an "unfinished run"
        aside = (rd.set_aside(run_dir, "failed") if rank_zero and plan.state is rd.RunState.ABSENT
                 and not checkpoint.path.is_file() else None)
        nothing = f"no checkpoint had been written; this attempt's files are in {aside}" if aside else None
        if stop.received and isinstance(err, SystemExit):  # Lightning's SIGTERMException
            raise Stopped(nothing or _stopped_message(checkpoint, trainer)) from None
        if isinstance(err, SystemExit) and trainer.interrupted:  # Lightning's answer to Ctrl-C: sys.exit(1)
            raise Interrupted(f"interrupted; {nothing}" if nothing else _interrupted_message(checkpoint, trainer)) from None
        if isinstance(err, DivergenceError):  # say what is true of the checkpoint
            kept = (f"the last good checkpoint is kept: {checkpoint.path}" if checkpoint.path.is_file()
                    else nothing or "no checkpoint had been written")
            raise DivergenceError(f"{err}; {kept}") from None
        if nothing:  # the CLI adds it to its one line, or prints it after a traceback
            setattr(err, RUN_NOTE, f"{nothing} (the same command starts afresh)")
        line = collective_timeout_line(err, trainer.global_rank, trainer.world_size,
                                       run_cfg["collective_timeout_minutes"])
        if line is not None:
            raise CollectiveTimeoutError(line) from None
        raise
    metrics = _final_metrics(trainer)
    fit_seconds = time.perf_counter() - start
    summary = {
        "method": type(model).__name__,
        "dataset": cfg["data"]["dataset"],
        "dataset_name": dm.dataset_name,  # what run names and the sweep report call it (data.name)
        "run_dir": str(run_dir),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "max_epochs": trainer.max_epochs,
        "fit_seconds": round(float(plan.ckpt_meta.get("train_seconds", 0.0)) + fit_seconds, 2),
        "resumed_from": str(plan.ckpt_path) if plan.ckpt_path else None,
        "world_size": trainer.world_size,
        "global_batch_size": schedule.global_batch_size,
        "lr": schedule.lr,
        DERIVED: derived,
        "skipped_image_reads": dm.skipped_images,
        "is_global_zero": trainer.is_global_zero,
        **{k: metrics.get(k) for k in SUMMARY_KEYS},
        "all_metrics": metrics,
    }
    if trainer.is_global_zero:
        _log_wandb_summary(loggers, summary)
        rd.write_atomic(run_dir / rd.SUMMARY, json.dumps(summary, indent=2))
        (run_dir / rd.PREVIOUS_SUMMARY).unlink(missing_ok=True)
    _finish_wandb(loggers, 0)
    return summary


def _stopped_message(checkpoint: LastCheckpoint, trainer: pl.Trainer) -> str:
    if checkpoint.saved_at_stop is not None:
        return (f"stopped by SIGTERM at step {checkpoint.saved_at_stop}; checkpoint saved: {checkpoint.path} "
                f"(continue with --run.resume auto)")
    return "stopped by SIGTERM; " + _interrupted_message(checkpoint, trainer).removeprefix("interrupted; ")


def _interrupted_message(checkpoint: LastCheckpoint, trainer: pl.Trainer) -> str:
    if checkpoint.path.is_file():
        return (f"interrupted; last checkpoint kept: {checkpoint.path} "
                f"(continue with --run.resume auto)")
    if checkpoint not in trainer.callbacks:
        return "interrupted; no checkpoint (trainer.enable_checkpointing is false)"
    return "interrupted before the first checkpoint was written"


def _wandb_loggers(loggers: list[Logger]) -> list[Any]:
    return [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]


def _log_wandb_summary(loggers: list[Logger], summary: dict[str, Any]) -> None:
    for lg in _wandb_loggers(loggers):
        lg.experiment.summary.update({k: v for k, v in summary.items() if k != "all_metrics"})


def _finish_wandb(loggers: list[Logger], status: int) -> None:
    """Close the W&B run (Lightning leaves it open until interpreter exit, which abandons it)."""
    for lg in _wandb_loggers(loggers):
        if lg._experiment is not None:
            lg._experiment.finish(exit_code=status)


# ----------------------------------------------------------------------------- discovery

def summary_line(summary: dict[str, Any]) -> str:
    def pct(key: str) -> str:
        v = summary.get(key)
        return "n/a" if v is None else f"{v:.2f}%"

    line = (f"{summary['method']} on {summary['dataset']}: k-NN top-1 {pct('val_knn_top1')}, "
            f"linear probe top-1 {pct('val_linear_top1')}, run dir {summary['run_dir']}")
    if summary.get("already_finished"):
        line += " (already finished; its summary.json is kept)"
    return line


os.environ.setdefault("WANDB_SILENT", "true")
