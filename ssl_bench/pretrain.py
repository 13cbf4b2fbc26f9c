"""One pretraining run: config -> data module, method, trainer -> run directory.

The run directory holds ``config.yaml`` (the resolved config), ``metrics.csv``,
``checkpoints/last.ckpt`` and ``summary.json`` (DESIGN.md, "Contracts").
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import Logger

from .checkpointing import AtomicCheckpointIO, RunCSVLogger
from .config import check_kwargs, dump_config, resolve_class
from .data import SSLDataModule
from .errors import ConfigError
from .methods import METHODS, BaseMethod

SUMMARY_KEYS = ("val_knn_top1", "val_knn_top5", "val_linear_top1", "val_linear_top5", "train_loss",
                "rankme", "z_std", "entropy", "reconstruction", "alignment", "uniformity")
LOGGERS = ("csv", "wandb")
TRAINER_DEFAULTS: dict[str, Any] = {"max_epochs": 100, "accelerator": "auto", "devices": 1,
                                    "log_every_n_steps": 10, "num_sanity_val_steps": 0,
                                    "benchmark": True}  # cuDNN autotuning: input sizes are fixed


def run_name(cfg: dict[str, dict[str, Any]]) -> str:
    method = str(cfg["model"].get("name", "method")).rsplit(".", 1)[-1].lower()
    return cfg["run"]["name"] or f"{method}-{cfg['data'].get('dataset', 'data')}-seed{cfg['run']['seed']}"


def build_datamodule(data_cfg: dict[str, Any]) -> SSLDataModule:
    if "dataset" not in data_cfg:
        raise ConfigError("data.dataset is required (e.g. cifar10, digits)")
    check_kwargs(SSLDataModule, data_cfg, "data")
    return SSLDataModule(**data_cfg)


def build_method(model_cfg: dict[str, Any], num_classes: int) -> BaseMethod:
    kwargs = dict(model_cfg)
    name = kwargs.pop("name", None)
    if name is None:
        raise ConfigError(f"model.name is required; known: {', '.join(sorted(METHODS))}")
    cls = resolve_class(str(name), METHODS, BaseMethod, "method")
    kwargs.setdefault("num_classes", num_classes)
    check_kwargs(cls, kwargs, "model")
    return cls(**kwargs)


def build_loggers(run_cfg: dict[str, Any], run_dir: Path, name: str, resuming: bool) -> list[Logger]:
    kind = run_cfg["logger"]
    if kind not in LOGGERS:
        raise ConfigError(f"unknown run.logger '{kind}'; allowed: {', '.join(LOGGERS)}")
    loggers: list[Logger] = [RunCSVLogger(str(run_dir), append=resuming)]
    if kind == "wandb":
        from pytorch_lightning.loggers import WandbLogger  # honours WANDB_MODE=offline

        loggers.append(WandbLogger(project=run_cfg["wandb_project"], name=name, save_dir=str(run_dir)))
    return loggers


def build_trainer(trainer_cfg: dict[str, Any], run_dir: Path, loggers: list[Logger]) -> pl.Trainer:
    kwargs = {**TRAINER_DEFAULTS, **trainer_cfg}
    if kwargs.get("deterministic") and "benchmark" not in trainer_cfg:
        kwargs["benchmark"] = False
    check_kwargs(pl.Trainer, kwargs, "trainer")
    # one file, checkpoints/last.ckpt, rewritten (atomically) at the end of every epoch
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", save_top_k=1,
                                 monitor=None, enable_version_counter=False)
    callbacks = [checkpoint, *kwargs.pop("callbacks", [])]
    if kwargs.get("enable_progress_bar", True):
        # refreshing every step would call .item() (a GPU sync) on the loss every step
        callbacks.append(TQDMProgressBar(refresh_rate=kwargs["log_every_n_steps"]))
    # the data module shards and shuffles itself (rank-aware, resumable samplers)
    return pl.Trainer(default_root_dir=str(run_dir), logger=loggers, callbacks=callbacks,
                      use_distributed_sampler=False, plugins=[AtomicCheckpointIO()], **kwargs)


def _final_metrics(trainer: pl.Trainer) -> dict[str, float]:
    out = {}
    for key, value in trainer.callback_metrics.items():
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        out[key] = value if math.isfinite(value) else None
    return out


def pretrain(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run one pretraining from a loaded config; returns the summary also written to summary.json."""
    run_cfg = cfg["run"]
    pl.seed_everything(int(run_cfg["seed"]), workers=True, verbose=False)
    name = run_name(cfg)
    run_dir = Path(run_cfg["dir"]) / name
    ckpt_path = run_cfg["resume"]
    if ckpt_path == "auto":
        last = run_dir / "checkpoints" / "last.ckpt"
        ckpt_path = str(last) if last.is_file() else None
    elif ckpt_path is not None and not Path(ckpt_path).is_file():
        raise ConfigError(f"run.resume: checkpoint not found: {ckpt_path}")

    dm = build_datamodule(cfg["data"])
    model = build_method(cfg["model"], dm.num_classes)
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / "config.yaml")
    trainer = build_trainer(cfg["trainer"], run_dir, build_loggers(run_cfg, run_dir, name, ckpt_path is not None))

    start = time.perf_counter()
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    metrics = _final_metrics(trainer)
    summary = {
        "method": type(model).__name__,
        "dataset": cfg["data"]["dataset"],
        "run_dir": str(run_dir),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_seconds": round(time.perf_counter() - start, 2),
        "world_size": trainer.world_size,
        "is_global_zero": trainer.is_global_zero,
        **{k: metrics.get(k) for k in SUMMARY_KEYS},
        "all_metrics": metrics,
    }
    if trainer.is_global_zero:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def summary_line(summary: dict[str, Any]) -> str:
    def pct(key: str) -> str:
        v = summary.get(key)
        return "n/a" if v is None else f"{v:.2f}%"

    return (f"{summary['method']} on {summary['dataset']}: k-NN top-1 {pct('val_knn_top1')}, "
            f"linear probe top-1 {pct('val_linear_top1')}, run dir {summary['run_dir']}")


os.environ.setdefault("WANDB_SILENT", "true")
