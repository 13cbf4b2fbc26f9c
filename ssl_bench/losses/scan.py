"""SCAN losses (Van Gansbeke et al., ECCV 2020, "SCAN: Learning to Classify Images without Labels").

Eq. 2 (clustering step): for an anchor x with a mined neighbour k and soft cluster assignments
Phi(x), Phi(k) (softmax over C clusters),

    L = -1/|D| sum_x sum_{k in N_x} log <Phi(x), Phi(k)>  +  lambda * sum_c Phi'_c log Phi'_c,
    Phi'_c = 1/|D| sum_x Phi_c(x),

i.e. consistency with the neighbours minus lambda times the entropy of the mean assignment
(lambda = 5.0 in the paper / official CIFAR configs). Sec. 2.3 (self-labelling): cross-entropy of
the strongly augmented view against the argmax of the weakly augmented one, on samples whose
confidence exceeds a threshold (0.99), with class weights inversely proportional to the frequency
of each pseudo-label among the confident samples.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _probs(logits: Tensor) -> Tensor:
    return logits.float().softmax(dim=1)


def scan_consistency(anchor_logits: Tensor, neighbor_logits: Tensor) -> Tensor:
    """-mean_i log <Phi(x_i), Phi(k_i)>: one sampled neighbour per anchor (the paper's sum over
    N_x, sampled uniformly per step as in the official implementation)."""
    if anchor_logits.shape != neighbor_logits.shape or anchor_logits.ndim != 2:
        raise ValueError(f"scan_consistency: anchor and neighbour logits must both be (B, C), got "
                         f"{tuple(anchor_logits.shape)} and {tuple(neighbor_logits.shape)}")
    dot = (_probs(anchor_logits) * _probs(neighbor_logits)).sum(dim=1)
    return -torch.log(dot.clamp_min(1e-8)).mean()


def mean_assignment_entropy(probs: Tensor) -> Tensor:
    """Entropy -sum_c p'_c log p'_c of the batch-mean assignment p' = mean_i probs_i (nats);
    maximal (log C) when the clusters are used uniformly."""
    mean = probs.float().mean(dim=0).clamp_min(1e-8)
    return -(mean * mean.log()).sum()


def scan_loss(anchor_logits: Tensor, neighbor_logits: Tensor, entropy_weight: float = 5.0) -> Tensor:
    """SCAN's Eq. 2: consistency - entropy_weight * H(mean anchor assignment)."""
    entropy = mean_assignment_entropy(_probs(anchor_logits))
    return scan_consistency(anchor_logits, neighbor_logits) - entropy_weight * entropy


def self_label_loss(weak_logits: Tensor, strong_logits: Tensor, threshold: float = 0.99,
                    class_balance: bool = True) -> Tensor:
    """Self-labelling (Sec. 2.3): pseudo-labels = argmax of the (detached) weak-view prediction
    where its confidence > ``threshold``; weighted cross-entropy of the strong view on those
    samples (weights 1/frequency of each pseudo-label among them, normalised as in
    ``F.cross_entropy``'s weighted mean). Zero (with a gradient path) if no sample is confident."""
    if weak_logits.shape != strong_logits.shape:
        raise ValueError(f"self_label_loss: logits shapes differ: {tuple(weak_logits.shape)} vs "
                         f"{tuple(strong_logits.shape)}")
    conf, target = _probs(weak_logits.detach()).max(dim=1)
    mask = conf > threshold
    if not bool(mask.any()):
        return strong_logits.sum() * 0.0
    target = target[mask]
    weight = None
    if class_balance:
        counts = torch.bincount(target, minlength=strong_logits.shape[1]).float()
        weight = torch.where(counts > 0, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
    return F.cross_entropy(strong_logits[mask].float(), target, weight=weight)
