"""Sweep specs: methods x datasets x seeds, their configs and overrides, expanded into cells.

A spec (YAML; ``configs/sweeps/digits-small.yaml`` is a commented example)::

    name: digits-small                     # W&B group; default: the file name
    dir: runs/sweeps/digits-small          # the sweep directory (one run directory per cell)
    methods: [simclr, byol]                # registered names, "all", or config files (*.yaml)
    datasets: [digits]
    seeds: [0, 1]
    config: configs/{dataset}/{method}.yaml  # a method's config for a dataset (relative: to the repo)
    fallback_config: configs/{dataset}/simclr.yaml  # for methods without one: its data/trainer
    overrides: {trainer.max_epochs: 1}     # every cell (then soft, dataset and method overrides)
    soft_overrides: {model.proj_dim: 64}   # every cell whose method takes the key
    method_overrides: {byol: {model.lr: 1.0}}
    dataset_overrides: {digits: {data.batch_size: 128}}
    baseline: true                         # a random-init row per dataset, seed and network
    eval: {knn: {k: [10, 20], temperature: [0.07]}, linear: {epochs: 100}, label_fractions: [0.1]}
                                           # or any protocol: {knn: {k: [10, 20]}, my_pkg.mod.MyProtocol: {...}}
    launch: {backend: local, parallel: null, submitit: {...}}
    wandb: {enabled: false, project: ssl-bench}

``methods: all`` reads the METHODS registry when the sweep starts, so a newly registered method
is picked up without changing the runner or the spec.

Values are read as in ``ssl-bench pretrain`` (``config.parse_yaml``: ``5e-2`` is a float), and the
whole spec is checked before anything trains: the spec's own keys and settings, and every cell's
config as ``pretrain`` checks it (``build.full_config``: keys, types, method names); each mistake
ends in one ``ConfigError`` line naming the key.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import SECTIONS, init_parameters, load_config, read_yaml_file, resolve_class
from ..errors import ConfigError, did_you_mean
from .baseline import baseline_method, is_baseline

REPO = Path(__file__).resolve().parents[2]
SPEC_KEYS = {"name", "dir", "methods", "datasets", "seeds", "config", "fallback_config", "overrides",
             "soft_overrides", "method_overrides", "dataset_overrides", "baseline", "eval", "launch", "wandb"}
EVAL_KEYS = {"knn_k", "knn_t", "linear_epochs", "label_fractions", "protocols"}  # and protocols by name
LAUNCH_KEYS = {"backend", "parallel", "submitit", "cell_timeout_s"}
WANDB_KEYS = {"enabled", "project"}  # enabled: every cell logs to W&B (run.logger, run.wandb_project), and
# run_sweep logs the report; project: the cells' and publish.build_report's W&B project
BACKENDS = ("local", "submitit")


@dataclass
class Cell:
    """One pretraining run of the sweep (or, for ``method == "random_init"``, the baseline)."""

    method: str
    dataset: str
    seed: int
    config: dict[str, dict[str, Any]]
    source: str  # where the config came from (shown in the plan)

    @property
    def name(self) -> str:
        return f"{self.method}-{self.dataset}-s{self.seed}"

    @property
    def is_baseline(self) -> bool:
        return is_baseline(self.method)


@dataclass
class Spec:
    name: str
    dir: Path
    cells: list[Cell]
    eval: dict[str, Any] = field(default_factory=dict)
    launch: dict[str, Any] = field(default_factory=dict)
    wandb: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _as_list(value: Any, key: str) -> list:
    if value is None:
        raise ConfigError(f"sweep spec: '{key}' is required")
    return value if isinstance(value, list) else [value]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_eval(settings: Any) -> dict[str, Any]:
    """The ``eval`` section checked and in ``eval.run.evaluate_grid``'s form: ``{"protocols":
    {address: settings}, "label_fractions": [...]}``, grid settings as lists (a single value is a
    list of one), each protocol under the address a cell process finds it by (a registered name of
    the package, else its import path: ``eval.registry.protocol_address``). Empty stays empty.

    Accepted: any protocol by name with its settings (``knn: {k: [10, 20]}``), the earlier short keys
    ``knn_k``, ``knn_t`` (k-NN over k x T), ``linear_epochs`` (a linear probe; null: none),
    ``label_fractions``, and any protocol, registered (``eval.PROTOCOLS``) or by import path, with
    its settings: ``toy: {scale: [1, 2]}`` or under ``protocols:``. Every protocol of the section
    runs in every cell (a protocol that needs images, e.g. ``finetune``, trains on them there).
    This function accepts its own output (the cell re-reads ``_sweep/eval.json`` through it)."""
    from ..eval.registry import PROTOCOLS, grid_settings, protocol_address, resolve_protocol

    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ConfigError(f"sweep spec: eval must be a mapping (knn_k, knn_t, linear_epochs, label_fractions, "
                          f"or a protocol: {', '.join(PROTOCOLS)}), got {settings!r}")
    if not settings:
        return {}
    out = dict(settings)
    rules = {"knn_k": (_positive_int, "is not a positive integer"),
             "knn_t": (lambda v: _number(v) and v > 0, "is not a positive number"),
             "label_fractions": (lambda v: _number(v) and 0 < v <= 1, "is not in (0, 1]")}
    for key, (ok, what) in rules.items():
        if out.get(key) is None:
            continue
        values = out[key] if isinstance(out[key], list) else [out[key]]
        for value in values:
            if not ok(value):
                raise ConfigError(f"sweep spec: eval.{key}: {value!r} {what}")
        out[key] = values
    epochs = out.get("linear_epochs")
    if epochs is not None and not _positive_int(epochs):
        raise ConfigError(f"sweep spec: eval.linear_epochs must be a positive integer or null (no linear probe), "
                          f"got {epochs!r}")
    # (where, protocol name or import path, its settings), in the order they run
    entries: list[tuple[str, str, Any]] = []
    if out.get("knn_k"):  # as before the registry: knn_t alone runs no k-NN
        entries.append(("eval.knn_k/knn_t", "knn", {"k": out["knn_k"], "temperature": out.get("knn_t") or [0.07]}))
    if epochs:
        entries.append(("eval.linear_epochs", "linear", {"epochs": epochs}))
    nested = out.get("protocols") or {}
    if not isinstance(nested, dict):
        raise ConfigError(f"sweep spec: eval.protocols must be a mapping of protocol: settings, got {nested!r}")
    entries += [(f"eval.protocols.{key}", str(key), value) for key, value in nested.items()]
    entries += [(f"eval.{key}", str(key), value) for key, value in out.items() if key not in EVAL_KEYS]
    protocols: dict[str, dict[str, Any]] = {}
    given: dict[str, str] = {}  # protocol name -> where it was given
    for where, key, values in entries:
        try:
            cls = resolve_protocol(key)
        except ConfigError as err:
            if "." in key or where.startswith("eval.protocols."):
                raise ConfigError(f"sweep spec: {where}: {err}") from None
            allowed = sorted(EVAL_KEYS) + sorted(PROTOCOLS)
            raise ConfigError(f"sweep spec: unknown eval key '{key}'; allowed: {', '.join(sorted(EVAL_KEYS))}, "
                              f"a protocol ({', '.join(PROTOCOLS)}) or an importable my_pkg.module.Class"
                              f"{did_you_mean(key, allowed)}") from None
        if values is not None and not isinstance(values, dict):
            names = ", ".join(f.name for f in dataclasses.fields(cls.Settings)) or "none"
            raise ConfigError(f"sweep spec: {where} must be a mapping of protocol {cls.name}'s settings "
                              f"({names}), got {values!r}")
        if cls.name in given:
            raise ConfigError(f"sweep spec: {where}: protocol {cls.name} is given twice (also as {given[cls.name]}); "
                              "give it once")
        given[cls.name] = where
        checked, _ = grid_settings(cls, values or {}, f"sweep spec: {where}")
        try:
            address = protocol_address(cls)  # how the cells (other processes) import it
        except ConfigError as err:
            raise ConfigError(f"sweep spec: {where}: {err}") from None
        protocols[address] = checked
    return {"protocols": protocols, "label_fractions": list(out.get("label_fractions") or [])}


def _check_sections(raw: dict[str, Any]) -> None:
    """The spec's own settings (before any config is read)."""
    for key, allowed in (("launch", LAUNCH_KEYS), ("wandb", WANDB_KEYS)):  # eval: check_eval
        section = raw.get(key) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"sweep spec: {key} must be a mapping with keys {', '.join(sorted(allowed))}, "
                              f"got {section!r}")
        bad = set(section) - allowed
        if bad:
            raise ConfigError(f"sweep spec: unknown {key} key(s) {sorted(bad, key=str)}; allowed: "
                              f"{', '.join(sorted(allowed))}{did_you_mean(sorted(bad, key=str)[0], allowed)}")
    wandb = raw.get("wandb") or {}
    if not isinstance(wandb.get("enabled", False), bool):
        raise ConfigError(f"sweep spec: wandb.enabled must be true or false, got {wandb['enabled']!r}")
    if not isinstance(wandb.get("project", ""), str):
        raise ConfigError(f"sweep spec: wandb.project must be a string, got {wandb['project']!r}")
    if not isinstance(raw.get("baseline", True), bool):
        raise ConfigError(f"sweep spec: baseline must be true or false, got {raw['baseline']!r}")
    for key in ("overrides", "soft_overrides", "method_overrides", "dataset_overrides"):
        if not isinstance(raw.get(key) or {}, dict):
            raise ConfigError(f"sweep spec: {key} must be a mapping, got {raw[key]!r}")
    for key in ("method_overrides", "dataset_overrides"):
        for name, overrides in (raw.get(key) or {}).items():
            if not isinstance(overrides or {}, dict):
                raise ConfigError(f"sweep spec: {key}.{name} must be a mapping of section.key: value, "
                                  f"got {overrides!r}")


def network_key(cfg: dict[str, dict[str, Any]]) -> str:
    """What a random-init row measures: the untrained feature extractor, set by the backbone and its
    options, and by the method class where it replaces the backbone (CMC encodes L and ab apart)."""
    from ..methods import METHODS, BaseMethod

    model = cfg["model"]
    cls = resolve_class(str(model["name"]), METHODS, BaseMethod, "method")
    backbone = model.get("backbone", init_parameters(cls)["backbone"].default)
    own = None if cls.evaluates_registry_backbone else f"{cls.__module__}.{cls.__qualname__}"
    return json.dumps([backbone, model.get("backbone_kwargs") or {}, own], sort_keys=True, default=str)


def _once_each(values: list, key: str) -> None:
    twice = [v for v, n in Counter(map(str, values)).items() if n > 1]
    if twice:
        raise ConfigError(f"sweep spec: {key}: {twice[0]} is listed twice")


def check_cell_config(cell: Cell, origins: dict[str, str] | None = None) -> None:
    """The checks ``pretrain`` makes of a config before it reads any data (``build.full_config``:
    known keys and their types in every section, the method's name, trainer limits), as one
    ConfigError naming the cell, and the spec entry that set the key (``origins``: dotted key ->
    e.g. ``method_overrides.byol``); errors that need the data (e.g. a missing dataset) surface in
    the cell."""
    from ..build import full_config

    try:
        full_config(cell.config)
    except ValueError as err:  # ConfigError, and a ValueError of a check
        message = " ".join(str(err).split())
        where = next((f" (set by {w})" for k, w in (origins or {}).items()
                      if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w.])", message)), "")
        raise ConfigError(f"sweep spec: cell {cell.name}{where}: {message}") from None


def _origins(raw: dict[str, Any], label: str, dataset: str, extra: dict[str, Any] | None) -> dict[str, str]:
    """Which spec entry set each overridden key of a cell (the last one applied)."""
    out: dict[str, str] = {}
    for where, overrides in (("overrides", raw.get("overrides")), ("soft_overrides", raw.get("soft_overrides")),
                             (f"dataset_overrides.{dataset}", (raw.get("dataset_overrides") or {}).get(dataset)),
                             (f"method_overrides.{label}", (raw.get("method_overrides") or {}).get(label)),
                             ("--set", extra)):
        out.update({str(k): where for k in overrides or {}})
    return out


def _resolve(path: str, spec_dir: Path) -> Path:
    p = Path(path)
    if p.is_absolute():
        return p
    for base in (Path.cwd(), spec_dir, REPO):
        if (base / p).is_file():
            return base / p
    return REPO / p


def _set(cfg: dict[str, dict[str, Any]], dotted: str, value: Any, where: str) -> None:
    parts = dotted.split(".")
    if parts[0] not in SECTIONS or len(parts) < 2:
        raise ConfigError(f"sweep spec: {where}: key '{dotted}' must look like <{'|'.join(SECTIONS)}>.<key>")
    node = cfg[parts[0]]
    for part in parts[1:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _apply(cfg: dict[str, dict[str, Any]], overrides: Any, where: str) -> None:
    if overrides is None:
        return
    if not isinstance(overrides, dict):
        raise ConfigError(f"sweep spec: {where} must be a mapping of section.key: value")
    for key, value in overrides.items():
        _set(cfg, str(key), value, where)


def _apply_soft(cfg: dict[str, dict[str, Any]], overrides: dict[str, Any]) -> None:
    """Model keys only where the method's constructor takes them (e.g. a projector size)."""
    from ..methods import METHODS, BaseMethod

    try:
        accepted = set(init_parameters(resolve_class(str(cfg["model"].get("name")), METHODS, BaseMethod, "method")))
    except ConfigError:
        accepted = set()  # an unknown method fails in its own cell, with the pretrain's one line
    for key, value in (overrides or {}).items():
        section, _, rest = str(key).partition(".")
        if section != "model" or rest.split(".")[0] in accepted:
            _set(cfg, str(key), value, "soft_overrides")


def _method_config(entry: Any, dataset: str, raw: dict[str, Any], spec_dir: Path) -> tuple[str, dict, str]:
    """(method label, config, source) for one ``methods`` entry on one dataset."""
    from ..methods import METHODS

    if isinstance(entry, str) and entry.endswith((".yaml", ".yml")):
        path = _resolve(entry, spec_dir)
        cfg = load_config(path)
        label = str(cfg["model"].get("name", path.stem)).rsplit(".", 1)[-1].lower()
        cfg["data"]["dataset"] = dataset
        return label, cfg, str(path)
    if not isinstance(entry, str):
        raise ConfigError(f"sweep spec: methods entries are names or config files, got {entry!r}")
    template = raw.get("config", "configs/{dataset}/{method}.yaml")
    path = _resolve(template.format(method=entry, dataset=dataset), spec_dir)
    if path.is_file():
        cfg = load_config(path)
        cfg["data"]["dataset"] = dataset
        return entry, cfg, str(path)
    fallback = raw.get("fallback_config")
    if fallback is None:
        raise ConfigError(f"sweep spec: no config for method '{entry}' on '{dataset}' ({path}); add one, or "
                          "set fallback_config")
    base = load_config(_resolve(fallback.format(method=entry, dataset=dataset), spec_dir))
    if entry not in METHODS and "." not in entry:
        raise ConfigError(f"sweep spec: unknown method '{entry}'; known: {', '.join(sorted(METHODS))}")
    # the fallback's data/trainer/run settings, the method's own defaults for its heads and loss
    from ..methods import BaseMethod

    base_keys = set(init_parameters(BaseMethod))
    base["model"] = {"name": entry, **{k: v for k, v in base["model"].items() if k in base_keys and k != "name"}}
    base["data"]["dataset"] = dataset
    return entry, base, f"{fallback} (method defaults)"


def _dataset_kind(raw: dict[str, Any], entry: str, extra: dict[str, Any] | None) -> str:
    """The registered dataset of a ``datasets`` entry (what ``config`` templates are filled with):
    the entry itself, or the ``data.dataset`` its overrides set (own images: an entry such as
    ``flowers`` with ``dataset_overrides: {flowers: {data.dataset: folder, data.root: DIR}}``)."""
    from ..data.sources import KNOWN_DATASETS

    kind = entry
    for overrides in (raw.get("overrides"), (raw.get("dataset_overrides") or {}).get(entry), extra):
        if isinstance(overrides, dict) and "data.dataset" in overrides:
            kind = str(overrides["data.dataset"])
    if kind not in KNOWN_DATASETS:
        raise ConfigError(f"sweep spec: datasets: '{entry}' is not a registered dataset ({', '.join(KNOWN_DATASETS)}); "
                          f"for your own images keep the name and set dataset_overrides: {{{entry}: "
                          f"{{data.dataset: folder, data.root: DIR}}}}{did_you_mean(entry, KNOWN_DATASETS)}")
    return kind


def _dataset_name(cfg: dict[str, dict[str, Any]], entry: str) -> str:
    """The dataset in cell names, as ``pretrain`` names it (``sources.dataset_name``): an entry that
    is not a registered dataset is the data's ``data.name`` unless that is set; ``folder`` is named
    after its ``data.root``. Two image folders in one sweep are two entries, e.g. ``[flowers, birds]``."""
    from ..data.sources import KNOWN_DATASETS, dataset_name

    if entry not in KNOWN_DATASETS:
        cfg["data"].setdefault("name", entry)
    return dataset_name(cfg["data"])


def _methods(value: Any, key: str = "methods") -> list:
    from ..methods import METHODS

    methods = _as_list(value, key)
    if not methods:
        raise ConfigError(f"sweep spec: {key}: empty; list registered method names, 'all', or config files")
    return sorted(METHODS) if methods == ["all"] else methods


def _label(entry: Any, spec_dir: Path) -> str:
    """The method label of a ``methods`` entry (what cell names and ``method_overrides`` use)."""
    if isinstance(entry, str) and entry.endswith((".yaml", ".yml")):
        path = _resolve(entry, spec_dir)
        return str(load_config(path)["model"].get("name", path.stem)).rsplit(".", 1)[-1].lower()
    return str(entry)


def load_spec(path: str | Path, sweep_dir: str | Path | None = None, methods: list[str] | None = None,
              seeds: list[int] | None = None, extra_overrides: dict[str, Any] | None = None,
              check_configs: bool = True) -> Spec:
    """Read, check and expand a sweep spec; every mistake ends in one line naming the key (and
    nothing has been trained or written). ``methods``, ``seeds`` and ``extra_overrides`` (applied
    last) come from the command line. ``check_configs``: also check every cell's config as
    ``pretrain`` does (``check_cell_config``)."""
    path = Path(path)
    raw = read_yaml_file(path, "sweep spec") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep spec {path} must be a mapping")
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"sweep spec: unknown key(s) {sorted(unknown, key=str)}; allowed: "
                          f"{', '.join(sorted(SPEC_KEYS))}{did_you_mean(sorted(unknown, key=str)[0], SPEC_KEYS)}")
    _check_sections(raw)
    eval_settings = check_eval(raw.get("eval") or {})
    spec_methods = raw.get("methods")
    if methods:
        raw["methods"] = methods
    if seeds:
        raw["seeds"] = seeds
    methods = _methods(raw.get("methods"))
    _once_each(methods, "methods")
    datasets = [str(d) for d in _as_list(raw.get("datasets"), "datasets")]
    _once_each(datasets, "datasets")
    seeds = _as_list(raw.get("seeds", [0]), "seeds")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"sweep spec: seeds must be integers, got {seeds}")
    _once_each(seeds, "seeds")
    name = str(raw.get("name") or path.stem)
    out_dir = Path(sweep_dir or raw.get("dir") or Path("runs/sweeps") / name)
    unknown_datasets = sorted(set(map(str, raw.get("dataset_overrides") or {})) - set(datasets))
    if unknown_datasets:
        raise ConfigError(f"sweep spec: dataset_overrides.{unknown_datasets[0]}: '{unknown_datasets[0]}' is not "
                          f"in datasets ({', '.join(datasets)})")
    cells: list[Cell] = []
    labels: dict[str, str] = {}  # method label -> its methods entry
    origins: dict[str, dict[str, str]] = {}  # cell name -> {overridden key: the spec entry that set it}
    for dataset in datasets:
        networks: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {}  # network -> (first method, its config)
        kind = _dataset_kind(raw, dataset, extra_overrides)
        for entry in methods:
            label, base, source = _method_config(entry, kind, raw, path.parent)
            if labels.setdefault(label, str(entry)) != str(entry):
                raise ConfigError(f"sweep spec: methods: {labels[label]} and {entry} are both method '{label}' "
                                  "(the same cell names); list each method once")
            for seed in seeds:
                cfg = copy.deepcopy(base)
                _apply(cfg, raw.get("overrides"), "overrides")
                _apply_soft(cfg, raw.get("soft_overrides") or {})
                _apply(cfg, (raw.get("dataset_overrides") or {}).get(dataset), f"dataset_overrides.{dataset}")
                _apply(cfg, (raw.get("method_overrides") or {}).get(label), f"method_overrides.{label}")
                _apply(cfg, extra_overrides, "--set")  # the command line wins over the spec file
                named = _dataset_name(cfg, dataset)
                cfg["run"].update(seed=seed, dir=str(out_dir), name=f"{label}-{named}-s{seed}", resume=None)
                cells.append(Cell(label, named, seed, cfg, source))
                origins[cells[-1].name] = _origins(raw, label, dataset, extra_overrides)
                networks.setdefault(network_key(cfg), (label, cfg))
        for i, (label, first) in enumerate(networks.values() if raw.get("baseline", True) else []):
            row = baseline_method(None if i == 0 else label)
            for seed in seeds:
                cfg = copy.deepcopy(first)
                named = _dataset_name(cfg, dataset)
                cfg["run"].update(seed=seed, name=f"{row}-{named}-s{seed}")
                cells.append(Cell(row, named, seed, cfg, f"{first['model'].get('name')} config, untrained"))
                origins[cells[-1].name] = origins[first["run"]["name"]]
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"sweep spec: two cells are named {next(n for n in names if names.count(n) > 1)}; "
                          "list each method, dataset and seed once")
    # a method override names a method of the sweep (with --methods: of the spec file's too)
    known = set(labels)
    if spec_methods and spec_methods != raw.get("methods"):
        known |= {_label(e, path.parent) for e in _methods(spec_methods)}
    stray = sorted(set(map(str, raw.get("method_overrides") or {})) - known)
    if stray:
        raise ConfigError(f"sweep spec: method_overrides.{stray[0]}: '{stray[0]}' is not in methods "
                          f"({', '.join(sorted(known))})")
    launch = dict(raw.get("launch") or {})
    if launch.get("backend", "local") not in BACKENDS:
        raise ConfigError(f"sweep spec: launch.backend must be one of {', '.join(BACKENDS)}")
    wandb = raw.get("wandb") or {}
    if wandb.get("enabled"):  # each cell's pretrain logs to W&B while it trains (sweep/wandb_log.py)
        for cell in cells:
            cell.config["run"].update(logger="wandb", wandb_project=wandb.get("project", "ssl-bench"))
    if check_configs:
        for cell in cells:
            check_cell_config(cell, origins.get(cell.name))
    return Spec(name=name, dir=out_dir, cells=cells, eval=eval_settings, launch=launch,
                wandb=dict(raw.get("wandb") or {}), path=path)


def resolved_spec(path: str | Path, sweep_dir: str | Path | None = None, methods: list[str] | None = None,
                  seeds: list[int] | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``ssl-bench sweep --print-config``: the spec as the runner reads it - its directory, evaluation,
    launch and W&B sections, and every cell's config with the overrides applied (checked, as a run
    would check them); nothing is run or written."""
    spec = load_spec(path, sweep_dir, methods=methods, seeds=seeds, extra_overrides=overrides)
    return {"name": spec.name, "dir": str(spec.dir), "eval": spec.eval, "launch": spec.launch, "wandb": spec.wandb,
            "cells": {cell.name: {"source": cell.source, **cell.config} for cell in spec.cells}}
