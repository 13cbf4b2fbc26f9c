"""MSN (Assran et al., ECCV 2022, "Masked Siamese Networks for Label-Efficient Learning"), Sec. 3.

An anchor view's representation z (masked: random patch dropping or a focal crop) and the target
view's z+ (unmasked, EMA target encoder) are compared with K learnable prototypes q (l2-normalised):

    p_i  = softmax(<z_i / ||z_i||, q / ||q||> / tau)                  tau = 0.1          (Eq. 1)
    p+_i = sharpen(softmax(<z+_i, q> / tau), T),  T = 0.25                               (Eq. 2)
         = softmax(<z+_i, q> / (tau * T)): a target temperature of 0.025
    loss = 1/(B M) sum_{i, m} H(p+_i, p_{i,m}) - lambda H(mean_{i, m} p_{i,m})          (Eq. 3, 4)

the second term being the mean-entropy maximisation (ME-MAX) regulariser, lambda = 1, with the mean
over the anchors of the global batch (every anchor view of every image on every rank). The official
code adds the constant log K to the ME-MAX term (it is then >= 0); it is left out here. The official
code can also balance the sharpened targets by Sinkhorn-Knopp over the global batch
(``use_sinkhorn``, on in its released config; not in the paper's equations): ``msn_targets(...,
use_sinkhorn=True)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ssl_bench.losses.paws import me_max, sharpen
from ssl_bench.losses.swav import sinkhorn_knopp


def prototype_logits(z: Tensor, prototypes: Tensor, temperature: float = 0.1) -> Tensor:
    """Cosine similarities (N, K) of ``z`` (N, d) to the ``prototypes`` (K, d), divided by ``temperature``
    (float32, autocast off: at temperature 0.025 a bfloat16 similarity would move the sharpened target)."""
    if temperature <= 0:
        raise ValueError(f"prototype_logits: temperature must be > 0, got {temperature}")
    with torch.autocast(device_type=z.device.type, enabled=False):
        return F.normalize(z.float(), dim=-1) @ F.normalize(prototypes.float(), dim=-1).T / temperature


@torch.no_grad()
def msn_targets(target_logits: Tensor, sharpen_temperature: float = 0.25, use_sinkhorn: bool = False,
                sinkhorn_iterations: int = 3) -> Tensor:
    """Eq. 2: the target view's prototype softmax, sharpened with ``T`` (no gradient). With
    ``use_sinkhorn`` the sharpened targets are then balanced over the prototypes by Sinkhorn-Knopp
    (3 iterations) over the GLOBAL batch (sums over samples all-reduced across ranks), as the official
    code's ``distributed_sinkhorn`` (``use_sinkhorn: true`` in its released ViT-S/16 config): each
    target still sums to 1, and the prototypes receive near-equal total mass."""
    targets = sharpen(torch.softmax(target_logits.float(), dim=-1), sharpen_temperature)
    return sinkhorn_knopp(targets, sinkhorn_iterations) if use_sinkhorn else targets


def msn_loss(anchor_logits: list[Tensor], targets: Tensor, mean_anchor_probs: Tensor | None = None,
             me_max_weight: float = 1.0) -> Tensor:
    """Eq. 3-4: the cross-entropy H(p+, p) between the (detached) ``targets`` (B, K) and the softmax
    of each anchor view's ``anchor_logits`` (B, K) (``prototype_logits``), averaged over anchors and
    views, plus ``me_max_weight * sum_k pbar_k log pbar_k`` of ``mean_anchor_probs`` (K,), the mean
    anchor prediction over the global batch (the caller gathers it across ranks, with gradients)."""
    if not anchor_logits:
        raise ValueError("msn_loss: needs at least one anchor view")
    if any(a.shape != targets.shape for a in anchor_logits):
        raise ValueError(f"msn_loss: every anchor view must be (B, K) = {tuple(targets.shape)}")
    t = targets.detach().float()
    ce = torch.stack([-(t * F.log_softmax(a.float(), dim=-1)).sum(-1).mean() for a in anchor_logits]).mean()
    if mean_anchor_probs is None or me_max_weight == 0:
        return ce
    return ce + me_max_weight * me_max(mean_anchor_probs)
