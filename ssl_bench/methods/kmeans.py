"""Spherical (cosine) k-means on a tensor, as DeepCluster v2 runs it on its memory bank every epoch.

Written here rather than taken from scikit-learn: it runs on the bank's device (GPU) without a copy
to the host, it is cosine k-means (scikit-learn's KMeans is Euclidean only), and with a seeded
generator every rank computes the identical clustering of its identical bank, so no rank has to
broadcast centroids.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def assign(x: Tensor, centroids: Tensor, chunk: int = 8192) -> Tensor:
    """Index of the most similar centroid (largest dot product) of every row of ``x``, in chunks."""
    return torch.cat([(part @ centroids.T).argmax(dim=1) for part in x.split(chunk)])


@torch.no_grad()
def spherical_kmeans(x: Tensor, k: int, iterations: int = 10, generator: torch.Generator | None = None,
                     init: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Cosine k-means of the rows of ``x`` (N, d) (DeepCluster v2: 10 iterations, initial centroids
    k distinct random samples, centroids l2-normalised means). An empty cluster is re-seeded at the
    point least similar to its centroid (scikit-learn's relocation).

    ``init`` (k, d) replaces the random initial centroids. Returns ``(centroids (k, d), assignments
    (N,))``; the assignments are those of the final centroids.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"spherical_kmeans: need 1 <= k <= N, got k={k}, N={n}")
    x = F.normalize(x.float(), dim=1)
    if init is None:
        perm = torch.randperm(n, generator=generator, device=generator.device if generator else "cpu")
        centroids = x[perm[:k].to(x.device)].clone()
    else:
        centroids = F.normalize(init.to(x), dim=1)
    for _ in range(iterations):
        labels = assign(x, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        nonempty = counts > 0
        centroids[nonempty] = F.normalize(sums[nonempty], dim=1)
        empty = (~nonempty).nonzero().flatten()
        if len(empty):  # re-seed empty clusters at the points farthest from their centroid (as scikit-learn)
            fit = (x * centroids[labels]).sum(1)
            centroids[empty] = x[fit.argsort()[: len(empty)]]
    return centroids, assign(x, centroids)
