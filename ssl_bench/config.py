"""YAML run configs: loading, ``--section.key value`` overrides, and type checks against signatures.

Written here rather than with LightningCLI/jsonargparse so that a config stays four flat sections
(model, data, trainer, run) and every mistake ends in one line naming the key and what is allowed.
"""
from __future__ import annotations

import importlib
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import ConfigError

SECTIONS = ("model", "data", "trainer", "run")
RUN_DEFAULTS: dict[str, Any] = {
    "dir": "runs",          # parent of the run directory
    "name": None,           # run directory name; default "<method>-<dataset>-seed<seed>"
    "seed": 0,
    "logger": "csv",        # "csv" or "wandb" (CSV is always written)
    "wandb_project": "ssl-bench",
    "resume": None,         # a checkpoint path, or "auto" for <run dir>/checkpoints/last.ckpt
}


def load_config(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Read a YAML config into the four sections (missing sections are empty)."""
    cfg: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            cfg = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"config file {path} must be a mapping with sections {', '.join(SECTIONS)}")
    unknown = set(cfg) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}; allowed: {', '.join(SECTIONS)}")
    out = {s: dict(cfg.get(s) or {}) for s in SECTIONS}
    out["run"] = {**RUN_DEFAULTS, **out["run"]}
    return out


def apply_overrides(cfg: dict[str, dict[str, Any]], args: list[str]) -> dict[str, dict[str, Any]]:
    """Apply ``--section.key[.sub] value`` / ``--section.key=value`` overrides; values are parsed
    as YAML (``1`` -> int, ``[0.2, 1.0]`` -> list, ``null`` -> None). ``--model NAME`` sets the
    method (a registered name or an importable ``pkg.module.Class``)."""
    i = 0
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
        if path[0] not in SECTIONS or len(path) < 2:
            raise ConfigError(f"unknown override --{key}; keys look like --{{{','.join(SECTIONS)}}}.<key>")
        node = cfg[path[0]]
        for part in path[1:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override --{key}: '{part}' is not a mapping")
        try:
            node[path[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            node[path[-1]] = value
    return cfg


def resolve_class(name: str, registry: dict[str, type], base: type, what: str) -> type:
    """A registered short name, or a dotted import path to a subclass of ``base``."""
    if name in registry:
        return registry[name]
    allowed = f"known: {', '.join(sorted(registry))}, or an importable path like my_pkg.module.Class"
    if "." not in name:
        raise ConfigError(f"unknown {what} '{name}'; {allowed}")
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
    if origin in (tuple, list):
        return isinstance(value, (list, tuple))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # annotations we cannot check (callables, protocols) are accepted


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def check_kwargs(target: type | Callable, kwargs: dict[str, Any], section: str) -> None:
    """Every key must be a constructor parameter of ``target`` and match its annotation."""
    params = init_parameters(target) if isinstance(target, type) else dict(inspect.signature(target).parameters)
    for key, value in kwargs.items():
        if key not in params:
            raise ConfigError(f"unknown key {section}.{key} for {getattr(target, '__name__', target)}; "
                              f"allowed: {', '.join(sorted(params))}")
        annotation = params[key].annotation
        if not _matches(value, annotation):
            raise ConfigError(f"{section}.{key} must be {_type_name(annotation)}, got {value!r} "
                              f"({type(value).__name__})")


class _ConfigDumper(yaml.SafeDumper):
    """Writes objects YAML cannot hold (e.g. callbacks passed in from Python) as their repr."""


_ConfigDumper.add_multi_representer(object, lambda dumper, obj: dumper.represent_str(repr(obj)))


def dump_config(cfg: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.dump(cfg, Dumper=_ConfigDumper, sort_keys=False))
