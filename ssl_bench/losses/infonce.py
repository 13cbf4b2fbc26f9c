"""InfoNCE with a memory of negatives (MoCo) and with in-batch negatives (NNCLR, CMC).

Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding", Eq. 4, in the form
of He et al. 2020 (MoCo, Eq. 1): ``L_q = -log exp(q.k+/t) / sum_i exp(q.k_i/t)`` over cosine
similarities (every vector is l2-normalised here).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _float_normalize(x: Tensor) -> Tensor:
    return F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=-1)


def infonce(query: Tensor, positive: Tensor, negatives: Tensor, temperature: float = 0.2) -> Tensor:
    """MoCo's InfoNCE (He et al. 2020, Eq. 1; Chen et al. 2020 "Improved baselines", t = 0.2):
    row i of ``query`` has one positive key (row i of ``positive``) and the same K negatives
    (``negatives``, e.g. the queue). Logits ``[q.k+, q.n_1 .. q.n_K] / t``, cross-entropy to
    index 0, mean over rows. No gradient flows into ``positive`` or ``negatives`` (momentum keys).

    Args:
        query: (B, d) queries (gradients flow).
        positive: (B, d) positive keys.
        negatives: (K, d) negative keys, K >= 0.
    """
    if temperature <= 0:
        raise ValueError(f"infonce: temperature must be > 0, got {temperature}")
    if query.ndim != 2 or query.shape != positive.shape or negatives.ndim != 2 or negatives.shape[1] != query.shape[1]:
        raise ValueError(f"infonce: need query, positive (B, d) and negatives (K, d); got {tuple(query.shape)}, "
                         f"{tuple(positive.shape)}, {tuple(negatives.shape)}")
    q = _float_normalize(query)
    k, n = _float_normalize(positive.detach()), _float_normalize(negatives.detach())
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ n.T], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def batch_infonce(anchors: Tensor, keys_all: Tensor, temperature: float = 0.1, rank: int = 0,
                  negatives: Tensor | None = None) -> Tensor:
    """InfoNCE with in-batch negatives: local anchor i's positive is ``keys_all[rank * B + i]``, every
    other row of ``keys_all`` (the keys of all ranks, gathered with gradients) and every row of
    ``negatives`` (an optional memory, no gradient) is a negative. NNCLR (Dwibedi et al. 2021,
    Eq. 2: anchors = nearest neighbours NN(z), keys = predictions p of the other view) and CMC
    (Tian et al. 2019, Eq. 2: anchors = one view, keys = another view) use it.

    Args:
        anchors: (B, d) local anchors.
        keys_all: (W*B, d) keys of all W ranks in rank order (``keys_all = keys`` on one process).
        rank: this process' rank.
        negatives: (K, d) extra negatives (detached here), or None.
    """
    if temperature <= 0:
        raise ValueError(f"batch_infonce: temperature must be > 0, got {temperature}")
    b = anchors.shape[0]
    if anchors.ndim != 2 or keys_all.ndim != 2 or keys_all.shape[1] != anchors.shape[1] or keys_all.shape[0] % b:
        raise ValueError(f"batch_infonce: need anchors (B, d) and keys_all (W*B, d); got {tuple(anchors.shape)} "
                         f"and {tuple(keys_all.shape)}")
    if not 0 <= rank < keys_all.shape[0] // b:
        raise ValueError(f"batch_infonce: rank {rank} out of range for {keys_all.shape[0] // b} gathered batches")
    keys = _float_normalize(keys_all)
    if negatives is not None and len(negatives):
        keys = torch.cat([keys, _float_normalize(negatives.detach())])
    logits = _float_normalize(anchors) @ keys.T / temperature
    targets = torch.arange(b, device=anchors.device) + rank * b
    return F.cross_entropy(logits, targets)


def mocov3_loss(q1: Tensor, q2: Tensor, k1_all: Tensor, k2_all: Tensor, temperature: float = 0.2,
                rank: int = 0) -> Tensor:
    """MoCo v3's symmetrised contrastive loss (Chen, Xie and He 2021, Algorithm 1):
    ``ctr(q1, k2) + ctr(q2, k1)`` with ``ctr(q, k) = 2t * CE(q . k_all^T / t, own index)``: the keys
    of the whole batch gathered over ranks are the negatives (no queue), the same image's key is the
    positive. The factor 2t (official code) makes the gradient scale independent of t. Temperature
    0.2 for ViT, 1.0 for ResNet (paper, Sec. 4 / Appendix). Keys come from the momentum encoder
    (detached here).

    Args:
        q1, q2: (B, d) local predictions of the two views (gradients flow).
        k1_all, k2_all: (W*B, d) momentum keys of both views gathered over W ranks, rank-major.
        rank: this process' rank.
    """
    t = temperature
    return 2 * t * (batch_infonce(q1, k2_all.detach(), t, rank) + batch_infonce(q2, k1_all.detach(), t, rank))
