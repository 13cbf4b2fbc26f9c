"""The build layer: config -> data module, method, trainer and loggers, and the values derived from
more than one section of the config, computed once here and handed on as plain arguments
(DESIGN.md, "Layout and layers"):

- the training order's seed: ``run.seed`` (``build_datamodule``); ``data.seed`` seeds the subsets only;
- the optimisation schedule (``derive_schedule``): global batch = per-rank batch x ranks x gradient
  accumulation, the peak lr scaled by it (``model.lr_scaling``), warm-up, per-epoch and total steps;
- the collective timeout of multi-process runs (``run.collective_timeout_minutes``).

``pretrain``, ``evaluate``, ``scan``, the sweep, the benchmarks and the tests build through it.
"""
from __future__ import annotations

import inspect
import math
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import Logger

from . import run_dir as rd
from .checkpointing import CKPT_META, AtomicCheckpointIO, LastCheckpoint, RunCSVLogger
from .config import DERIVED, RUN_DEFAULTS, check_kwargs, check_run, check_types, init_parameters, plain, resolve_class
from .data import SSLDataModule
from .data.sources import KNOWN_DATASETS
from .data.train_data import TrainData
from .errors import ConfigError, did_you_mean
from .methods import METHODS, BaseMethod
from .optim import TrainingSchedule, scaled_lr

LOGGERS = ("csv", "wandb")
TRAINER_DEFAULTS: dict[str, Any] = {"max_epochs": 100, "accelerator": "auto", "devices": 1,
                                    "log_every_n_steps": 10, "num_sanity_val_steps": 0,
                                    "benchmark": True}  # cuDNN autotuning: input sizes are fixed
#: Trainer arguments that the build layer sets itself (not config keys)
TRAINER_OWN = ("default_root_dir", "logger", "plugins", "use_distributed_sampler")


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


def build_datamodule(data_cfg: dict[str, Any], seed: int) -> SSLDataModule:
    """The data module of ``data_cfg``; ``seed`` (the run's ``run.seed``) seeds the training order,
    while ``data.seed`` keeps seeding the subsets that define the data."""
    if "order_seed" in data_cfg:
        raise ConfigError("data.order_seed is set from run.seed (the training order varies with the run's "
                          "seed); remove it, and set run.seed instead")
    if "dataset" not in data_cfg:
        raise ConfigError("data.dataset is required (e.g. cifar10, digits)")
    check_kwargs(SSLDataModule, data_cfg, "data")
    known = KNOWN_DATASETS
    if data_cfg["dataset"] not in known:
        raise ConfigError(f"unknown dataset '{data_cfg['dataset']}'; known: {', '.join(known)}"
                          f"{did_you_mean(data_cfg['dataset'], known)}")
    check_augment(data_cfg.get("augment"))
    return SSLDataModule(**data_cfg, order_seed=int(seed))


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
    images), the BatchNorm / batch size 1 mismatch and evaluations that need two classes, before
    anything is written."""
    size = dm.image_size
    dm.check_evaluations(model.hparams.knn, model.hparams.linear_probe)  # a val split to score them on
    if dm.num_classes < 2 and (model.hparams.knn or model.hparams.linear_probe):
        raise ConfigError(f"data.dataset {dm.hparams.dataset} has {dm.num_classes} class: k-NN and the linear probe "
                          f"score against the classes and need at least 2; add classes, or pretrain without them "
                          f"with --model.knn false --model.linear_probe false")
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
        import os

        from pytorch_lightning.loggers import WandbLogger  # honours WANDB_MODE=offline

        # W&B's files go into <save_dir>/wandb/: WANDB_DIR when set (an explicit save_dir would win over it)
        save_dir = os.environ.get("WANDB_DIR") or str(run_dir)
        loggers.append(WandbLogger(project=run_cfg["wandb_project"], name=name, save_dir=save_dir))
    return loggers


class ProgressBar(TQDMProgressBar):
    """Lightning's bar, plus the latest ``val_knn_top1`` next to the loss (and no ``v_num``).

    Reading the trainer's metrics at an epoch end computes the epoch's ``sync_dist`` values, which
    is a collective. Lightning's bar reads them on rank 0 only (the other ranks' bars are disabled),
    so rank 0 entered an ``all_reduce`` that the other ranks reached later, after other
    collectives: a deadlock at the first epoch end. Here every rank reads them at the same point.
    """

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = self.get_metrics(trainer, pl_module)  # on every rank: the same collectives, same order
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(metrics)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        knn = trainer.callback_metrics.get("val_knn_top1")
        if knn is not None:
            items["val_knn_top1"] = f"{float(knn):.2f}"
        return items


def build_trainer(trainer_cfg: dict[str, Any], run_dir: Path, loggers: list[Logger],
                  checkpoint: LastCheckpoint | None = None, extra_callbacks: list[pl.Callback] | None = None,
                  collective_timeout_minutes: float = RUN_DEFAULTS["collective_timeout_minutes"]) -> pl.Trainer:
    """``checkpoint``: the LastCheckpoint callback (default: epoch ends only); not added when
    ``trainer.enable_checkpointing`` is false. A multi-process strategy named by string gets
    ``collective_timeout_minutes`` as its process group's timeout."""
    kwargs = {**TRAINER_DEFAULTS, **trainer_cfg}
    if kwargs.get("deterministic") and "benchmark" not in trainer_cfg:
        kwargs["benchmark"] = False
    check_trainer(kwargs)
    callbacks = list(kwargs.pop("callbacks", None) or []) + list(extra_callbacks or [])
    if kwargs.get("enable_checkpointing", True):
        # one file, checkpoints/last.ckpt, rewritten (atomically) at every epoch end (and interval)
        callbacks.insert(0, checkpoint or LastCheckpoint(run_dir / "checkpoints"))
    if kwargs.get("enable_progress_bar", True):
        # refreshing every step would call .item() (a GPU sync) on the loss every step
        callbacks.append(ProgressBar(refresh_rate=kwargs["log_every_n_steps"]))

    def make(strategy: Any) -> pl.Trainer:
        # the data module shards and shuffles itself (rank-aware, resumable samplers)
        try:
            return pl.Trainer(default_root_dir=str(run_dir), logger=loggers, callbacks=callbacks, strategy=strategy,
                              use_distributed_sampler=False, plugins=[AtomicCheckpointIO()],
                              **{k: v for k, v in kwargs.items() if k != "strategy"})
        except Exception as err:  # Lightning's MisconfigurationException and friends: one line naming the section
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(f"trainer: {first}") from None

    strategy = kwargs.get("strategy", "auto")
    trainer = make(strategy)
    timed = _with_timeout(strategy, trainer, timedelta(minutes=collective_timeout_minutes))
    return trainer if timed is None else make(timed)


def _with_timeout(strategy: Any, trainer: pl.Trainer, timeout: timedelta) -> Any:
    """The DDP strategy the trainer resolved (by name, or from ``auto``) rebuilt with ``timeout``
    (the backends' own default is 30 minutes), or ``None`` when there is nothing to change."""
    from pytorch_lightning.strategies import DDPStrategy, StrategyRegistry

    resolved = trainer.strategy
    if not isinstance(strategy, str) or not isinstance(resolved, DDPStrategy) or resolved._timeout == timeout:
        return None
    params = StrategyRegistry[strategy]["init_params"] if strategy in StrategyRegistry else {}
    return type(resolved)(**{**params, "timeout": timeout})


def method_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def method_label(cls: type) -> str:
    """The registered name of a method class (``simclr``), else its import path."""
    return next((name for name, registered in METHODS.items() if registered is cls), method_path(cls))


def load_method_checkpoint(path: str | Path, what: str, model_cfg: dict[str, Any] | None = None,
                           asked_from: str = "", blob: dict[str, Any] | None = None) -> BaseMethod:
    """The method a pretraining checkpoint holds: the one way ``eval`` and ``scan`` load one.

    The class is the path ``LastCheckpoint`` stored in the checkpoint (else, for a checkpoint written
    without it, ``model_cfg``'s ``name``); constructor arguments added to the method since the file
    was written take their defaults, and one that the class no longer takes is refused in one line.
    With ``model_cfg``, a checkpoint of another method or backbone than it asks for is refused in one
    line naming both (``asked_from`` says where the ask came from). ``blob``: the file, if already read."""
    blob = rd.load_lightning_checkpoint(path, what) if blob is None else blob
    hparams = dict(blob.get("hyper_parameters") or {})
    asked = resolve_class(str(model_cfg["name"]), METHODS, BaseMethod, "method") if model_cfg else None
    stored = (blob.get(CKPT_META) or {}).get("method")
    cls = resolve_class(stored, METHODS, BaseMethod, "method") if stored else asked
    if cls is None:
        raise ConfigError(f"{what}: {path} does not record its method; pass --config with the model.name it was "
                          f"trained with")
    params = init_parameters(cls)
    if asked is not None:
        asked_backbone = model_cfg.get("backbone", init_parameters(asked)["backbone"].default)  # type: ignore[union-attr]
        held_backbone = hparams.get("backbone", params["backbone"].default)
        if cls is not asked or held_backbone != asked_backbone:
            raise ConfigError(f"checkpoint {path} holds {method_label(cls)} with backbone {held_backbone}; "
                              f"{asked_from or 'the config'} asks for {model_cfg['name']} with backbone "  # type: ignore[index]
                              f"{asked_backbone}")
    removed = sorted(set(hparams) - set(params))
    if removed:
        raise ConfigError(f"{what}: {path} holds {method_label(cls)} with argument(s) {', '.join(removed)} that "
                          f"{cls.__name__} no longer takes; read it with the ssl-bench version that wrote it")
    model = cls(**hparams)  # arguments added since the checkpoint was written: their defaults
    model.on_load_checkpoint(blob)
    model.load_state_dict(blob["state_dict"])
    return model


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


def _batches_per_epoch(num_samples: int, per_rank_batch: int, world_size: int, limit: int | float) -> int:
    """Training batches per rank and epoch: the data module's sampler drops the last incomplete
    global batch; ``trainer.limit_train_batches`` (an int: at most that many; a float: that fraction)."""
    batches = num_samples // (per_rank_batch * world_size)
    if isinstance(limit, int) and not isinstance(limit, bool):
        return min(batches, limit)
    return int(batches * float(limit))


def derive_schedule(model: BaseMethod, dm: SSLDataModule, trainer: pl.Trainer) -> TrainingSchedule:
    """The optimisation values that depend on more than one config section, from the built parts:
    the global batch (``data.batch_size`` x ranks x ``trainer.accumulate_grad_batches``), the peak lr
    (``model.lr`` scaled from ``model.reference_batch_size`` by ``model.lr_scaling``) and the
    optimiser steps (warm-up from ``model.warmup_epochs``, per epoch, in all: what Lightning's
    ``estimated_stepping_batches`` gives, which the method checks when it builds its optimiser)."""
    hp = model.hparams
    for key in ("lr", "weight_decay", "warmup_epochs"):
        value = float(hp[key])
        if not math.isfinite(value) or value < 0 or (key == "lr" and value == 0):
            allowed = "a finite number > 0" if key == "lr" else "a finite number >= 0"
            raise ConfigError(f"model.{key} must be {allowed}, got {hp[key]}")
    if hp.get("final_weight_decay") is not None and not float(hp.final_weight_decay) >= 0:
        raise ConfigError(f"model.final_weight_decay must be a number >= 0 or null, got {hp.final_weight_decay}")
    if not 0 <= float(hp.get("warmup_start_factor", 0.0)) <= 1:
        raise ConfigError(f"model.warmup_start_factor must be in [0, 1], got {hp.warmup_start_factor}")
    per_rank, world = int(dm.hparams.batch_size), int(trainer.world_size)
    accumulate = int(trainer.accumulate_grad_batches)
    global_batch = per_rank * world * accumulate
    batches = _batches_per_epoch(dm.num_train_samples, per_rank, world, trainer.limit_train_batches)
    steps_per_epoch = math.ceil(batches / accumulate)
    max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
    if max_epochs is None or max_epochs < 0:
        if max_steps is None or max_steps < 0:
            raise ConfigError("trainer: set max_epochs or max_steps (the lr schedule needs a finite length)")
        total = int(max_steps)
    else:
        total = steps_per_epoch * max(int(max_epochs), 1)
        if max_steps is not None and max_steps >= 0:
            total = min(total, int(max_steps))
    return TrainingSchedule(
        global_batch_size=global_batch,
        lr=scaled_lr(float(hp.lr), global_batch, int(hp.reference_batch_size), str(hp.lr_scaling)),
        warmup_steps=int(round(float(hp.warmup_epochs) * steps_per_epoch)),
        steps_per_epoch=steps_per_epoch,
        total_steps=max(1, total),
    )


def untrained_method(model_cfg: dict[str, Any], dm: SSLDataModule, seed: int) -> BaseMethod:
    """The random-init baseline: the config's method, seeded as ``pretrain`` seeds it (so its initial
    weights are those the run starts from), handed its training data's facts, never trained."""
    pl.seed_everything(int(seed), workers=True, verbose=False)
    model = build_method(model_cfg, dm.num_classes)
    model.attach_data(TrainData.of(dm))
    return model


def untrained_knn(cfg: dict[str, dict[str, Any]], work_dir: str | Path) -> float:
    """k-NN top-1 (%) of ``cfg``'s network before any training, as the online monitor measures it at
    validation (same seed, same data): the honest baseline of the learning tests and benchmarks."""
    dm = build_datamodule(cfg["data"], seed=cfg["run"]["seed"])
    model = untrained_method(cfg["model"], dm, cfg["run"]["seed"])
    trainer = build_trainer(cfg["trainer"], Path(work_dir) / "baseline", loggers=[])
    trainer.validate(model, datamodule=dm, verbose=False)
    return float(trainer.callback_metrics["val_knn_top1"])


def schedule_model(model: BaseMethod, dm: SSLDataModule, trainer: pl.Trainer) -> TrainingSchedule:
    """What every fit does before ``trainer.fit``: derive the schedule and hand it to the method, hand
    the method the training data's facts it declared a need for (``BaseMethod.attach_data``), and tell
    the data module whether the method's batches carry sample indices (``needs_sample_indices``)."""
    schedule = derive_schedule(model, dm, trainer)
    model.set_schedule(schedule)
    dm.sample_indices = bool(type(model).needs_sample_indices)
    model.attach_data(TrainData.of(dm))
    return schedule


def derived_values(schedule: TrainingSchedule, seed: int, dm: SSLDataModule, world_size: int) -> dict[str, Any]:
    """What a reader of a result needs to know was run: the schedule, the seeds (the run's, and the
    training order's as the data module uses it) and the ranks (``summary.json``'s and
    ``config.yaml``'s ``derived`` entry, ``--print-config``)."""
    return {**schedule.as_dict(), "world_size": int(world_size), "seed": int(seed),
            "train_order_seed": dm.train_order_seed}


def resolved_config(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``full_config`` plus the ``derived`` values (``--print-config``): builds the data module,
    method and trainer to compute them, trains nothing and writes nothing."""
    out: dict[str, Any] = full_config(cfg)
    seed = int(cfg["run"]["seed"])
    dm = build_datamodule(cfg["data"], seed=seed)
    model = build_method(cfg["model"], dm.num_classes)
    trainer = build_trainer({**cfg["trainer"], "enable_progress_bar": False, "enable_model_summary": False,
                             "enable_checkpointing": False}, Path(cfg["run"]["dir"]), loggers=[],
                            collective_timeout_minutes=cfg["run"]["collective_timeout_minutes"])
    out[DERIVED] = derived_values(derive_schedule(model, dm, trainer), seed, dm, trainer.world_size)
    return out
