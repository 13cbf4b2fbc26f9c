"""Backbone registry: names -> factories returning ``(module, feature_dim)``.

A backbone maps a float image batch (B, 3, H, W) to features (B, D). Built-in names are registered
by the sibling modules (``resnet18``, ``resnet50``, ``tiny_cnn``); any other name is looked up in
timm (``timm.create_model(name, pretrained=False, num_classes=0, **kwargs)``), also with an
explicit ``timm:`` prefix (``timm:resnet18`` is timm's ResNet-18 rather than torchvision's).
Nothing is ever pretrained: self-supervised pretraining starts from random weights.
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Callable, TypeVar

from torch import nn

BackboneFactory = Callable[..., tuple[nn.Module, int]]
FactoryT = TypeVar("FactoryT", bound=BackboneFactory)

TIMM_PREFIX = "timm:"
_REGISTRY: dict[str, BackboneFactory] = {}


def register_backbone(name: str, *, overwrite: bool = False) -> Callable[[FactoryT], FactoryT]:
    """Decorator registering ``factory(**kwargs) -> (module, feature_dim)`` under ``name``.

    Example::

        @register_backbone("my_net")
        def my_net(width: int = 64) -> tuple[nn.Module, int]:
            return MyNet(width), width

    Re-registering an existing name raises unless ``overwrite=True``.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"backbone name must be a non-empty string without ':', got {name!r}")

    def decorator(factory: FactoryT) -> FactoryT:
        if name in _REGISTRY and not overwrite and _REGISTRY[name] is not factory:
            raise ValueError(f"backbone '{name}' is already registered; pass overwrite=True to replace it")
        _REGISTRY[name] = factory
        return factory

    return decorator


def available_backbones() -> list[str]:
    """Registered backbone names (sorted). Any timm model name is accepted in addition."""
    return sorted(_REGISTRY)


def _unknown(name: str) -> ValueError:
    known = ", ".join(available_backbones())
    return ValueError(f"unknown backbone '{name}'; known: {known}, or any timm model name (see timm.list_models())")


def _check_options(name: str, factory: BackboneFactory, kwargs: dict[str, Any]) -> None:
    """One-line ValueError for options the factory's signature does not accept."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [p.name for p in params.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    bad = [k for k in kwargs if k not in allowed]
    if bad:
        raise ValueError(
            f"backbone '{name}' got unknown option {', '.join(repr(k) for k in bad)}; "
            f"allowed: {', '.join(allowed) or '(none)'}"
        )


def _build_timm(name: str, kwargs: dict[str, Any]) -> tuple[nn.Module, int]:
    import timm

    for key in ("pretrained", "num_classes"):
        if key in kwargs:
            raise ValueError(f"backbone '{name}' got option '{key}'; backbones are built with "
                             "pretrained=False and num_classes=0 (features only)")
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    except TypeError as err:
        match = re.search(r"unexpected keyword argument '([^']+)'", str(err))
        if match is None:
            raise
        raise ValueError(f"backbone '{name}' (timm) got unknown option '{match.group(1)}'") from None
    # with num_classes=0 timm returns the pre-logits features: head_hidden_size when the model has a
    # hidden head layer (e.g. MobileNetV3), otherwise num_features
    dim = getattr(model, "head_hidden_size", None) or model.num_features
    return model, int(dim)


def build_backbone(name: str, **kwargs: Any) -> tuple[nn.Module, int]:
    """Build backbone ``name`` with options ``kwargs``; returns ``(module, feature_dim)``.

    Registered names take precedence over timm names; ``timm:<name>`` always means timm.
    Unknown names and options raise a one-line ``ValueError``.
    """
    if not isinstance(name, str):
        raise ValueError(f"backbone name must be a string, got {type(name).__name__}")
    if name.startswith(TIMM_PREFIX) or name not in _REGISTRY:
        timm_name = name[len(TIMM_PREFIX):] if name.startswith(TIMM_PREFIX) else name
        import timm

        if not timm_name or not timm.is_model(timm_name):
            raise _unknown(name)
        return _build_timm(timm_name, kwargs)

    factory = _REGISTRY[name]
    _check_options(name, factory, kwargs)
    result = factory(**kwargs)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module)
            and isinstance(result[1], int) and not isinstance(result[1], bool)):
        raise ValueError(f"backbone factory '{name}' must return (nn.Module, int feature_dim), got {type(result).__name__}")
    return result
