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

import inspect
import json
import math
import os
import pickle
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import Logger

from . import run_dir as rd
from .checkpointing import CKPT_META, AtomicCheckpointIO, LastCheckpoint, RunCSVLogger, truncate_metrics
from .config import check_kwargs, check_run, check_types, dump_config, init_parameters, plain, resolve_class
from .data import SSLDataModule
from .data.sources import KNOWN_DATASETS
from .errors import ConfigError, RunDirectoryError, did_you_mean
from .methods import METHODS, BaseMethod

SUMMARY_KEYS = ("val_knn_top1", "val_knn_top5", "val_linear_top1", "val_linear_top5", "train_loss",
                "rankme", "z_std", "entropy", "reconstruction", "alignment", "uniformity")
LOGGERS = ("csv", "wandb")
TRAINER_DEFAULTS: dict[str, Any] = {"max_epochs": 100, "accelerator": "auto", "devices": 1,
                                    "log_every_n_steps": 10, "num_sanity_val_steps": 0,
                                    "benchmark": True}  # cuDNN autotuning: input sizes are fixed
#: Trainer arguments that pretrain sets itself (not config keys)
TRAINER_OWN = ("default_root_dir", "logger", "plugins", "use_distributed_sampler")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says which checkpoint was kept."""


def run_name(cfg: dict[str, dict[str, Any]]) -> str:
    method = str(cfg["model"].get("name", "method")).rsplit(".", 1)[-1].lower()
    return cfg["run"]["name"] or f"{method}-{cfg['data'].get('dataset', 'data')}-seed{cfg['run']['seed']}"


# ----------------------------------------------------------------------------- building and checking

def check_augment(augment: Any) -> None:
    """``data.augment``: a mapping of recipe keys (``recipes.build_recipe``) with the right types."""
    from .data.recipes import RECIPES, ViewAugment

    if augment is None:
        return
    if not isinstance(augment, dict):
        raise ConfigError(f"data.augment must be a mapping like {{name: simclr, crop_scale: [0.2, 1.0]}}, "
                          f"got {augment!r}")
    name = augment.get("name", "simclr")
    if name not in RECIPES:
        raise ConfigError(f"unknown data.augment.name '{name}'; known: {', '.join(sorted(RECIPES))}"
                          f"{did_you_mean(name, RECIPES)}")
    types = {k: v for k, v in typing.get_type_hints(ViewAugment).items() if k not in ("size", "mean", "std")}
    types.update(name=str, num_small_crops=int, small_crop_size=int, small_crop_scale=tuple[float, float])
    check_types(augment, types, "data.augment")
    for key in ("crop_scale", "small_crop_scale"):
        if key in augment and not 0 < augment[key][0] <= augment[key][1] <= 1:
            raise ConfigError(f"data.augment.{key} must be [min, max] with 0 < min <= max <= 1, got {augment[key]}")


def build_datamodule(data_cfg: dict[str, Any]) -> SSLDataModule:
    if "dataset" not in data_cfg:
        raise ConfigError("data.dataset is required (e.g. cifar10, digits)")
    check_kwargs(SSLDataModule, data_cfg, "data")
    known = KNOWN_DATASETS
    if data_cfg["dataset"] not in known:
        raise ConfigError(f"unknown dataset '{data_cfg['dataset']}'; known: {', '.join(known)}"
                          f"{did_you_mean(data_cfg['dataset'], known)}")
    check_augment(data_cfg.get("augment"))
    return SSLDataModule(**data_cfg)


def check_backbone_name(name: Any) -> None:
    """A registered backbone or a timm model name; else one line with the closest name."""
    import timm

    from .backbones import available_backbones

    known = available_backbones()
    if not isinstance(name, str) or name in known or timm.is_model(name.removeprefix("timm:")):
        return
    raise ConfigError(f"unknown backbone '{name}'; known: {', '.join(known)}, or any timm model name "
                      f"(ssl-bench list){did_you_mean(name, known + timm.list_models())}")


def build_method(model_cfg: dict[str, Any], num_classes: int) -> BaseMethod:
    kwargs = dict(model_cfg)
    name = kwargs.pop("name", None)
    if name is None:
        raise ConfigError(f"model.name is required; known: {', '.join(sorted(METHODS))}")
    cls = resolve_class(str(name), METHODS, BaseMethod, "method")
    kwargs.setdefault("num_classes", num_classes)
    check_kwargs(cls, kwargs, "model")
    check_backbone_name(kwargs.get("backbone", init_parameters(cls)["backbone"].default))
    return cls(**kwargs)


def check_model_input(model: BaseMethod, dm: SSLDataModule) -> None:
    """One dummy forward at the data's image size (catches e.g. a timm ViT built for 224 given 32x32
    images) and the BatchNorm / batch size 1 mismatch, before anything is written."""
    size = dm.image_size
    if dm.hparams.batch_size < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                         for m in model.modules()):
        raise ConfigError(f"data.batch_size {dm.hparams.batch_size}: the model has BatchNorm layers, which need "
                          f"at least 2 images per batch and rank; use data.batch_size >= 2")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():  # .forward bypasses a compiled backbone's compilation
            model.backbone.forward(torch.zeros(2, 3, size, size))
    except Exception as err:  # any failure here means the backbone cannot take these images
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"model.backbone '{model.hparams.backbone}' cannot take the {size}x{size} images of "
                          f"data.dataset {dm.hparams.dataset}: {first} (set data.image_size for image trees, or "
                          f"model.backbone_kwargs for the backbone's input size, e.g. img_size: {size})") from None
    finally:
        model.train(was_training)


def check_trainer(kwargs: dict[str, Any]) -> None:
    check_kwargs(pl.Trainer, kwargs, "trainer")
    for key in TRAINER_OWN:
        if key in kwargs:
            raise ConfigError(f"trainer.{key} is set by ssl-bench pretrain (run.dir/run.name/run.logger); "
                              f"remove it from the config")
    epochs, steps = kwargs.get("max_epochs"), kwargs.get("max_steps", -1)
    if isinstance(steps, int) and steps > 0:
        return
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ConfigError(f"trainer.max_epochs must be a positive integer (the learning-rate schedule needs a "
                          f"finite length), got {epochs!r}")


def build_loggers(run_cfg: dict[str, Any], run_dir: Path, name: str, resuming: bool) -> list[Logger]:
    kind = run_cfg["logger"]
    if kind not in LOGGERS:
        raise ConfigError(f"unknown run.logger '{kind}'; allowed: {', '.join(LOGGERS)}{did_you_mean(kind, LOGGERS)}")
    loggers: list[Logger] = [RunCSVLogger(str(run_dir), append=resuming)]
    if kind == "wandb":
        from pytorch_lightning.loggers import WandbLogger  # honours WANDB_MODE=offline

        loggers.append(WandbLogger(project=run_cfg["wandb_project"], name=name, save_dir=str(run_dir)))
    return loggers


class ProgressBar(TQDMProgressBar):
    """Lightning's bar, plus the latest ``val_knn_top1`` next to the loss (and no ``v_num``)."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        knn = trainer.callback_metrics.get("val_knn_top1")
        if knn is not None:
            items["val_knn_top1"] = f"{float(knn):.2f}"
        return items


def build_trainer(trainer_cfg: dict[str, Any], run_dir: Path, loggers: list[Logger],
                  checkpoint: LastCheckpoint | None = None) -> pl.Trainer:
    """``checkpoint``: the LastCheckpoint callback (default: epoch ends only); not added when
    ``trainer.enable_checkpointing`` is false."""
    kwargs = {**TRAINER_DEFAULTS, **trainer_cfg}
    if kwargs.get("deterministic") and "benchmark" not in trainer_cfg:
        kwargs["benchmark"] = False
    check_trainer(kwargs)
    callbacks = list(kwargs.pop("callbacks", None) or [])
    if kwargs.get("enable_checkpointing", True):
        # one file, checkpoints/last.ckpt, rewritten (atomically) at every epoch end (and interval)
        callbacks.insert(0, checkpoint or LastCheckpoint(run_dir / "checkpoints"))
    if kwargs.get("enable_progress_bar", True):
        # refreshing every step would call .item() (a GPU sync) on the loss every step
        callbacks.append(ProgressBar(refresh_rate=kwargs["log_every_n_steps"]))
    # the data module shards and shuffles itself (rank-aware, resumable samplers)
    try:
        return pl.Trainer(default_root_dir=str(run_dir), logger=loggers, callbacks=callbacks,
                          use_distributed_sampler=False, plugins=[AtomicCheckpointIO()], **kwargs)
    except Exception as err:  # Lightning's MisconfigurationException and friends: one line naming the section
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"trainer: {first}") from None


def _final_metrics(trainer: pl.Trainer) -> dict[str, float]:
    out = {}
    for key, value in trainer.callback_metrics.items():
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        out[key] = value if math.isfinite(value) else None
    return out


def method_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def read_resume_checkpoint(path: Path, model: BaseMethod) -> dict[str, Any]:
    """Load ``path`` safely (plain tensors only) and check that it holds this method and backbone.
    Returns its ``ssl_bench`` entry (with ``next_log_step`` filled in for older checkpoints)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(f"run.resume: {path} holds pickled Python objects, which are refused (loading them "
                          f"could run code); only checkpoints written by ssl-bench can be resumed") from None
    except Exception as err:  # truncated or not a torch file at all
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"run.resume: {path} is not a readable checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ConfigError(f"run.resume: {path} is not a Lightning checkpoint (no state_dict)")
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


def _is_launch_rank_zero() -> bool:
    """True unless this process is a non-zero rank of a multi-process launch (Lightning's DDP
    launcher re-runs the command in children with LOCAL_RANK set; torchrun/SLURM set RANK)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


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
    how = (f"continue it with --run.resume auto, or start afresh with --run.overwrite true (deletes its "
           f"checkpoint, metrics and summary), or choose another --run.name")
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
    """Run one pretraining from a loaded config; returns the summary also written to summary.json."""
    run_cfg = cfg["run"]
    check_run(run_cfg)
    pl.seed_everything(int(run_cfg["seed"]), workers=True, verbose=False)
    name = run_name(cfg)
    run_dir = Path(run_cfg["dir"]) / name
    rank_zero = _is_launch_rank_zero()
    plan = _plan_run_directory(cfg, run_dir, rank_zero)

    # build and check everything before the run directory is touched
    dm = build_datamodule(cfg["data"])
    model = build_method(cfg["model"], dm.num_classes)
    check_model_input(model, dm)
    if plan.ckpt_path is not None:
        plan.ckpt_meta = read_resume_checkpoint(plan.ckpt_path, model)
    checkpoint = LastCheckpoint(run_dir / "checkpoints", every_n_steps=run_cfg["ckpt_every_n_steps"],
                                every_seconds=(run_cfg["ckpt_every_minutes"] or 0) * 60 or None,
                                metadata={"method": method_path(type(model)), "backbone": model.hparams.backbone},
                                previous_seconds=float(plan.ckpt_meta.get("train_seconds", 0.0)))
    loggers = build_loggers(run_cfg, run_dir, name, plan.ckpt_path is not None)
    trainer = build_trainer(cfg["trainer"], run_dir, loggers, checkpoint)

    if plan.state is rd.RunState.FINISHED and run_cfg["resume"] is not None:
        summary = rd.read_summary(run_dir) or {}
        if _limits_reached(summary, {**TRAINER_DEFAULTS, **cfg["trainer"]}):
            return {**summary, "already_finished": True}
        if plan.ckpt_path is None:
            raise RunDirectoryError(f"run directory {run_dir} holds a finished run without a checkpoint "
                                    f"(trainer.enable_checkpointing was false): it cannot be continued")

    if rank_zero:
        _prepare_run_directory(cfg, plan)
    for logger in _wandb_loggers(loggers):
        logger.experiment.config.update(plain(cfg), allow_val_change=True)  # the whole resolved config

    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=str(plan.ckpt_path) if plan.ckpt_path else None,
                    weights_only=True)  # tensors and plain values only: a checkpoint can run no code
    except BaseException as err:
        _finish_wandb(loggers, 1)
        if isinstance(err, SystemExit) and trainer.interrupted:  # Lightning's answer to Ctrl-C: sys.exit(1)
            raise Interrupted(_interrupted_message(checkpoint, trainer)) from None
        raise
    metrics = _final_metrics(trainer)
    fit_seconds = time.perf_counter() - start
    summary = {
        "method": type(model).__name__,
        "dataset": cfg["data"]["dataset"],
        "run_dir": str(run_dir),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "max_epochs": trainer.max_epochs,
        "fit_seconds": round(float(plan.ckpt_meta.get("train_seconds", 0.0)) + fit_seconds, 2),
        "resumed_from": str(plan.ckpt_path) if plan.ckpt_path else None,
        "world_size": trainer.world_size,
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

def full_config(cfg: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``cfg`` with every default filled in (model: the method's and BaseMethod's constructor
    arguments; data: SSLDataModule's; trainer: ssl-bench's defaults then Lightning's), checked."""
    check_run(cfg["run"])
    model = dict(cfg["model"])
    if model.get("name") is None:
        raise ConfigError(f"model.name is required; known: {', '.join(sorted(METHODS))}")
    cls = resolve_class(str(model["name"]), METHODS, BaseMethod, "method")
    check_kwargs(cls, {k: v for k, v in model.items() if k != "name"}, "model")
    data = dict(cfg["data"])
    check_kwargs(SSLDataModule, data, "data")
    check_augment(data.get("augment"))
    trainer = {**TRAINER_DEFAULTS, **cfg["trainer"]}
    check_trainer(trainer)

    def defaults(params: dict[str, inspect.Parameter], skip: tuple[str, ...] = ()) -> dict[str, Any]:
        return {k: p.default for k, p in params.items()
                if p.default is not inspect.Parameter.empty and k not in skip}

    out_model = {"name": model["name"],
                 **{**defaults(init_parameters(cls), ("num_classes",)), **model}}
    out_data = {**defaults(init_parameters(SSLDataModule)), **data}
    out_data["augment"] = {"name": "simclr", **(data.get("augment") or {})}
    lightning = defaults(dict(inspect.signature(pl.Trainer.__init__).parameters), TRAINER_OWN + ("callbacks",))
    out_trainer = {**trainer, **{k: v for k, v in lightning.items() if k not in trainer}}
    return plain({"model": out_model, "data": out_data, "trainer": out_trainer, "run": dict(cfg["run"])})


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
