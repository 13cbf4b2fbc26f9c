"""FeatureQueue: the one FIFO memory of feature vectors that every queue-based method shares (MoCo's
negatives, NNCLR's support set, SwAV's queue, ReSSL's relation targets, ...).

Everything lives in registered buffers, so the queue is in every checkpoint by construction and a
resumed run continues with exactly the same memory. ``enqueue`` gathers the keys of all ranks (in rank
order) before writing, so every rank holds the same queue; a method cannot fill it from its local batch
by mistake (a bug one peer shipped in its NNCLR support set).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..distributed import gather_no_grad


class FeatureQueue(nn.Module):
    """Ring buffer of the last ``size`` keys of dimension ``dim``, with optional integer side data.

    Args:
        size: capacity (number of keys).
        dim: key dimension.
        extras: names of per-key int64 side tensors to keep alongside (e.g. ``("labels", "indices")``).
    """

    def __init__(self, size: int, dim: int, extras: tuple[str, ...] = ()) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"FeatureQueue: size and dim must be >= 1, got size={size}, dim={dim}")
        self.size, self.dim, self.extras = int(size), int(dim), tuple(extras)
        self.register_buffer("keys", torch.zeros(self.size, self.dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))     # next write position
        self.register_buffer("count", torch.zeros((), dtype=torch.long))   # keys held (<= size)
        for name in self.extras:
            self.register_buffer(f"extra_{name}", torch.full((self.size,), -1, dtype=torch.long))

    def __len__(self) -> int:
        return int(self.count)

    @property
    def is_full(self) -> bool:
        return int(self.count) == self.size

    @torch.no_grad()
    def enqueue(self, keys: Tensor, gather: bool = True, **extras: Tensor) -> None:
        """Append ``keys`` (B, dim), gathered over ranks first unless ``gather=False`` (the caller
        already gathered). Oldest keys are overwritten once the queue is full."""
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"FeatureQueue.enqueue: keys must be (B, {self.dim}), got {tuple(keys.shape)}")
        if set(extras) != set(self.extras):
            raise ValueError(f"FeatureQueue.enqueue: expected extras {sorted(self.extras)}, got {sorted(extras)}")
        if gather:
            keys = gather_no_grad(keys)
            extras = {k: gather_no_grad(v) for k, v in extras.items()}
        keys = keys.detach()[-self.size:]
        n = keys.shape[0]
        idx = (torch.arange(n, device=self.keys.device) + self.ptr) % self.size
        self.keys[idx] = keys.to(self.keys.dtype)
        for name, value in extras.items():
            getattr(self, f"extra_{name}")[idx] = value.detach()[-self.size:].long()
        self.ptr.copy_((self.ptr + n) % self.size)
        self.count.copy_(torch.clamp(self.count + n, max=self.size))

    def _order(self) -> Tensor:
        """Positions of the held keys, oldest first."""
        n = int(self.count)
        start = int(self.ptr) if n == self.size else 0
        return (torch.arange(n, device=self.keys.device) + start) % self.size

    def contents(self) -> Tensor:
        """The held keys (count, dim), oldest first (a view-free copy; no gradient)."""
        return self.keys[self._order()]

    def extra(self, name: str) -> Tensor:
        """The side data ``name`` of the held keys, oldest first."""
        return getattr(self, f"extra_{name}")[self._order()]
