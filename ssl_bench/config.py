"""YAML run configs: loading, ``--section.key value`` overrides, and type checks against signatures.

Written here rather than with LightningCLI/jsonargparse so that a config stays four flat sections
(model, data, trainer, run) and every mistake ends in one line naming the key and what is allowed.
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import ConfigError, did_you_mean

SECTIONS = ("model", "data", "trainer", "run")  # a pretraining config
#: the config language's other sections: ``eval.<protocol>.<setting>`` (``ssl-bench eval``, a sweep's
#: ``eval:``) and ``scan.<setting>`` (``ssl-bench scan`` and its job file)
EVAL_SECTIONS = ("eval", "scan")
#: the entry of a written config.yaml (and --print-config) holding the values derived from the
#: sections (global batch, scaled lr, steps, seeds: ``build.derived_values``); output only, recomputed
#: on every run, so a config read back ignores it
DERIVED = "derived"
RUN_DEFAULTS: dict[str, Any] = {
    "dir": "runs",          # parent of the run directory
    "name": None,           # run directory name; default "<method>-<dataset>-seed<seed>"
    "seed": 0,
    "logger": "csv",        # "csv" or "wandb" (CSV is always written)
    "wandb_project": "ssl-bench",
    "resume": None,         # a checkpoint path, or "auto" for <run dir>/checkpoints/last.ckpt
    "overwrite": False,     # start afresh in a run directory that holds an earlier run (deletes its files)
    "ckpt_every_n_steps": None,   # also rewrite last.ckpt every N optimiser steps (mid-epoch)
    "ckpt_every_minutes": None,   # also rewrite last.ckpt every M minutes of training (mid-epoch)
    "collective_timeout_minutes": 10.0,  # multi-process runs: a collective waiting longer ends the run
}
RUN_TYPES: dict[str, Any] = {"dir": str, "name": str | None, "seed": int, "logger": str, "wandb_project": str,
                             "resume": str | None, "overwrite": bool, "ckpt_every_n_steps": int | None,
                             "ckpt_every_minutes": float | None, "collective_timeout_minutes": float}


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: ``1e-3`` and ``3E+4`` are numbers (YAML 1.1, which
    PyYAML implements, requires a dot and a signed exponent, so it reads ``1e-3`` as a string)."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """``yaml.safe_load`` with scientific notation read as floats (see ``ConfigLoader``)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - ConfigLoader is a SafeLoader


def read_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path`` (``parse_yaml``), or ``{}`` when the file is missing, unreadable,
    not YAML or not a mapping: for readers of run files that must never fail (report, plots, W&B)."""
    try:
        data = parse_yaml(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_yaml_file(path: Path, what: str = "config file") -> Any:
    """The parsed YAML of ``path`` (``None`` for an empty file); a missing file or invalid YAML is
    a one-line ConfigError naming ``what`` and the path."""
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        return parse_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {path} is not valid YAML: {str(err).splitlines()[0]}") from None


def load_config(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Read a YAML config into the four sections (missing sections are empty)."""
    cfg: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        cfg = read_yaml_file(path) or {}
        if not isinstance(cfg, dict):
            raise ConfigError(f"config file {path} must be a mapping with sections {', '.join(SECTIONS)}")
    cfg.pop(DERIVED, None)  # a run's written config.yaml: recomputed, never read
    unknown = sorted(set(cfg) - set(SECTIONS), key=str)
    if unknown:
        raise ConfigError(f"unknown config section(s) {unknown}; allowed: {', '.join(SECTIONS)}"
                          f"{did_you_mean(unknown[0], SECTIONS)}")
    for section in SECTIONS:
        if not isinstance(cfg.get(section) or {}, dict):
            raise ConfigError(f"config file {path}: section '{section}' must be a mapping of keys to values, "
                              f"got {cfg[section]!r}")
    out = {s: dict(cfg.get(s) or {}) for s in SECTIONS}
    out["run"] = {**RUN_DEFAULTS, **out["run"]}
    return out


def parse_value(text: str) -> Any:
    """A value given on the command line: YAML (``parse_yaml``: ``1`` -> int, ``[0.2, 1.0]`` -> list,
    ``null`` -> None, ``1e-3`` -> float), or the text itself when it is not valid YAML."""
    try:
        return parse_yaml(text)
    except yaml.YAMLError:
        return text


def parse_overrides(args: list[str], sections: list[str] | tuple[str, ...]) -> list[tuple[list[str], Any]]:
    """``--section.key[.sub] value`` / ``--section.key=value`` arguments as (key path, value) pairs,
    in order; a section not in ``sections`` (the ones a command takes) is one line. ``--model NAME``
    is ``model.name``."""
    pairs, i = [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument '{arg}'; overrides look like --data.batch_size 64")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f"override --{key} needs a value")
            value, i = args[i + 1], i + 1
        i += 1
        path = key.split(".")
        if path == ["model"]:
            path = ["model", "name"]
        if path[0] not in sections or len(path) < 2:
            hint = did_you_mean(path[0], sections) if path[0] not in sections else ""
            raise ConfigError(f"unknown override --{key}; keys look like --{{{','.join(sections)}}}.<key>{hint}")
        pairs.append((path, parse_value(value)))
    return pairs


def apply_overrides(cfg: dict[str, dict[str, Any]], args: list[str]) -> dict[str, dict[str, Any]]:
    """Apply ``--section.key[.sub] value`` overrides (``parse_overrides``) to the sections of ``cfg``
    (the ones a command takes). ``--model NAME`` sets the method (a registered name or an importable
    ``pkg.module.Class``)."""
    for path, value in parse_overrides(args, list(cfg)):
        node = cfg[path[0]]
        for part in path[1:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override --{'.'.join(path)}: '{part}' is not a mapping")
        node[path[-1]] = value
    return cfg


def resolve_class(name: str, registry: dict[str, type], base: type, what: str) -> type:
    """A registered short name, or a dotted import path to a subclass of ``base``."""
    if name in registry:
        return registry[name]
    allowed = f"known: {', '.join(sorted(registry))}, or an importable path like my_pkg.module.Class"
    if "." not in name:
        raise ConfigError(f"unknown {what} '{name}'; {allowed}{did_you_mean(name, registry)}")
    module_name, _, attr = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"cannot import {what} '{name}' ({err}); {allowed}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{what} '{name}' is not a subclass of {base.__name__}")
    return cls


def init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Constructor parameters of ``cls`` including those its ``**kwargs`` passes up the MRO."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        sig = inspect.signature(init)
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # unresolvable forward references: fall back to unchecked annotations
            hints = {}
        for p in list(sig.parameters.values())[1:]:
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            annotation = hints.get(p.name, inspect.Parameter.empty)
            params.setdefault(p.name, p.replace(annotation=annotation))
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return params


def _matches(value: Any, annotation: Any) -> bool:
    if annotation in (inspect.Parameter.empty, Any):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return not args or (len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args)))
    if origin is list:
        args = typing.get_args(annotation)
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value) if args else \
            isinstance(value, (list, tuple))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # annotations we cannot check (callables, protocols) are accepted


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is not None or isinstance(annotation, types.UnionType):
        return str(annotation).replace("typing.", "").replace("NoneType", "None")
    return getattr(annotation, "__name__", None) or str(annotation)


def check_kwargs(target: type | Callable, kwargs: dict[str, Any], section: str) -> None:
    """Every key must be a constructor parameter of ``target`` and match its annotation."""
    params = init_parameters(target) if isinstance(target, type) else dict(inspect.signature(target).parameters)
    check_types(kwargs, {k: p.annotation for k, p in params.items()}, section,
                f" for {getattr(target, '__name__', target)}")


def check_types(values: dict[str, Any], annotations: dict[str, Any], section: str, owner: str = "") -> None:
    """Every key of ``values`` must be in ``annotations`` and match its type; else one ConfigError
    naming the key, suggesting the closest allowed key and listing them all."""
    for key, value in values.items():
        if key not in annotations:
            raise ConfigError(f"unknown key {section}.{key}{owner}; allowed: {', '.join(sorted(annotations))}"
                              f"{did_you_mean(key, annotations)}")
        annotation = annotations[key]
        if not _matches(value, annotation):
            raise ConfigError(f"{section}.{key} must be {_type_name(annotation)}, got {value!r} "
                              f"({type(value).__name__})")


def check_run(run_cfg: dict[str, Any]) -> None:
    """The ``run`` section: known keys, right types, sensible values."""
    check_types(run_cfg, RUN_TYPES, "run")
    timeout = run_cfg.get("collective_timeout_minutes")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"run.collective_timeout_minutes must be positive, got {timeout!r}")
    for key in ("ckpt_every_n_steps", "ckpt_every_minutes"):
        if run_cfg.get(key) is not None and run_cfg[key] <= 0:
            raise ConfigError(f"run.{key} must be positive (or null for epoch ends only), got {run_cfg[key]!r}")
    if run_cfg.get("overwrite") and run_cfg.get("resume") is not None:
        raise ConfigError("run.overwrite and run.resume exclude each other: overwrite starts afresh, "
                          "resume continues the run")


class _ConfigDumper(yaml.SafeDumper):
    """Plain YAML only: tuples as lists, objects YAML cannot hold (e.g. callbacks passed in from
    Python) as their repr, so every file loads with ``yaml.safe_load``."""


_ConfigDumper.add_representer(tuple, lambda dumper, obj: dumper.represent_list(list(obj)))
_ConfigDumper.add_multi_representer(dict, lambda dumper, obj: dumper.represent_dict(dict(obj)))
_ConfigDumper.add_multi_representer(list, lambda dumper, obj: dumper.represent_list(list(obj)))
_ConfigDumper.add_multi_representer(str, lambda dumper, obj: dumper.represent_str(str(obj)))
_ConfigDumper.add_multi_representer(object, lambda dumper, obj: dumper.represent_str(repr(obj)))


def to_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_ConfigDumper, sort_keys=False)


def plain(data: Any) -> Any:
    """``data`` as plain YAML types (what ``to_yaml`` writes, read back)."""
    return yaml.safe_load(to_yaml(data))


def dump_config(cfg: dict[str, Any], path: Path) -> None:
    """Write ``cfg`` as YAML atomically (a temporary file renamed over ``path``)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(to_yaml(cfg))
    os.replace(tmp, path)
