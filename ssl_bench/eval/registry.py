"""Evaluation protocols behind one interface, and their registry ``PROTOCOLS`` (as ``methods.METHODS``).

A protocol is an ``EvalProtocol`` subclass that declares its ``name``, a one-line ``help``, its
typed ``Settings`` (a dataclass; each field a ``setting(default, help, check, must)``), which of
them a sweep may give as a list (``grid``), its headline ``metric``, and ``run(target, settings,
labelled) -> {"top1": ..., "top5": ...}`` (any metrics dict holding ``metric``). ``@register_protocol``
makes it known by name to ``ssl-bench eval --protocol NAME`` (its settings become ``--<setting>``
flags), to a sweep spec's ``eval:`` section (``eval: {NAME: {setting: value or [values]}}``) and
to the report's columns; an unregistered subclass is used by its import path
(``my_pkg.module.MyProtocol``) in both places, as ``model.name`` takes one. Sweep cells run in
their own processes and import a protocol of another package by its import path
(``protocol_address``), so its module must be importable there (installed, or on ``PYTHONPATH``).

Built in (one module each in this package): ``knn`` and ``linear`` on the frozen features,
``finetune`` on the images, ``scan`` (clustering; also its own command, ``ssl-bench scan``).
``eval.run.evaluate`` runs one protocol on one checkpoint and ``eval.run.evaluate_grid`` a sweep's
``eval:`` section on one checkpoint.

    @register_protocol
    class NearestMean(EvalProtocol):
        name, help = "ncm", "nearest class mean of the frozen features"

        @dataclass
        class Settings:
            scale: float = setting(10.0, "logit scale", lambda v: v > 0, "must be positive")

        grid = ("scale",)

        def run(self, target, settings, labelled):
            fs, _ = target.features()
            ...
            return accuracy_metrics(knn_accuracy(scores, fs.val_y))
"""
from __future__ import annotations

import dataclasses
import itertools
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from torch import Tensor

from ..config import resolve_class
from ..errors import ConfigError, did_you_mean

#: setting types a protocol may declare, as a one-line message names them
SETTING_TYPES: dict[type, str] = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
#: names the ``ssl-bench eval`` command uses for itself: not available as setting names
RESERVED_SETTINGS = {"ckpt", "config", "random_init", "label_fraction", "label_indices", "protocol", "out", "help"}


def setting(default: Any, help: str, check: Callable[[Any], bool] | None = None, must: str = "") -> Any:
    """A field of a protocol's ``Settings`` dataclass: its default, the line ``ssl-bench eval --help``
    shows, and an optional check of a value (``must`` says what a value must be, e.g. "must be positive")."""
    return field(default=default, metadata={"help": help, "check": check, "must": must})


@dataclass(frozen=True)
class SettingSpec:
    """One declared setting of a protocol (read from its ``Settings`` dataclass)."""

    name: str
    type: type
    default: Any
    help: str
    check: Callable[[Any], bool] | None
    must: str


@dataclass
class NoSettings:
    """A protocol without settings."""


class EvalProtocol:
    """One evaluation protocol. Subclasses set the class attributes and implement ``run``.

    ``run(target, settings, labelled)`` gets the evaluation target (``evaluate.EvalTarget``:
    ``features()`` -> (``FeatureSet`` of the train and val splits, cached on disk; cached), ``dm`` the
    data module (``num_classes``, ``eval_splits()``, ``image_size``), ``model()`` the method with
    the backbone, ``seed``, ``num_classes``), an instance of ``Settings``, and the indices of the
    labelled train images (``None``: all), and returns metrics in percent, at least ``metric``.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    Settings: ClassVar[type] = NoSettings
    grid: ClassVar[tuple[str, ...]] = ()  # settings a sweep may give as a list (one result per combination)
    metric: ClassVar[str] = "top1"  # the headline metric (a sweep's column)
    higher_is_better: ClassVar[bool] = True  # which end of a grid is its best
    needs_features: ClassVar[bool] = True  # False: works on the images (the frozen features are not extracted)

    def run(self, target: Any, settings: Any, labelled: Tensor | None) -> dict[str, float]:
        raise NotImplementedError

    def check(self, target: Any, settings: Any, labelled: Tensor | None) -> None:
        """Called by ``ssl-bench eval`` before ``run``: refuse (one ``ConfigError`` line) settings
        that this data cannot serve. A sweep's grid does not call it (k-NN clamps k to the bank)."""

    def name_part(self, settings: Any) -> str:
        """The settings in a result file's name: ``<name>-<this>-labels..-<hash>.json``."""
        return "-".join(f"{s.name}{format_value(getattr(settings, s.name))}" for s in setting_specs(type(self)))

    def grid_tag(self, settings: Any) -> str:
        """One combination of the grid in a sweep's metric names (``offline_<name>_<metric>@<this>``)."""
        return "_".join(f"{g}{format_value(getattr(settings, g))}" for g in self.grid)

    def record(self, settings: Any) -> dict[str, Any]:
        """The settings as recorded in a result file (and hashed into its name)."""
        return dataclasses.asdict(settings)


PROTOCOLS: dict[str, type[EvalProtocol]] = {}


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return re.sub(r"[^\w.+]", "_", str(value))


def address_of(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def setting_specs(cls: type[EvalProtocol]) -> list[SettingSpec]:
    settings = cls.Settings
    if not dataclasses.is_dataclass(settings):
        raise TypeError(f"protocol {address_of(cls)}: Settings must be a dataclass")
    try:
        hints = typing.get_type_hints(settings)
    except Exception as err:
        raise TypeError(f"protocol {address_of(cls)}: cannot read the types of its Settings ({err})") from None
    out = []
    for f in dataclasses.fields(settings):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        out.append(SettingSpec(f.name, hints.get(f.name), default, f.metadata.get("help", ""),  # type: ignore[arg-type]
                               f.metadata.get("check"), f.metadata.get("must", "")))
    return out


def check_protocol_class(cls: Any) -> None:
    """What the registry and the command line rely on: a name, settings of the supported types with
    defaults, grid settings among them, and no setting named like an ``ssl-bench eval`` option."""
    if not (isinstance(cls, type) and issubclass(cls, EvalProtocol)):
        raise TypeError(f"{cls!r} is not an EvalProtocol subclass")
    where = f"protocol {address_of(cls)}"
    if not (isinstance(cls.name, str) and re.fullmatch(r"[A-Za-z_][\w]*", cls.name)):
        raise TypeError(f"{where}: name must be an identifier, got {cls.name!r}")
    specs = setting_specs(cls)
    for s in specs:
        if s.type not in SETTING_TYPES:
            raise TypeError(f"{where}: setting {s.name} has type {s.type}; allowed: int, float, bool, str")
        if s.default is dataclasses.MISSING:
            raise TypeError(f"{where}: setting {s.name} needs a default")
        if s.name in RESERVED_SETTINGS:
            raise TypeError(f"{where}: setting name {s.name} is an ssl-bench eval option; rename it")
    missing = set(cls.grid) - {s.name for s in specs}
    if missing:
        raise TypeError(f"{where}: grid names {sorted(missing)}, which are not settings")


def register_protocol(cls: type[EvalProtocol]) -> type[EvalProtocol]:
    """Class decorator: make ``cls`` known by its ``name``. A setting name shared with another
    protocol must have the same type there (it is one ``--<setting>`` flag of ``ssl-bench eval``)."""
    check_protocol_class(cls)
    held = PROTOCOLS.get(cls.name)
    if held is not None and address_of(held) != address_of(cls):
        raise ValueError(f"protocol name '{cls.name}' is taken by {address_of(held)}; choose another name")
    types = {s.name: s.type for s in setting_specs(cls)}
    for other in PROTOCOLS.values():
        if other.name == cls.name:
            continue
        for s in setting_specs(other):
            if s.name in types and types[s.name] is not s.type:
                raise TypeError(f"protocol {cls.name}: setting {s.name} is {types[s.name].__name__} here and "
                                f"{s.type.__name__} in protocol {other.name} (one --{s.name} flag); rename one")
    PROTOCOLS[cls.name] = cls
    return cls


def resolve_protocol(name: str) -> type[EvalProtocol]:
    """A registered name, or the import path of an ``EvalProtocol`` subclass (checked as
    registration checks it); else one line listing the registered protocols."""
    cls = resolve_class(str(name), PROTOCOLS, EvalProtocol, "protocol")
    if name not in PROTOCOLS:
        try:
            check_protocol_class(cls)
        except TypeError as err:
            raise ConfigError(str(err)) from None
    return cls  # type: ignore[return-value]


def is_builtin(cls: type) -> bool:
    return cls.__module__ == __name__ or cls.__module__.startswith("ssl_bench.")


def protocol_address(cls: type[EvalProtocol]) -> str:
    """How another process (a sweep cell) finds ``cls``: its registered name when it is one of the
    package's, else its import path (whose import registers it, if its module does)."""
    if is_builtin(cls) and PROTOCOLS.get(cls.name) is cls:
        return cls.name
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__ or "." in cls.__qualname__:
        raise ConfigError(f"protocol {cls.name} ({address_of(cls)}) cannot be imported by another process; "
                          "define it at the top level of an importable module")
    return address_of(cls)


# ----------------------------------------------------------------------------- settings from values
def _label(where: str | None, key: str, value: Any = dataclasses.MISSING) -> str:
    """``--k 0`` on the command line (``where`` None), ``<where>.k: 0`` in a sweep spec."""
    if where is None:
        return f"--{key}" if value is dataclasses.MISSING else f"--{key} {value}:"
    return f"{where}.{key}" if value is dataclasses.MISSING else f"{where}.{key}: {value!r}"


def check_value(cls: type[EvalProtocol], spec: SettingSpec, value: Any, where: str | None) -> Any:
    """``value`` as the setting's type (an integer for a float), or one line naming the key."""
    given = value  # as written, in a message
    ok = isinstance(value, spec.type) and not (isinstance(value, bool) and spec.type is not bool)
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"{_label(where, spec.name, given)} must be {SETTING_TYPES[spec.type]} "
                          f"(a setting of protocol {cls.name})")
    if spec.check is not None and not spec.check(value):
        raise ConfigError(f"{_label(where, spec.name, given)} {spec.must or 'is not allowed'}")
    return value


def _unknown(cls: type[EvalProtocol], key: str, where: str | None) -> ConfigError:
    names = [s.name for s in setting_specs(cls)]
    listed = ", ".join(f"--{n}" if where is None else n for n in names) or "none"
    return ConfigError(f"{_label(where, key)}: not a setting of protocol {cls.name} (its settings: {listed})"
                       f"{did_you_mean(key, names)}")


def make_settings(cls: type[EvalProtocol], values: dict[str, Any] | None = None, where: str | None = None) -> Any:
    """``cls.Settings`` from the given values (the others at their defaults), each checked: an
    unknown name, a wrong type or a value its check refuses ends in one line naming the key
    (``--k`` on the command line; ``where.k`` otherwise, e.g. ``sweep spec: eval.knn``)."""
    specs = {s.name: s for s in setting_specs(cls)}
    out = {}
    for key, value in (values or {}).items():
        if key not in specs:
            raise _unknown(cls, str(key), where)
        out[key] = check_value(cls, specs[key], value, where)
    return cls.Settings(**out)


def grid_settings(cls: type[EvalProtocol], values: dict[str, Any] | None,
                  where: str) -> tuple[dict[str, Any], list[Any]]:
    """A sweep's settings of one protocol: (the values checked, grid settings as lists; every
    combination of the grid as a ``Settings``, the grid's order, the first setting outermost)."""
    specs = {s.name: s for s in setting_specs(cls)}
    checked: dict[str, Any] = {}
    for key, value in (values or {}).items():
        key = str(key)
        if key not in specs:
            raise _unknown(cls, key, where)
        if isinstance(value, list):
            if key not in cls.grid:
                lists = f"only {', '.join(cls.grid)} may be lists" if cls.grid else "it takes no list"
                raise ConfigError(f"{where}.{key}: takes one value, got the list {value!r} ({cls.name}: {lists})")
            if not value:
                raise ConfigError(f"{where}.{key}: an empty list; give at least one value")
            items = [check_value(cls, specs[key], v, where) for v in value]
            twice = [v for i, v in enumerate(items) if v in items[:i]]
            if twice:
                raise ConfigError(f"{where}.{key}: {twice[0]!r} is listed twice")
            checked[key] = items
        else:
            value = check_value(cls, specs[key], value, where)
            checked[key] = [value] if key in cls.grid else value
    fixed = {k: v for k, v in checked.items() if k not in cls.grid}
    axes = [checked.get(g, [specs[g].default]) for g in cls.grid]
    points = [cls.Settings(**fixed, **dict(zip(cls.grid, combo))) for combo in itertools.product(*axes)]
    return checked, points


def accuracy_metrics(acc: dict[int, float]) -> dict[str, float]:
    """``{1: 93.1, 5: 99.2}`` (``metrics.knn_accuracy``) as a protocol's metrics ``{"top1": ..., "top5": ...}``."""
    return {f"top{k}": v for k, v in acc.items()}


def positive(value: Any) -> bool:
    return value > 0


class EpochsRecord(EvalProtocol):
    """The built-in protocols record k, T and epochs in every result (``None`` where they do not
    apply), so their result files keep the names and contents they had before the registry."""

    def record(self, settings: Any) -> dict[str, Any]:
        return {"k": None, "temperature": None, "epochs": settings.epochs}

    def name_part(self, settings: Any) -> str:
        return f"ep{settings.epochs}"


