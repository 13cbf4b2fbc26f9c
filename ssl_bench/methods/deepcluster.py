"""DeepCluster v2 (Caron et al. 2020, the SwAV paper, Sec. 4 and Appendix A.2)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..distributed import gather_no_grad
from ..errors import ConfigError
from .base import BaseMethod
from .heads import mlp
from .kmeans import spherical_kmeans
from ..data.train_data import TrainData


class MemoryBank(nn.Module):
    """Per-sample memory: ``embeddings`` (V, N, d) of V views, ``filled`` (N,) and the k-means
    ``assignments`` (H, N) of H heads (-1: none yet), all registered buffers (in every checkpoint).

    N is only known once the data is (``resize_``, at setup); loading a state dict resizes the
    buffers to the stored shapes first, so a checkpoint loads into a freshly built model too.
    ``update`` gathers indices and embeddings over ranks, so every rank holds the same bank.
    """

    def __init__(self, num_views: int, dim: int, num_heads: int, num_samples: int = 0) -> None:
        super().__init__()
        self.register_buffer("embeddings", torch.zeros(num_views, num_samples, dim))
        self.register_buffer("filled", torch.zeros(num_samples, dtype=torch.bool))
        self.register_buffer("assignments", torch.full((num_heads, num_samples), -1, dtype=torch.long))

    @property
    def num_samples(self) -> int:
        return self.filled.shape[0]

    def resize_(self, num_samples: int) -> None:
        """Empty bank for ``num_samples`` samples (no-op when the size is already right)."""
        if num_samples == self.num_samples:
            return
        v, _, d = self.embeddings.shape
        dev = self.embeddings.device
        self.embeddings = torch.zeros(v, num_samples, d, device=dev)
        self.filled = torch.zeros(num_samples, dtype=torch.bool, device=dev)
        self.assignments = torch.full((self.assignments.shape[0], num_samples), -1, dtype=torch.long, device=dev)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[override]
        stored = state_dict.get(prefix + "filled")
        if stored is not None:
            self.resize_(stored.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def update(self, indices: Tensor, embeddings: list[Tensor]) -> None:
        """Write each view's (B, d) embeddings at the samples ``indices`` (B,), gathered over ranks."""
        indices = gather_no_grad(indices)
        for v, e in enumerate(embeddings):
            self.embeddings[v, indices] = gather_no_grad(e.detach().float())
        self.filled[indices] = True


class DeepClusterV2(BaseMethod):
    """DeepCluster v2 (SwAV paper, Appendix A.2; official ``main_deepclusterv2.py``): the
    l2-normalised projections of the two global views of every sample are kept in a memory bank;
    at the start of each epoch, spherical k-means (10 iterations) clusters view ``h mod 2`` of the
    bank for each of the H heads (3 x 3000 prototypes), the prototypes of head h become its
    centroids and each sample's cluster its target for the epoch. Loss: cross-entropy between
    ``softmax(z . C_h / t)`` of every view (t = 0.1) and the sample's assignment, averaged over
    views and heads. The prototypes are the centroids and get no gradient (the released runs
    freeze them for the whole run) unless ``train_prototypes``.

    Needs the sample index (``needs_sample_indices``). The official code fills the bank with one
    forward pass over the data before training; here the first epoch is that pass (no sample has
    an assignment yet, so its loss is zero) and clustering starts with the second epoch.
    """

    needs_sample_indices = True

    def __init__(self, proj_hidden_dim: int = 2048, proj_dim: int = 128,
                 num_prototypes: tuple[int, ...] = (3000, 3000, 3000), temperature: float = 0.1,
                 kmeans_iterations: int = 10, train_prototypes: bool = False, **base: Any) -> None:
        num_prototypes = tuple(int(k) for k in num_prototypes)
        if not num_prototypes or min(num_prototypes) < 1:
            raise ConfigError(f"model.num_prototypes must be a non-empty list of positive ints, got {num_prototypes}")
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)
        self.prototypes = nn.ModuleList([nn.Linear(proj_dim, k, bias=False) for k in num_prototypes])
        self.prototypes.requires_grad_(train_prototypes)
        self.memory = MemoryBank(self.num_global_views, proj_dim, len(num_prototypes))
        self._indices: Tensor | None = None

    def attach_data(self, data: TrainData) -> None:
        """Size the bank to the training split (before a checkpoint is restored into it)."""
        n = data.num_samples
        if max(self.hparams.num_prototypes) > n:
            raise ConfigError(f"model.num_prototypes {list(self.hparams.num_prototypes)} exceeds the {n} training samples")
        self.memory.resize_(n)

    @torch.no_grad()
    def cluster_memory(self, seed: int) -> None:
        """k-means of the filled bank for every head; prototypes <- centroids, targets <- clusters."""
        filled = self.memory.filled
        if not filled.any():
            return
        gen = torch.Generator(device=self.memory.embeddings.device).manual_seed(seed)
        for h, (head, k) in enumerate(zip(self.prototypes, self.hparams.num_prototypes)):
            bank = self.memory.embeddings[h % self.memory.embeddings.shape[0], filled]
            k = min(int(k), bank.shape[0])
            centroids, labels = spherical_kmeans(bank, k, self.hparams.kmeans_iterations, gen)
            head.weight.zero_()[:k] = centroids.to(head.weight.dtype)
            self.memory.assignments[h].fill_(-1)
            self.memory.assignments[h, filled] = labels

    def on_train_epoch_start(self) -> None:
        self.cluster_memory(seed=self.current_epoch)

    def training_step(self, batch: tuple, batch_idx: int) -> dict[str, Any]:
        if len(batch) < 3:
            raise ConfigError("deepcluster_v2 needs (views, labels, indices) batches: train it with SSLDataModule")
        self._indices = batch[2]
        return super().training_step(batch, batch_idx)

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        assert self._indices is not None, "training_step sets the batch's sample indices"
        z = [F.normalize(self.projector(f), dim=1) for f in feats]
        targets = self.memory.assignments[:, self._indices]
        loss = sum(losses.deepcluster_loss([head(zi) for zi in z], targets[h], self.hparams.temperature)
                   for h, head in enumerate(self.prototypes)) / len(self.prototypes)
        self.memory.update(self._indices, z[: self.num_global_views])
        return {"loss": loss, "z": z[: self.num_global_views]}
