"""The sweep's random-init rows: one per distinct untrained network among a dataset's methods.

A sweep that mixes networks (the tiny CNN and two tiny ViTs in ``benchmarks/cpu-tiny.yaml``) needs a
baseline for each: a method is compared with its own network untrained. The network of the sweep's
first method gets the row ``random_init`` (the name a one-network sweep has always had); each other
network gets ``random_init_for_<m>``, named after the first method that uses it.
"""
from __future__ import annotations

BASELINE = "random_init"
_OTHER = BASELINE + "_for_"


def baseline_method(first_user: str | None = None) -> str:
    """The row's method name: ``random_init``, or ``random_init_for_<first_user>``."""
    return BASELINE if first_user is None else _OTHER + first_user


def is_baseline(method: str) -> bool:
    """Whether a row (method name) is a random-init row."""
    return method == BASELINE or method.startswith(_OTHER)


def is_baseline_cell(cell: str) -> bool:
    """Whether a cell name (``<method>-<dataset>-s<seed>``) is a random-init cell."""
    return cell.startswith((BASELINE + "-", _OTHER))


def baseline_label(method: str) -> str:
    """The report's name for a random-init row."""
    if method == BASELINE:
        return "random init (baseline)"
    return f"random init ({method[len(_OTHER):]}'s network)"
