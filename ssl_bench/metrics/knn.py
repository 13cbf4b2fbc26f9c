"""Weighted k-NN classifier for evaluating frozen SSL features.

Wu, Xiong, Yu, Lin, "Unsupervised feature learning via non-parametric instance discrimination"
(CVPR 2018, Sec. 3.4): cosine similarity to the training features, the k most similar neighbours
vote for their class with weight exp(sim / T), T = 0.07 as there. Defaults k = 20, T = 0.07 as in
the k-NN evaluation of DINO (Caron et al. 2021).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _as_float(x: Tensor) -> Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


@torch.no_grad()
def weighted_knn_predict(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> Tensor:
    """Class scores (N_test, num_classes): sum over the top-k cosine neighbours of exp(sim / T).

    Test rows are processed ``chunk_size`` at a time, so the extra memory is about
    ``chunk_size x N_train`` similarities (the train features are not copied: their norms are
    divided out of the similarities instead; float16/bfloat16 features are upcast to float32, which
    does copy them). ``k`` is clamped to N_train. Test rows are moved, one chunk at a time, to the
    device of the train features.
    """
    if train_features.dim() != 2 or test_features.dim() != 2:
        raise ValueError("train_features and test_features must be (N, D)")
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"feature sizes differ: train {train_features.shape[1]} vs test {test_features.shape[1]}"
        )
    n_train = train_features.shape[0]
    if train_labels.shape != (n_train,):
        raise ValueError(f"train_labels must be ({n_train},), got {tuple(train_labels.shape)}")
    if n_train == 0 or k < 1 or chunk_size < 1 or temperature <= 0:
        raise ValueError("need N_train >= 1, k >= 1, chunk_size >= 1 and temperature > 0")
    train = _as_float(train_features)
    inv_train_norm = 1.0 / train.norm(dim=1).clamp_min(1e-12)
    labels = train_labels.long().to(train.device)
    k = min(k, n_train)
    scores = []
    for start in range(0, test_features.shape[0], chunk_size):
        chunk = test_features[start : start + chunk_size].to(device=train.device, dtype=train.dtype)
        query = F.normalize(chunk, dim=1)
        sim = (query @ train.T).mul_(inv_train_norm)  # (chunk, N_train): the only large buffer
        top_sim, top_idx = sim.topk(k, dim=1)
        del sim
        votes = torch.zeros(query.shape[0], num_classes, dtype=top_sim.dtype, device=top_sim.device)
        votes.scatter_add_(1, labels[top_idx], (top_sim / temperature).exp())
        scores.append(votes)
    if not scores:
        return torch.zeros(0, num_classes, dtype=train.dtype, device=train.device)
    return torch.cat(scores)


def knn_accuracy(scores: Tensor, labels: Tensor, top_k: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracies in percent of class ``scores`` (N, C) against ``labels`` (N,).

    A k larger than the number of classes is clamped to it (100%). Uses torchmetrics.
    """
    # imported here: torchmetrics takes seconds to import and the k-NN scorer does not need it
    from torchmetrics.functional.classification import multiclass_accuracy

    num_classes = scores.shape[1]
    labels = labels.long().to(scores.device)
    return {
        k: 100.0
        * float(
            multiclass_accuracy(
                scores, labels, num_classes=num_classes, top_k=min(k, num_classes), average="micro"
            )
        )
        for k in top_k
    }
