"""The ER objective (Rodriguez-Galvez et al., ICML 2023, "The Role of Entropy and Reconstruction in
Multi-View Self-Supervised Learning"): maximise the lower bound

    I(Z1; Z2) >= H(Z2) - E[-log q(Z2 | Z1)]

by minimising ``reconstruction - entropy_weight * entropy``. Two supports, as in the paper:

- ``"sphere"`` (continuous heads: BYOL, SimSiam): entropy by the vMF kernel density estimate of
  the l2-normalised embeddings, reconstruction ``-log vMF(target; mu = prediction, kappa)`` (a
  scaled cosine plus the exact log-normaliser);
- ``"softmax"`` (DINO, SwAV heads): entropy of the batch-mean softmax, reconstruction the
  cross-entropy between target probabilities and the predicted softmax.

Pure functions: the caller passes the global batch for the entropy (gathered with gradients when
distributed); reconstruction is a per-sample mean, so the local batch is right for it.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ssl_bench.metrics.entropy import (
    REDUCTIONS,
    softmax_entropy,
    softmax_reconstruction,
    vmf_kde_entropy,
    vmf_reconstruction,
)

SUPPORTS = ("sphere", "softmax")
Pair = tuple[Tensor, Tensor]


def _check(support: str, entropy_inputs: Sequence[Tensor], pairs: Sequence[Pair]) -> None:
    if support not in SUPPORTS:
        raise ValueError(f"support must be one of {', '.join(SUPPORTS)}, got {support!r}")
    if not entropy_inputs or not pairs:
        raise ValueError("need at least one entropy input and one (prediction, target) pair")


def er_entropy(entropy_inputs: Sequence[Tensor], support: str, kappa: float, reduction: str = "average",
               leave_one_out: bool = False) -> Tensor:
    """Mean over the inputs (one per view) of their entropy estimate (nats).

    ``"sphere"``: each input (N, d) is an embedding batch, entropy by
    :func:`~ssl_bench.metrics.entropy.vmf_kde_entropy` (``kappa``, ``reduction``, ``leave_one_out``).
    ``"softmax"``: each input (N, K) are logits; the entropy is that of the batch mean of their
    softmax (:func:`~ssl_bench.metrics.entropy.softmax_entropy`; kappa and the reduction do not apply).
    """
    _check(support, entropy_inputs, [(entropy_inputs[0], entropy_inputs[0])] if entropy_inputs else [])
    if support == "sphere":
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        values = [vmf_kde_entropy(z, kappa, reduction, leave_one_out) for z in entropy_inputs]
    else:
        values = [softmax_entropy(torch.softmax(s.float(), dim=1)) for s in entropy_inputs]
    return torch.stack(values).mean()


def er_reconstruction(pairs: Sequence[Pair], support: str, kappa: float) -> Tensor:
    """Mean over ``(prediction, target)`` pairs of the reconstruction error E[-log q(target | prediction)].

    ``"sphere"``: ``q = vMF(target; prediction / ||prediction||, kappa)``
    (:func:`~ssl_bench.metrics.entropy.vmf_reconstruction`). ``"softmax"``: ``prediction`` are
    logits, ``target`` probabilities, ``q = softmax(prediction)`` (cross-entropy). Stop-gradients
    are the caller's: a target that must not receive gradients is passed detached.
    """
    _check(support, [pairs[0][0]] if pairs else [], pairs)
    if support == "sphere":
        values = [vmf_reconstruction(p, t, kappa) for p, t in pairs]
    else:
        values = [softmax_reconstruction(p, t) for p, t in pairs]
    return torch.stack(values).mean()


def er_loss(reconstruction: Tensor, entropy: Tensor, entropy_weight: float) -> Tensor:
    """The ER objective to minimise: ``reconstruction - entropy_weight * entropy`` (the negative
    ER bound when the weight is 1)."""
    return reconstruction - entropy_weight * entropy
