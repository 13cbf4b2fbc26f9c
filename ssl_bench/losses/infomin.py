"""InfoMin's objective with the JigSaw branch (Tian et al., 2020, "What Makes for Good Views for
Contrastive Learning?", Sec. 5, following PIRL): the image query and the jigsaw query of a view
are both contrasted with the momentum key of the other view against the same queue of negatives,
``L = (1 - beta) * L_NCE(q, k) + beta * L_NCE(q_jig, k)``, beta = 0.5."""
from __future__ import annotations

from torch import Tensor

from ssl_bench.losses.infonce import infonce


def infomin_loss(query: Tensor, jigsaw_query: Tensor, key: Tensor, negatives: Tensor,
                 temperature: float = 0.2, beta: float = 0.5) -> Tensor:
    """``(1 - beta) * infonce(query, key) + beta * infonce(jigsaw_query, key)`` (MoCo's InfoNCE,
    Eq. 1 of He et al. 2020, with ``negatives`` as the K negatives; no gradient into keys).

    Args:
        query, jigsaw_query: (B, d) image and jigsaw embeddings of one view (gradients flow).
        key: (B, d) momentum keys of the other view.
        negatives: (K, d) the queue.
        beta: weight of the jigsaw term, in [0, 1].
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"infomin_loss: beta must be in [0, 1], got {beta}")
    return (1.0 - beta) * infonce(query, key, negatives, temperature) + beta * infonce(jigsaw_query, key, negatives,
                                                                                       temperature)
