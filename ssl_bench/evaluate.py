"""Offline evaluation of a backbone: k-NN or linear on frozen features, or fine-tuning; full or few
labels, trained or random-init.

    ssl-bench eval --ckpt runs/x/checkpoints/last.ckpt --protocol knn --k 20 --temperature 0.07
    ssl-bench eval --ckpt runs/x/checkpoints/last.ckpt --protocol linear --label-fraction 0.01
    ssl-bench eval --random-init --config configs/cifar10/simclr.yaml --protocol knn
    ssl-bench eval --ckpt runs/x/checkpoints/last.ckpt --protocol finetune --label-fraction 0.1

The model and data come from the run's ``config.yaml`` (beside ``checkpoints/``), or from
``--config`` when given; the checkpoint must hold the method and backbone asked for, else one line
says what it holds. Un-augmented features of the train split (``data.eval_train_subset`` of it if
set) and of the val split are extracted once and cached (``features.py``); every result is written
to ``<run dir>/evals/<protocol>-<settings>-<hash>.json``, named by its settings and recording
them (data root, split, k, T, epochs, label fraction or index file), so no result replaces another.
``finetune`` trains the backbone and a new linear head on the labelled train images with strong
augmentation (image trees: held in memory when small, else streamed from the files, see
``finetune_scores``); with ``--random-init`` it is the supervised-only baseline of
semi-supervised methods (PAWS, Sec. 5: fine-tuned PAWS against training on the labels alone).
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .config import dump_config, load_config, plain
from .data.recipes import view_augment
from .data.tree_images import close as close_images, embed_images, hold_or_stream
from .errors import ConfigError
from .features import (FeatureSet, cached_features, checkpoint_identity, eval_data_settings, extract,
                       extract_split)
from .label_subset import balanced_label_subset, read_label_indices
from .methods import BaseMethod
from .metrics import knn_accuracy, weighted_knn_predict
from .build import build_datamodule, build_method, load_method_checkpoint
from . import run_dir as rd
from .run_dir import load_lightning_checkpoint, write_atomic
from .supervised import fit_classifier, train_linear

PROTOCOLS = ("knn", "linear", "finetune")
# fine-tuning recipe (supervised.fit_classifier's defaults, recorded in every finetune result):
# strong SimCLR-CIFAR view, SGD momentum 0.9, lr 0.05, weight decay 5e-4, batch 64, cosine schedule
FINETUNE_RECIPE = {"view": "strong", "optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "weight_decay": 5e-4,
                   "batch_size": 64, "schedule": "cosine"}
RANDOM_INIT = "random_init"
extract_features = extract_split  # the earlier public name (features of one evaluation loader)


# ----------------------------------------------------------------------------- protocols on features
def knn_scores(fs: FeatureSet, num_classes: int, k: int, temperature: float,
               train_idx: Tensor | None = None) -> dict[int, float]:
    bank_x, bank_y = (fs.train_x, fs.train_y) if train_idx is None else (fs.train_x[train_idx], fs.train_y[train_idx])
    scores = weighted_knn_predict(bank_x, bank_y, fs.val_x, num_classes, k=k, temperature=temperature)
    return knn_accuracy(scores, fs.val_y, top_k=(1, 5))


def check_k(k: int, bank_size: int) -> None:
    """One line for a k the bank cannot serve (a result named k100000 would be the k=bank result)."""
    if not 1 <= k <= bank_size:
        raise ConfigError(f"--k {k}: must be between 1 and the k-NN bank's {bank_size} labelled images")


def linear_scores(fs: FeatureSet, num_classes: int, epochs: int, seed: int = 0,
                  train_idx: Tensor | None = None) -> dict[int, float]:
    x, y = (fs.train_x, fs.train_y) if train_idx is None else (fs.train_x[train_idx], fs.train_y[train_idx])
    with torch.enable_grad():
        head = train_linear(x, y, num_classes, epochs=epochs, seed=seed)
    with torch.no_grad():
        scores = head((fs.val_x - head.feature_mean) / head.feature_std)
    return knn_accuracy(scores, fs.val_y, top_k=(1, 5))


def finetune_scores(target: EvalTarget, epochs: int, seed: int, train_idx: Tensor | None = None,
                    memory_limit_mb: float | None = None) -> dict[int, float]:
    """Fine-tuning protocol: a copy of the target's backbone (the checkpoint's, or the config's at
    random initialisation) and a new linear head trained together on the (labelled) train images,
    top-1/top-5 on the val images. The head's initialisation and the augmentation stream depend only
    on ``seed``, so a checkpoint and its random-init baseline differ only in the starting backbone.

    Image trees: every file is prepared as the k-NN / linear features' loader prepares it (resize,
    centre crop ``data.image_size``), then held in memory as uint8 while the decoded labelled train
    images, then the val images, fit in ``memory_limit_mb`` (default ``$SSL_BENCH_TREE_MEMORY_MB``,
    else 2048 MiB), else streamed from the files in ``data.num_workers`` workers; the result is the
    same either way (``data.tree_images``)."""
    dm, model = target.dm, target.model()
    train, val = dm.eval_splits()
    if train_idx is not None:
        train = train.subset(train_idx)
    images, val_images = hold_or_stream([train, val], dm.image_size, int(dm.hparams.num_workers), memory_limit_mb,
                                        names=(f"finetune train ({target.cfg['data']['dataset']})",
                                               f"finetune val ({target.cfg['data']['dataset']})"))
    try:
        torch.manual_seed(seed)
        classifier = fit_classifier(copy.deepcopy(model.backbone), model.feature_dim, images, train.labels,
                                    view_augment(FINETUNE_RECIPE["view"], dm.image_size, dm.mean, dm.std),
                                    dm.num_classes, epochs=epochs, batch_size=FINETUNE_RECIPE["batch_size"],
                                    lr=FINETUNE_RECIPE["lr"], weight_decay=FINETUNE_RECIPE["weight_decay"],
                                    seed=seed, device="cuda" if torch.cuda.is_available() else "cpu")
        scores = embed_images(classifier, val_images, dm.eval_batch_transform).cpu()
    finally:
        close_images(images, val_images)
    return knn_accuracy(scores, val.labels.cpu(), top_k=(1, 5))


def label_indices(train_labels: Tensor, fraction: float | None, indices_file: str | None, seed: int) -> Tensor | None:
    """The labelled part of the train split: a class-balanced fraction, a file of indices, or all."""
    if fraction is not None and indices_file is not None:
        raise ConfigError("give either --label-fraction or --label-indices, not both")
    if indices_file is not None:
        return read_label_indices(indices_file, len(train_labels))
    if fraction is None or fraction == 1.0:
        return None
    return balanced_label_subset(train_labels, fraction, seed)


# ----------------------------------------------------------------------------- models
def random_init_model(cfg: dict[str, dict[str, Any]], num_classes: int) -> BaseMethod:
    """The config's method and backbone, seeded like ``pretrain`` seeds it, before any training."""
    import pytorch_lightning as pl

    pl.seed_everything(int(cfg["run"]["seed"]), workers=True, verbose=False)
    return build_method(cfg["model"], num_classes)


def run_dir_of(ckpt: Path) -> Path:
    ckpt = ckpt.resolve()
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def random_init_run_dir(cfg: dict[str, dict[str, Any]]) -> Path:
    from .data.sources import dataset_name

    name = cfg["run"].get("name") or f"{RANDOM_INIT}-{dataset_name(cfg['data'])}-seed{cfg['run']['seed']}"
    return Path(cfg["run"]["dir"]) / name


def check_random_init_dir(run_dir: Path, cfg: dict[str, dict[str, Any]]) -> None:
    """One line if ``run_dir`` already holds the baseline of another model or data (its config.yaml):
    its results would sit beside results of a network its config.yaml does not describe."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return
    held = load_config(path)
    for section, differs in (("model", plain(held["model"]) != plain(cfg["model"])),
                              ("data", plain(eval_data_settings(held["data"])) != plain(eval_data_settings(cfg["data"])))):
        if differs:
            raise ConfigError(f"--random-init: {run_dir} holds the baseline of another {section} configuration "
                              f"(see its config.yaml); give this one its own --run.name")


# ----------------------------------------------------------------------------- one evaluation setup
class EvalTarget:
    """What is evaluated (a checkpoint, or the config's model at random init) and on which data;
    ``features()`` extracts them once (cached under ``<run dir>/features``)."""

    def __init__(self, ckpt: str | Path | None = None, config: str | Path | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None, random_init: bool = False,
                 out: str | Path | None = None) -> None:
        overrides = overrides or {}
        if random_init == (ckpt is not None):
            raise ConfigError("give --ckpt CKPT, or --random-init with --config CONFIG")
        if random_init and config is None:
            raise ConfigError("--random-init needs --config CONFIG (the method, backbone and data to use)")
        self.random_init = random_init
        if ckpt is not None:
            self.ckpt: Path | None = Path(ckpt)
            if not self.ckpt.is_file():
                raise ConfigError(f"checkpoint not found: {ckpt}")
            self.run_dir = run_dir_of(self.ckpt)
            self._ckpt_blob: dict[str, Any] | None = load_lightning_checkpoint(self.ckpt, "eval checkpoint")
            if config is None and not (self.run_dir / "config.yaml").is_file():
                raise ConfigError(f"no config.yaml in {self.run_dir} (expected the run directory of {ckpt}); "
                                  "pass --config CONFIG")
        else:
            self.ckpt = None
        self.config_path = Path(config) if config is not None else self.run_dir / "config.yaml"
        self.cfg = load_config(self.config_path)
        if not random_init and overrides.get("model"):
            given = ", ".join(f"--model.{key}" for key in overrides["model"])
            raise ConfigError(f"{given}: the checkpoint fixes the model (its saved hyperparameters); model "
                              f"options apply to --random-init only")
        for section, values in overrides.items():
            self.cfg[section].update(values)
        if "dataset" not in self.cfg["data"]:
            raise ConfigError(f"data.dataset is missing in {self.config_path}")
        if random_init:
            self.run_dir = random_init_run_dir(self.cfg)
            check_random_init_dir(self.run_dir, self.cfg)
        self.dm = build_datamodule(self.cfg["data"], seed=int(self.cfg["run"]["seed"]))
        self._model: BaseMethod | None = None
        self.out_dir = Path(out) if out is not None else None  # where results and features go

    @property
    def results_dir(self) -> Path:
        """``--out`` if given (e.g. for a read-only shared checkpoint), else the run directory."""
        return self.out_dir if self.out_dir is not None else self.run_dir

    @property
    def method(self) -> str:
        return RANDOM_INIT if self.random_init else str(self.cfg["model"].get("name"))

    def model(self) -> BaseMethod:
        if self._model is None:
            if self.random_init:
                self._model = random_init_model(self.cfg, self.dm.num_classes)
            else:
                self._model = load_method_checkpoint(self.ckpt, "eval checkpoint", self.cfg["model"],  # type: ignore[arg-type]
                                                     f"config {self.config_path}", self._ckpt_blob)
                self._ckpt_blob = None  # the model holds the weights now
        return self._model

    def source(self) -> dict[str, Any]:
        if self.random_init:
            return {"random_init": self.cfg["model"], "seed": self.cfg["run"]["seed"]}
        return checkpoint_identity(self.ckpt)  # type: ignore[arg-type]

    def features(self) -> tuple[FeatureSet, bool]:
        if not self.random_init:
            self.model()  # the mismatch check comes before any extraction
        return cached_features(self.results_dir / rd.FEATURES, self.source(), self.cfg["data"],
                               lambda: extract(self.model(), self.dm))

    def data_record(self) -> dict[str, Any]:
        """Where the evaluated images come from (recorded in every result)."""
        return {**eval_data_settings(self.cfg["data"]), "origin": self.dm.source.origin,
                "train_split": "train", "eval_split": "val"}


def result_name(settings: dict[str, Any]) -> str:
    """``knn-k20-T0.07-labels_all-<hash>``: readable settings plus a hash of all of them."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    proto = settings["protocol"]
    parts = [proto, f"k{settings['k']}-T{settings['temperature']:g}" if proto == "knn" else f"ep{settings['epochs']}"]
    if settings.get("label_indices_file"):
        parts.append("labels_file")
    elif settings.get("label_fraction") not in (None, 1.0):
        parts.append(f"labels{settings['label_fraction']:g}")
    else:
        parts.append("labels_all")
    return "-".join(parts + [digest])


def evaluate(ckpt: str | Path | None, protocol: str, data_overrides: dict[str, Any] | None = None,
             k: int = 20, temperature: float = 0.07, epochs: int = 100, config: str | Path | None = None,
             random_init: bool = False, label_fraction: float | None = None, label_indices_file: str | None = None,
             model_overrides: dict[str, Any] | None = None, run_overrides: dict[str, Any] | None = None,
             out: str | Path | None = None) -> dict[str, Any]:
    """Evaluate one target with one protocol; writes ``<run dir or out>/evals/<name>.json`` and returns it."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{protocol}'; allowed: {', '.join(PROTOCOLS)}")
    target = EvalTarget(ckpt, config, {"data": data_overrides or {}, "model": model_overrides or {},
                                       "run": run_overrides or {}}, random_init, out)
    seed = int(target.cfg["run"].get("seed", 0))
    subset_seed = int(target.dm.hparams.seed)  # data.seed: label subsets stay fixed across run seeds
    num_classes = target.dm.num_classes
    if protocol == "finetune":
        target.model()  # the mismatch check comes before anything is trained
        train_y, val_y = (split.labels.cpu() for split in target.dm.eval_splits())
        idx = label_indices(train_y, label_fraction, label_indices_file, subset_seed)
        acc, cached = finetune_scores(target, epochs, seed, idx), None
    else:
        fs, cached = target.features()
        train_y, val_y = fs.train_y, fs.val_y
        idx = label_indices(train_y, label_fraction, label_indices_file, subset_seed)
        if protocol == "knn":
            check_k(k, len(train_y) if idx is None else len(idx))
            acc = knn_scores(fs, num_classes, k, temperature, idx)
        else:
            acc = linear_scores(fs, num_classes, epochs, seed, idx)
    settings = {"protocol": protocol, "k": k if protocol == "knn" else None,
                "temperature": temperature if protocol == "knn" else None,
                "epochs": epochs if protocol != "knn" else None,
                **({"recipe": FINETUNE_RECIPE} if protocol == "finetune" else {}),
                "label_fraction": label_fraction, "label_seed": subset_seed,
                "label_indices_file": str(Path(label_indices_file).resolve()) if label_indices_file else None,
                "data": target.data_record(),
                "model": target.source()}
    result = {**settings, "checkpoint": str(target.ckpt) if target.ckpt else None, "method": target.method,
              "dataset": target.cfg["data"]["dataset"], "train_size": len(train_y),
              "labelled_size": len(train_y) if idx is None else len(idx), "val_size": len(val_y),
              "labelled_digest": None if idx is None else hashlib.sha1(idx.cpu().numpy().tobytes()).hexdigest()[:16],
              "features_cached": cached, f"{protocol}_top1": acc[1], f"{protocol}_top5": acc[5]}
    out = target.results_dir / rd.EVALS / f"{result_name(settings)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if random_init and not (target.results_dir / "config.yaml").is_file():
        dump_config(target.cfg, target.results_dir / "config.yaml")
    write_atomic(out, json.dumps(result, indent=2))
    result["path"] = str(out)
    return result


# ----------------------------------------------------------------------------- the sweep's grid
def evaluate_grid(target: EvalTarget, ks: list[int], temperatures: list[float], linear_epochs: int | None,
                  label_fractions: list[float]) -> dict[str, float]:
    """Every k x T k-NN, the linear probe, and both again per label fraction, on one feature
    extraction. Keys: ``offline_knn_top1@k20_T0.07``, ``offline_knn_best_top1``,
    ``offline_linear_top1``, ``offline_knn_top1@labels0.1`` (best k, T of the grid's first),
    ``offline_linear_top1@labels0.1``."""
    fs, _ = target.features()
    n_cls, seed = target.dm.num_classes, int(target.cfg["run"].get("seed", 0))
    out: dict[str, float] = {}
    for k in ks:
        for t in temperatures:
            out[f"offline_knn_top1@k{k}_T{t:g}"] = knn_scores(fs, n_cls, k, t)[1]
    if out:
        out["offline_knn_best_top1"] = max(out.values())
    if linear_epochs:
        out["offline_linear_top1"] = linear_scores(fs, n_cls, linear_epochs, seed)[1]
    for frac in label_fractions:
        idx = balanced_label_subset(fs.train_y, frac, int(target.dm.hparams.seed))  # data.seed, see evaluate()
        if ks:
            out[f"offline_knn_top1@labels{frac:g}"] = knn_scores(fs, n_cls, ks[0], temperatures[0], idx)[1]
        if linear_epochs:
            out[f"offline_linear_top1@labels{frac:g}"] = linear_scores(fs, n_cls, linear_epochs, seed, idx)[1]
    return out
