"""Contrastive Multiview Coding (Tian et al. 2019, "Contrastive Multiview Coding"), Sec. 3.2-3.3."""
from __future__ import annotations

from torch import Tensor

from .infonce import batch_infonce

GRAPHS = ("core_view", "full_graph")


def cmc_view_pairs(num_views: int, graph: str = "full_graph", core: int = 0) -> list[tuple[int, int]]:
    """The unordered view pairs that are contrasted: ``full_graph`` (Eq. 6) all pairs i < j;
    ``core_view`` (Eq. 5) the pairs (core, j) for every other view j."""
    if graph not in GRAPHS:
        raise ValueError(f"cmc: graph must be one of {', '.join(GRAPHS)}, got '{graph}'")
    if num_views < 2 or not 0 <= core < num_views:
        raise ValueError(f"cmc: need >= 2 views and 0 <= core < {num_views}, got {num_views} views, core {core}")
    if graph == "core_view":
        return [(core, j) for j in range(num_views) if j != core]
    return [(i, j) for i in range(num_views) for j in range(i + 1, num_views)]


def cmc_loss(z: list[Tensor], z_all: list[Tensor], temperature: float = 0.07, graph: str = "full_graph",
             core: int = 0, rank: int = 0, memories: list[Tensor] | None = None) -> Tensor:
    """CMC's two-view loss ``L(V_i, V_j) = L_contrast^{V_i,V_j} + L_contrast^{V_j,V_i}`` (Eq. 3),
    each an InfoNCE with view i's embedding as anchor and view j's embeddings as the positive and
    negatives (Eq. 2, in-batch negatives of all ranks, plus ``memories[j]`` if given), summed over
    the pairs of ``graph`` (Eq. 5 / 6). Returned as the mean over the ordered pairs (the paper sums;
    the mean keeps the learning rate comparable when the number of views changes).

    Args:
        z: per-view local embeddings, each (B, d).
        z_all: the same gathered over ranks with gradients, each (W*B, d) (``z`` on one process).
        memories: per-view extra negatives (K, d) (e.g. a queue of past embeddings), or None.
        temperature: 0.07 in the paper (Sec. 4).
    """
    if len(z) != len(z_all):
        raise ValueError(f"cmc_loss: got {len(z)} views but {len(z_all)} gathered views")
    pairs = cmc_view_pairs(len(z), graph, core)
    total = z[0].new_zeros(()).float()
    for i, j in pairs:
        for a, k in ((i, j), (j, i)):
            mem = memories[k] if memories is not None else None
            total = total + batch_infonce(z[a], z_all[k], temperature, rank, mem)
    return total / (2 * len(pairs))
