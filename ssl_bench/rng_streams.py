"""Random number streams of a training run: one per DDP rank, and every rank's in each checkpoint.

``pl.seed_everything(run.seed)`` seeds every process alike, so without a split each rank of a DDP run
would draw the same random numbers: the same augmentation parameters for its own images (the batched
pipeline draws them from torch's global CPU generator) and the same dropout masks. At the start of a
fit, :func:`split_per_rank` gives each rank its own torch stream (CPU and CUDA), a function of the
run's seed and the rank; :func:`capture` stores the streams of every rank in a checkpoint and
:func:`restore` gives each rank its own back, so a resumed run continues every rank's stream where it
stopped. A one-process run is left as it is (its draws are those of ``seed_everything`` alone).

NumPy's and Python's global generators are saved and restored too (rank 0's, for every rank): nothing
in the training loop draws from them, but user code might.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from .distributed import gather_no_grad

_MASK63 = (1 << 63) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # odd, so seeds of different ranks differ in every low bit pattern


def split_per_rank(rank: int, world_size: int) -> None:
    """Reseed torch's generators (CPU and every CUDA device) of rank ``rank`` from a number every rank
    draws alike (same seed, same draws so far) and the rank. One process: nothing changes."""
    if world_size <= 1:
        return
    common = int(torch.randint(0, 1 << 62, ()))
    torch.manual_seed((common + rank * _GOLDEN) & _MASK63)


def capture(device: torch.device) -> dict[str, Any]:
    """Every RNG's state as plain tensors and ints (loads with ``weights_only=True``); torch's CPU
    stream and ``device``'s CUDA stream once per rank (rows in rank order; a collective under DDP)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(py_state), py_gauss],
    }
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # the gather runs on the collective's device (NCCL: the rank's GPU), the rows are kept on the CPU
        states["torch_per_rank"] = gather_no_grad(torch.get_rng_state()[None].to(device)).cpu()
        if device.type == "cuda":
            states["cuda_per_rank"] = gather_no_grad(torch.cuda.get_rng_state(device)[None].to(device)).cpu()
    return states


def restore(states: dict[str, Any], rank: int, device: torch.device) -> None:
    """Put back what :func:`capture` saved: this rank's own torch streams when the checkpoint has one
    per rank (a run resumed on as many ranks), else the saved ones (rank 0's)."""
    per_rank = states.get("torch_per_rank")
    torch.set_rng_state(per_rank[rank].clone() if per_rank is not None and rank < len(per_rank) else states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
        cuda_rows = states.get("cuda_per_rank")
        if cuda_rows is not None and device.type == "cuda" and rank < len(cuda_rows):
            torch.cuda.set_rng_state(cuda_rows[rank].clone(), device)
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_state, py_gauss = states["python"]
    random.setstate((version, tuple(py_state), py_gauss))
