"""Contrastive losses: SimCLR's NT-Xent (Chen et al., 2020, "A Simple Framework for Contrastive
Learning of Visual Representations", Eq. 1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.1,
    z1_all: Tensor | None = None,
    z2_all: Tensor | None = None,
    rank: int = 0,
) -> Tensor:
    """Normalised temperature-scaled cross-entropy (SimCLR, Chen et al. 2020, Eq. 1), symmetrised.

    For anchor ``u`` with positive ``v`` (cosine similarities ``sim``, temperature ``tau``)::

        l(u, v) = -log( exp(sim(u, v)/tau) / sum_{k != u} exp(sim(u, k)/tau) )

    where ``k`` runs over all 2N embeddings of both views of the (global) batch except the anchor
    itself, so the positive is in the denominator (Eq. 1, the indicator ``1[k != i]``). The loss is
    the mean of ``l`` over the 2B local anchors (every row of ``z1`` and of ``z2``).

    Standard hyperparameters: temperature 0.1 (SimCLR's setting for large batches on ImageNet,
    Sec. 5.1 / Table 5); 0.1-0.2 on CIFAR (SimCLR tunes it for CIFAR-10 in Appendix B.9; 0.2 is
    the common CIFAR choice, e.g. solo-learn's configs).

    Args:
        z1, z2: (B, d) projections of the two views of the local batch; l2-normalised here.
        temperature: tau > 0.
        z1_all, z2_all: (W*B, d) the same gathered over W ranks, rank-major, with gradients (the
            caller gathers, e.g. ``LightningModule.all_gather(z, sync_grads=True)`` flattened).
            ``None`` means single process: ``z1_all = z1`` and ``z2_all = z2``.
        rank: this process' rank; local row i is row ``rank * B + i`` of the gathered tensors.

    Returns:
        Scalar tensor. Half-precision inputs are computed in float32.
    """
    if temperature <= 0:
        raise ValueError(f"nt_xent: temperature must be > 0, got {temperature}")
    if (z1_all is None) != (z2_all is None):
        raise ValueError("nt_xent: pass both z1_all and z2_all, or neither")
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"nt_xent: z1 and z2 must both be (B, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1_all is None:
        z1_all, z2_all = z1, z2
    assert z2_all is not None
    batch = z1.shape[0]
    n_all = z1_all.shape[0]
    if z1_all.shape != z2_all.shape or z1_all.shape[1:] != z1.shape[1:] or n_all % batch != 0:
        raise ValueError(
            f"nt_xent: z1_all and z2_all must both be (W*B, d) with B={batch}, d={z1.shape[1]}; "
            f"got {tuple(z1_all.shape)} and {tuple(z2_all.shape)}"
        )
    if not 0 <= rank < n_all // batch:
        raise ValueError(f"nt_xent: rank {rank} out of range for {n_all // batch} gathered batches")

    dtype = torch.promote_types(z1.dtype, torch.float32)
    anchors = F.normalize(torch.cat([z1, z2]).to(dtype), dim=1)  # (2B, d)
    keys = F.normalize(torch.cat([z1_all, z2_all]).to(dtype), dim=1)  # (2WB, d)
    logits = anchors @ keys.T / temperature  # (2B, 2WB)

    local = torch.arange(batch, device=z1.device) + rank * batch  # rows of this rank in *_all
    self_idx = torch.cat([local, local + n_all])  # anchor z1_i is key rank*B+i, z2_i is key N+rank*B+i
    pos_idx = torch.cat([local + n_all, local])  # the other view of the same image
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[torch.arange(2 * batch, device=z1.device), self_idx] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    return F.cross_entropy(logits, pos_idx)
