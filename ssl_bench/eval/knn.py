"""The ``knn`` protocol: weighted k-NN on the frozen features (Wu et al., CVPR 2018, Eq. 3-4 as
used by DINO's evaluation): the k nearest labelled train features by cosine similarity vote for
their class with weight exp(similarity / T)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..errors import ConfigError
from ..metrics import knn_accuracy, weighted_knn_predict
from .features import FeatureSet
from .registry import EvalProtocol, accuracy_metrics, positive, register_protocol, setting


def knn_scores(fs: FeatureSet, num_classes: int, k: int, temperature: float,
               train_idx: Tensor | None = None) -> dict[int, float]:
    bank_x, bank_y = (fs.train_x, fs.train_y) if train_idx is None else (fs.train_x[train_idx], fs.train_y[train_idx])
    scores = weighted_knn_predict(bank_x, bank_y, fs.val_x, num_classes, k=k, temperature=temperature)
    return knn_accuracy(scores, fs.val_y, top_k=(1, 5))


def check_k(k: int, bank_size: int) -> None:
    """One line for a k the bank cannot serve (a result named k100000 would be the k=bank result)."""
    if not 1 <= k <= bank_size:
        raise ConfigError(f"--k {k}: must be between 1 and the k-NN bank's {bank_size} labelled images")


@register_protocol
class KNN(EvalProtocol):
    """Weighted k-NN on the frozen features: the k nearest labelled train features by cosine
    similarity vote for their class with weight exp(similarity / temperature)."""

    name = "knn"
    help = "k-NN on the frozen features (cosine similarity, votes weighted by exp(sim / T))"

    @dataclass
    class Settings:
        k: int = setting(20, "k-NN neighbours", lambda v: v >= 1,
                         "must be between 1 and the number of labelled train images (the k-NN bank)")
        temperature: float = setting(0.07, "k-NN vote temperature", positive, "must be positive")

    grid = ("k", "temperature")

    def run(self, target: Any, settings: Any, labelled: Tensor | None) -> dict[str, float]:
        fs, _ = target.features()
        return accuracy_metrics(knn_scores(fs, target.num_classes, settings.k, settings.temperature, labelled))

    def check(self, target: Any, settings: Any, labelled: Tensor | None) -> None:
        fs, _ = target.features()
        check_k(settings.k, len(fs.train_y) if labelled is None else len(labelled))

    def name_part(self, settings: Any) -> str:
        return f"k{settings.k}-T{settings.temperature:g}"

    def grid_tag(self, settings: Any) -> str:
        return f"k{settings.k}_T{settings.temperature:g}"

    def record(self, settings: Any) -> dict[str, Any]:
        return {"k": settings.k, "temperature": settings.temperature, "epochs": None}


