"""Rank-aware samplers made by the data module itself (the Trainer runs with ``use_distributed_sampler=False``).

Training: ``ShuffledBatchSampler`` permutes all indices with ``torch.Generator().manual_seed(seed + epoch)``
(the DistributedSampler convention), cuts the permutation into global batches of
``batch_size * world_size`` and gives rank ``r`` the ``r``-th slice of ``batch_size`` of each; the last
incomplete global batch is dropped, so every rank yields the same number of batches. It is resumable:
``state_dict()`` holds the epoch and how far into it the iteration got.

Validation: ``ContiguousEvalSampler`` gives each rank a contiguous block of ``ceil(N / world_size)``
indices in dataset order, padding the last block(s) by repeating index ``N - 1``. Gathering the
per-rank results and concatenating them in rank order therefore gives the whole split in order,
followed by the padding: keep the first ``N`` rows (``trim_gathered``).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler


class ShuffledBatchSampler(Sampler[list[int]]):
    """Yields lists of ``batch_size`` indices for one rank; seeded, epoch-aware, resumable."""

    def __init__(self, num_samples: int, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.world_size, self.rank, self.seed = world_size, rank, seed
        self.epoch = 0
        self._start = 0      # global sample offset at which the next iteration starts (after a resume)
        self._position = 0   # global samples handed out so far in the current epoch (all ranks)

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        """Batches per rank in a full epoch (also right after a resume: Lightning counts from there)."""
        return self.num_samples // self.global_batch_size

    def permutation(self, epoch: int | None = None) -> torch.Tensor:
        """The global order of ``epoch`` (default: the current one)."""
        gen = torch.Generator().manual_seed(self.seed + (self.epoch if epoch is None else epoch))
        return torch.randperm(self.num_samples, generator=gen)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch; a new epoch starts from its beginning."""
        if epoch != self.epoch:
            self.epoch, self._start, self._position = epoch, 0, 0

    def __iter__(self) -> Iterator[list[int]]:
        perm, gb = self.permutation(), self.global_batch_size
        start, self._start = self._start, 0  # a resume offset applies to one iteration only
        self._position = start
        lo = self.rank * self.batch_size
        for offset in range(start, self.num_samples - gb + 1, gb):
            self._position = offset + gb
            yield perm[offset + lo: offset + lo + self.batch_size].tolist()

    def state_dict(self) -> dict[str, Any]:
        """Epoch and progress through it; ``samples_yielded`` counts all ranks (= batches * global batch).

        Note: a DataLoader with workers draws batches ahead of the training step, so this counts what
        was handed to the loader; ``SSLDataModule.state_dict`` corrects it with the trainer's count.
        """
        return {"epoch": self.epoch, "batches_yielded": self._position // self.global_batch_size,
                "samples_yielded": self._position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration continues epoch ``state['epoch']`` where it stopped.

        The offset is kept in samples, so a resume with another batch size or world size continues
        with the not yet seen part of the same permutation. A finished epoch moves on to the next one.
        """
        samples = int(state.get("samples_yielded", state.get("batches_yielded", 0) * self.global_batch_size))
        self.epoch = int(state["epoch"])
        if samples + self.global_batch_size > self.num_samples:  # nothing (complete) left in that epoch
            self.epoch, samples = self.epoch + 1, 0
        self._start = self._position = samples


class ContiguousEvalSampler(Sampler[int]):
    """Rank ``r`` gets indices ``[r * m, (r + 1) * m)`` with ``m = ceil(N / world_size)``, padded with ``N - 1``."""

    def __init__(self, num_samples: int, world_size: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
        self.num_samples, self.world_size, self.rank = num_samples, world_size, rank
        self.per_rank = math.ceil(num_samples / world_size)

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        lo = self.rank * self.per_rank
        return iter(min(i, self.num_samples - 1) for i in range(lo, lo + self.per_rank))


def trim_gathered(gathered: torch.Tensor, num_samples: int) -> torch.Tensor:
    """(world_size, per_rank, ...) from ``all_gather`` of ``ContiguousEvalSampler`` outputs -> the (N, ...) split."""
    return gathered.reshape(-1, *gathered.shape[2:])[:num_samples]
