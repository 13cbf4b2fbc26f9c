"""Clustering metrics: accuracy under the best one-to-one cluster-to-class matching (Hungarian
algorithm, scipy's ``linear_sum_assignment``), NMI and ARI (scikit-learn)."""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def cluster_to_class_map(pred, target) -> dict[int, int]:
    """The one-to-one cluster -> class matching that maximises the number of agreements
    (clusters left unmatched when there are more clusters than classes map to -1)."""
    p, t = _numpy(pred).astype(np.int64), _numpy(target).astype(np.int64)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"predictions and targets must be 1-d of equal length, got {p.shape} and {t.shape}")
    size = int(max(p.max(initial=0), t.max(initial=0))) + 1
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (p, t), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols)}


def cluster_accuracy(pred, target) -> float:
    """Fraction of samples whose cluster maps to their class under the best matching."""
    mapping = cluster_to_class_map(pred, target)
    p, t = _numpy(pred).astype(np.int64), _numpy(target).astype(np.int64)
    mapped = np.array([mapping.get(int(c), -1) for c in p])
    return float((mapped == t).mean()) if len(t) else 0.0


def clustering_metrics(pred, target) -> dict[str, float]:
    """``{"acc", "nmi", "ari"}`` in percent."""
    p, t = _numpy(pred), _numpy(target)
    return {"acc": 100.0 * cluster_accuracy(p, t),
            "nmi": 100.0 * float(normalized_mutual_info_score(t, p)),
            "ari": 100.0 * float(adjusted_rand_score(t, p))}
