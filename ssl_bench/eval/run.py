"""Offline evaluation of a backbone with a registered protocol (``eval.registry.PROTOCOLS``: k-NN or
linear on frozen features, fine-tuning, or one of your own); full or few labels, trained or
random-init.

    ssl-bench eval --ckpt runs/x/checkpoints/last.ckpt --protocol knn --k 20 --temperature 0.07
    ssl-bench eval --ckpt runs/x/checkpoints/last.ckpt --protocol linear --label-fraction 0.01
    ssl-bench eval --random-init --config configs/cifar10/simclr.yaml --protocol knn
    ssl-bench eval --ckpt runs/x/checkpoints/last.ckpt --protocol finetune --label-fraction 0.1

The model and data come from the run's ``config.yaml`` (beside ``checkpoints/``), or from
``--config`` when given; the checkpoint must hold the method and backbone asked for, else one line
says what it holds. Un-augmented features of the train split (``data.eval_train_subset`` of it if
set) and of the val split are extracted once and cached (``eval/features.py``); every result is written
to ``<run dir>/evals/<protocol>-<settings>-<labels>-<hash>.json``, named by its settings and
recording them (data root, split, the protocol's settings, label fraction or index file), so no
result replaces another. ``finetune`` trains the backbone and a new linear head on the labelled
train images with strong augmentation (image trees: held in memory when small, else streamed from
the files, see ``eval.finetune``); with ``--random-init`` it is the supervised-only
baseline of semi-supervised methods (PAWS, Sec. 5: fine-tuned PAWS against training on the labels
alone). ``evaluate_grid`` runs a sweep's ``eval:`` section on one checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from torch import Tensor

from .. import run_dir as rd
from ..config import dump_config
from ..errors import ConfigError
from ..data.label_subset import balanced_label_subset
from ..run_dir import write_atomic
from .registry import EvalProtocol, address_of, grid_settings, is_builtin, make_settings, resolve_protocol, setting_specs
from .target import EvalTarget, label_indices, target_config


def result_name(settings: dict[str, Any], part: str | None = None) -> str:
    """``knn-k20-T0.07-labels_all-<hash>``: the protocol, its settings (``part``; default: the
    registered protocol's ``name_part`` of the recorded settings), the labels, and a hash of all of
    the recorded settings."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    if part is None:
        cls = resolve_protocol(settings.get("protocol_class") or settings["protocol"])
        part = cls().name_part(cls.Settings(**{s.name: settings[s.name] for s in setting_specs(cls)}))
    parts = [settings["protocol"]] + ([part] if part else [])
    if settings.get("label_indices_file"):
        parts.append("labels_file")
    elif settings.get("label_fraction") not in (None, 1.0):
        parts.append(f"labels{settings['label_fraction']:g}")
    else:
        parts.append("labels_all")
    return "-".join(parts + [digest])


def evaluate(ckpt: str | Path | None, protocol: str, data_overrides: dict[str, Any] | None = None,
             k: int | None = None, temperature: float | None = None, epochs: int | None = None,
             config: str | Path | None = None, random_init: bool = False, label_fraction: float | None = None,
             label_indices_file: str | None = None, model_overrides: dict[str, Any] | None = None,
             run_overrides: dict[str, Any] | None = None, out: str | Path | None = None,
             settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate one target with one protocol (a registered name or an import path); writes
    ``<run dir or out>/evals/<name>.json`` and returns it. ``settings``: the protocol's settings by
    name (checked: an unknown or wrong one is one line); the others are its defaults. ``k``,
    ``temperature`` and ``epochs`` are the earlier keywords, used by the protocols that take them."""
    cls = resolve_protocol(protocol)
    names = {s.name for s in setting_specs(cls)}
    earlier = {key: value for key, value in (("k", k), ("temperature", temperature), ("epochs", epochs))
               if value is not None and key in names}
    chosen = make_settings(cls, {**earlier, **(settings or {})})  # checked before anything is loaded
    proto = cls()
    target = EvalTarget(ckpt, config, {"data": data_overrides or {}, "model": model_overrides or {},
                                       "run": run_overrides or {}}, random_init, out)
    subset_seed = int(target.dm.hparams.seed)  # data.seed: label subsets stay fixed across run seeds
    if cls.needs_features:
        fs, cached = target.features()
        train_y, val_y = fs.train_y, fs.val_y
    else:
        target.model()  # the mismatch check comes before anything is trained
        train_y, val_y = (split.labels.cpu() for split in target.dm.eval_splits())
        cached = None
    if not cls.uses_labels and (label_fraction is not None or label_indices_file is not None):
        raise ConfigError(f"protocol {cls.name} uses no labels: --label-fraction and --label-indices do not apply")
    idx = label_indices(train_y, label_fraction, label_indices_file, subset_seed)
    proto.check(target, chosen, idx)
    metrics = proto.run(target, chosen, idx)
    if cls.metric not in metrics:
        raise ValueError(f"protocol {cls.name} returned {sorted(metrics)}, without its metric '{cls.metric}'")
    record = {"protocol": cls.name, **({} if is_builtin(cls) else {"protocol_class": address_of(cls)}),
              **proto.record(chosen),
              "label_fraction": label_fraction, "label_seed": subset_seed,
              "label_indices_file": str(Path(label_indices_file).resolve()) if label_indices_file else None,
              "data": target.data_record(),
              "model": target.source()}
    result = {**record, "checkpoint": str(target.ckpt) if target.ckpt else None, "method": target.method,
              "dataset": target.cfg["data"]["dataset"], "train_size": len(train_y),
              "labelled_size": len(train_y) if idx is None else len(idx), "val_size": len(val_y),
              "labelled_digest": None if idx is None else hashlib.sha1(idx.cpu().numpy().tobytes()).hexdigest()[:16],
              "features_cached": cached, **{f"{cls.name}_{key}": value for key, value in metrics.items()}}
    out = target.results_dir / rd.EVALS / f"{result_name(record, proto.name_part(chosen))}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if random_init and not (target.results_dir / "config.yaml").is_file():
        dump_config(target.cfg, target.results_dir / "config.yaml")
    write_atomic(out, json.dumps(result, indent=2))
    result["path"] = str(out)
    return result


def resolved_eval_config(ckpt: str | Path | None, protocol: str, overrides: dict[str, dict[str, Any]],
                         config: str | Path | None = None, random_init: bool = False,
                         settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """``ssl-bench eval --print-config``: the config an evaluation would use (``eval.target.target_config``:
    the run's ``config.yaml`` or ``--config``, with the overrides, checked as the evaluation checks
    it) and the protocol's settings with every default, under ``eval.<protocol>``; reads no
    checkpoint contents and no data."""
    cls = resolve_protocol(protocol)
    chosen = make_settings(cls, settings)
    cfg, _, _ = target_config(ckpt, config, overrides, random_init)
    return {"ckpt": None if ckpt is None else str(ckpt), "random_init": random_init,
            **{s: cfg[s] for s in ("model", "data", "run")}, "eval": {cls.name: dataclasses.asdict(chosen)}}


# ----------------------------------------------------------------------------- the sweep's grid
def offline_key(cls: type[EvalProtocol], tag: str = "", best: bool = False) -> str:
    """A sweep's metric name: ``offline_knn_top1@k20_T0.07`` (one combination of the grid, or
    ``@labels0.1``), ``offline_knn_best_top1`` (the grid's best), ``offline_linear_top1`` (no grid)."""
    return f"offline_{cls.name}_{'best_' if best else ''}{cls.metric}" + (f"@{tag}" if tag else "")


def headline_column(cls: type[EvalProtocol]) -> str:
    """The column of a protocol in a sweep's results table: its grid's best, or its one result."""
    return offline_key(cls, best=bool(cls.grid))


def evaluate_grid(target: EvalTarget, protocols: dict[str, dict[str, Any]],
                  label_fractions: list[float] | tuple[float, ...] = ()) -> dict[str, float]:
    """A sweep's ``eval:`` section (``sweep.spec.check_eval``'s form) on one target, the frozen
    features extracted once: each protocol (a registered name or an import path -> its settings,
    grid settings as lists) on every combination of its grid, then on each label fraction of the
    train labels with the grid's first combination. Keys (the protocol's headline metric):
    ``offline_knn_top1@k20_T0.07`` per combination and ``offline_knn_best_top1`` for a protocol
    with a grid, ``offline_linear_top1`` for one without, ``offline_knn_top1@labels0.1``."""
    out: dict[str, float] = {}
    runs = []
    for address, values in protocols.items():
        cls = resolve_protocol(address)
        _, points = grid_settings(cls, values, f"eval.{address}")
        runs.append((cls, cls(), points))

    def score(cls: type[EvalProtocol], proto: EvalProtocol, settings: Any, idx: Tensor | None) -> float:
        metrics = proto.run(target, settings, idx)
        if cls.metric not in metrics:
            raise ValueError(f"protocol {cls.name} returned {sorted(metrics)}, without its metric '{cls.metric}'")
        return float(metrics[cls.metric])

    for cls, proto, points in runs:
        if not cls.grid:
            out[offline_key(cls)] = score(cls, proto, points[0], None)
            continue
        values = []
        for settings in points:
            values.append(score(cls, proto, settings, None))
            out[offline_key(cls, proto.grid_tag(settings))] = values[-1]
        out[offline_key(cls, best=True)] = max(values) if cls.higher_is_better else min(values)
    if label_fractions and runs:
        if any(cls.needs_features for cls, _, _ in runs):
            train_y = target.features()[0].train_y
        else:
            train_y = target.dm.eval_splits()[0].labels.cpu()
        for frac in label_fractions:
            idx = balanced_label_subset(train_y, frac, int(target.dm.hparams.seed))  # data.seed, see evaluate()
            for cls, proto, points in runs:
                if cls.uses_labels:
                    out[offline_key(cls, f"labels{frac:g}")] = score(cls, proto, points[0], idx)
    return out
