"""Evaluation protocols behind one interface (``registry.EvalProtocol``) and one registry
(``registry.PROTOCOLS``), as ``methods.METHODS`` holds the methods.

    registry.py   the interface, ``@register_protocol``, settings checked from the command line or a sweep
    knn.py linear.py finetune.py vit_finetune.py scan.py   the built-in protocols, one module each
    target.py     what is evaluated: a checkpoint or a random-init model, its data, its cached features
    features.py   the frozen features of the evaluation splits, extracted once and cached
    run.py        ``evaluate`` (one protocol, one target -> ``<run dir>/evals/<name>.json``) and
                  ``evaluate_grid`` (a sweep's ``eval:`` section on one target)

Importing the package registers the built-in protocols.
"""
# registers the built-in protocols, in the order --help and the report list them
from . import knn, linear, finetune, vit_finetune, scan  # noqa: F401,I001
from .registry import (PROTOCOLS, EvalProtocol, accuracy_metrics, make_settings, register_protocol,  # noqa: F401
                       resolve_protocol, setting, setting_specs)
from .run import evaluate, evaluate_grid, headline_column, offline_key  # noqa: F401
from .target import EvalTarget  # noqa: F401

__all__ = ["PROTOCOLS", "EvalProtocol", "EvalTarget", "accuracy_metrics", "evaluate", "evaluate_grid", "finetune",
           "headline_column", "knn", "linear", "make_settings", "offline_key", "register_protocol", "resolve_protocol",
           "scan", "setting", "setting_specs", "vit_finetune"]
