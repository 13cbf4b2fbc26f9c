"""Evaluation callbacks that BaseMethod attaches to every method (each usable alone too)."""
from .collapse_monitor import CollapseMonitor, collapse_metrics
from .knn import KNNEvaluator
from .linear_probe import OnlineLinearProbe

__all__ = ["CollapseMonitor", "collapse_metrics", "KNNEvaluator", "OnlineLinearProbe"]
