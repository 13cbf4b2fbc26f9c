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
    baseline: true                         # a random-init row per dataset and seed
    eval: {knn_k: [10, 20], knn_t: [0.07], linear_epochs: 100, label_fractions: [0.1]}
    launch: {backend: local, parallel: null, submitit: {...}}
    wandb: {enabled: false, project: ssl-bench}

``methods: all`` reads the METHODS registry when the sweep starts, so a newly registered method
is picked up without changing the runner or the spec.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import SECTIONS, init_parameters, load_config, resolve_class
from ..errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SPEC_KEYS = {"name", "dir", "methods", "datasets", "seeds", "config", "fallback_config", "overrides",
             "soft_overrides", "method_overrides", "dataset_overrides", "baseline", "eval", "launch", "wandb"}
EVAL_KEYS = {"knn_k", "knn_t", "linear_epochs", "label_fractions"}
LAUNCH_KEYS = {"backend", "parallel", "submitit", "cell_timeout_s"}
BACKENDS = ("local", "submitit")
BASELINE = "random_init"


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
        return self.method == BASELINE


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


def load_spec(path: str | Path, sweep_dir: str | Path | None = None, methods: list[str] | None = None,
              seeds: list[int] | None = None, extra_overrides: dict[str, Any] | None = None) -> Spec:
    """Read and expand a sweep spec; every mistake ends in one line naming the key. ``methods``,
    ``seeds`` and ``extra_overrides`` (applied last) come from the command line."""
    from ..methods import METHODS

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep spec not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"sweep spec {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep spec {path} must be a mapping")
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"sweep spec: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(SPEC_KEYS))}")
    for key, allowed in (("eval", EVAL_KEYS), ("launch", LAUNCH_KEYS)):
        bad = set(raw.get(key) or {}) - allowed
        if bad:
            raise ConfigError(f"sweep spec: unknown {key} key(s) {sorted(bad)}; allowed: {', '.join(sorted(allowed))}")
    if methods:
        raw["methods"] = methods
    if seeds:
        raw["seeds"] = seeds
    if extra_overrides:
        raw["overrides"] = {**(raw.get("overrides") or {}), **extra_overrides}
    methods = _as_list(raw.get("methods"), "methods")
    if methods == ["all"]:
        methods = sorted(METHODS)
    datasets = [str(d) for d in _as_list(raw.get("datasets"), "datasets")]
    seeds = _as_list(raw.get("seeds", [0]), "seeds")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"sweep spec: seeds must be integers, got {seeds}")
    name = str(raw.get("name") or path.stem)
    out_dir = Path(sweep_dir or raw.get("dir") or Path("runs/sweeps") / name)
    cells: list[Cell] = []
    for dataset in datasets:
        first: dict[str, dict[str, Any]] | None = None
        for entry in methods:
            label, base, source = _method_config(entry, dataset, raw, path.parent)
            for seed in seeds:
                cfg = {s: dict(v) if isinstance(v, dict) else v for s, v in base.items()}
                cfg = yaml.safe_load(yaml.safe_dump(cfg))  # deep copy of plain data
                _apply(cfg, raw.get("overrides"), "overrides")
                _apply_soft(cfg, raw.get("soft_overrides") or {})
                _apply(cfg, (raw.get("dataset_overrides") or {}).get(dataset), f"dataset_overrides.{dataset}")
                _apply(cfg, (raw.get("method_overrides") or {}).get(label), f"method_overrides.{label}")
                cfg["run"].update(seed=seed, dir=str(out_dir), name=f"{label}-{dataset}-s{seed}", resume=None)
                cells.append(Cell(label, dataset, seed, cfg, source))
                first = first or cfg
        if raw.get("baseline", True) and first is not None:
            for seed in seeds:
                cfg = yaml.safe_load(yaml.safe_dump(first))
                cfg["run"].update(seed=seed, name=f"{BASELINE}-{dataset}-s{seed}")
                cells.append(Cell(BASELINE, dataset, seed, cfg, f"{first['model'].get('name')} config, untrained"))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ConfigError("sweep spec: two methods give the same cell name; list each method once")
    launch = dict(raw.get("launch") or {})
    if launch.get("backend", "local") not in BACKENDS:
        raise ConfigError(f"sweep spec: launch.backend must be one of {', '.join(BACKENDS)}")
    return Spec(name=name, dir=out_dir, cells=cells, eval=dict(raw.get("eval") or {}), launch=launch,
                wandb=dict(raw.get("wandb") or {}), path=path)
