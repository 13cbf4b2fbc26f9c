"""Metrics: collapse monitors, ER-bound entropy/reconstruction estimators, weighted k-NN."""
from ssl_bench.metrics.collapse import alignment, rankme, uniformity, z_std
from ssl_bench.metrics.entropy import (
    DEFAULT_KAPPA,
    REDUCTIONS,
    log_sphere_area,
    log_vmf_normalizer,
    softmax_entropy,
    softmax_reconstruction,
    vmf_entropy,
    vmf_kde_entropy,
    vmf_kde_log_density,
    vmf_reconstruction,
)
from ssl_bench.metrics.knn import knn_accuracy, weighted_knn_predict

__all__ = [
    "DEFAULT_KAPPA",
    "REDUCTIONS",
    "alignment",
    "knn_accuracy",
    "log_sphere_area",
    "log_vmf_normalizer",
    "rankme",
    "softmax_entropy",
    "softmax_reconstruction",
    "uniformity",
    "vmf_entropy",
    "vmf_kde_entropy",
    "vmf_kde_log_density",
    "vmf_reconstruction",
    "weighted_knn_predict",
    "z_std",
]
