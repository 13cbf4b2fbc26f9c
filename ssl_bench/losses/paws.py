"""PAWS losses (Assran et al., ICCV 2021, "Semi-Supervised Learning of Visual Features by
Non-Parametrically Predicting View Assignments with Support Samples").

Sec. 3: for a view representation z_i and labelled support representations z_S with (smoothed)
one-hot labels y_S, the soft nearest-neighbour classifier is (Eq. 1)

    pi_d(z_i, z_S) = sum_s softmax_s(<z_i, z_s> / tau) y_s          (cosine similarities, tau = 0.1);

targets are the other view's prediction, sharpened (Eq. 2) rho(p)_k = p_k^{1/T} / sum_j p_j^{1/T}
with T = 0.25 and not back-propagated; the loss (Eq. 3) is the cross-entropy H(rho(p_j), p_i)
averaged over views, minus the entropy of the mean sharpened prediction over the (global) batch
(mean-entropy maximisation, "me-max", Sec. 3), which keeps every class in use.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sharpen(p: Tensor, temperature: float = 0.25) -> Tensor:
    """Eq. 2: p^(1/T), renormalised over the last dimension."""
    if temperature <= 0:
        raise ValueError(f"sharpen: temperature must be > 0, got {temperature}")
    sharp = p.float() ** (1.0 / temperature)
    return sharp / sharp.sum(dim=-1, keepdim=True)


def smooth_one_hot(labels: Tensor, num_classes: int, smoothing: float = 0.1) -> Tensor:
    """One-hot labels with label smoothing (PAWS's support labels: 1 - s + s/C on the true class)."""
    off = smoothing / num_classes
    return F.one_hot(labels, num_classes).float() * (1.0 - smoothing) + off


def snn_predict(z: Tensor, support_z: Tensor, support_labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Eq. 1: soft nearest-neighbour class probabilities (N, C) of ``z`` (N, d) against the support
    ``support_z`` (S, d) with label distributions ``support_labels`` (S, C); l2-normalised here."""
    if temperature <= 0:
        raise ValueError(f"snn_predict: temperature must be > 0, got {temperature}")
    if support_z.shape[0] != support_labels.shape[0]:
        raise ValueError(f"snn_predict: {support_z.shape[0]} support embeddings but "
                         f"{support_labels.shape[0]} support labels")
    sim = F.normalize(z.float(), dim=1) @ F.normalize(support_z.float(), dim=1).T
    return (sim / temperature).softmax(dim=1) @ support_labels.float()


def me_max(mean_probs: Tensor) -> Tensor:
    """Mean-entropy maximisation term: -H(mean prediction) = sum_k p_k log p_k (to be minimised)."""
    p = mean_probs.float().clamp_min(1e-12)
    return (p * p.log()).sum()


def paws_loss(probs: list[Tensor], sharpen_temperature: float = 0.25,
              mean_sharpened_probs: Tensor | None = None) -> Tensor:
    """Eq. 3 with multi-crop: ``probs`` are the soft-NN predictions (B, C) of the views, the two
    global views first, then any small crops. Targets (sharpened, detached; entries below 1e-4
    zeroed as in the official code): global view 1 learns the sharpened prediction of view 2 and
    vice versa; every small crop learns the mean of the two global targets. The loss is the mean
    over views of the cross-entropy H(target, p), plus ``me_max(mean_sharpened_probs)`` when given
    (the caller averages the sharpened predictions over the global batch: a cross-rank statistic)."""
    if len(probs) < 2:
        raise ValueError(f"paws_loss: needs the two global views, got {len(probs)} view(s)")
    t1, t2 = (sharpen(p.detach(), sharpen_temperature) for p in probs[:2])
    targets = [t2, t1] + [(t1 + t2) / 2] * (len(probs) - 2)
    total = probs[0].new_zeros((), dtype=torch.float32)
    for p, t in zip(probs, targets):
        t = torch.where(t < 1e-4, torch.zeros_like(t), t)
        total = total - (t * p.float().clamp_min(1e-12).log()).sum(dim=1).mean()
    loss = total / len(probs)
    if mean_sharpened_probs is not None:
        loss = loss + me_max(mean_sharpened_probs)
    return loss
