"""The ``linear`` protocol: a linear classifier trained on the frozen, standardised features of the
labelled train images (``fitting.train_linear``), top-1/top-5 on the val split."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..fitting import train_linear
from ..metrics import knn_accuracy
from .features import FeatureSet
from .registry import EpochsRecord, accuracy_metrics, positive, register_protocol, setting


def linear_scores(fs: FeatureSet, num_classes: int, epochs: int, seed: int = 0,
                  train_idx: Tensor | None = None) -> dict[int, float]:
    x, y = (fs.train_x, fs.train_y) if train_idx is None else (fs.train_x[train_idx], fs.train_y[train_idx])
    with torch.enable_grad():
        head = train_linear(x, y, num_classes, epochs=epochs, seed=seed)
    with torch.no_grad():
        scores = head((fs.val_x - head.feature_mean) / head.feature_std)
    return knn_accuracy(scores, fs.val_y, top_k=(1, 5))


@register_protocol
class Linear(EpochsRecord):
    """A linear classifier trained on the frozen (standardised) features of the labelled train images."""

    name = "linear"
    help = "a linear classifier trained on the frozen features"

    @dataclass
    class Settings:
        epochs: int = setting(100, "training epochs", positive, "must be a positive integer")

    def run(self, target: Any, settings: Any, labelled: Tensor | None) -> dict[str, float]:
        fs, _ = target.features()
        return accuracy_metrics(linear_scores(fs, target.num_classes, settings.epochs, target.seed, labelled))


