"""Cross-rank helpers.

Plain ``torch.distributed`` helpers (``world_size``, ``rank``, ``gather_with_grad``, ``gather_no_grad``,
``gather_uneven``, ``all_reduce_sum``): they work inside a Lightning DDP run and in a bare
``init_process_group`` (the 1-process vs 2-process equality tests use them that way), and are the
identity on one process. Loss functions that need a global statistic (Sinkhorn's sums, DINO's
centre, VICReg's variance) and the evaluation callbacks call these, so a value on 2 ranks equals
the one on the whole batch in one process.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor


def is_launch_rank_zero() -> bool:
    """True unless this process is a non-zero rank of a multi-process launch (Lightning's DDP
    launcher re-runs the command in children with LOCAL_RANK set; torchrun/SLURM set RANK). Readable
    before any process group exists."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` (B, ...) over ranks in rank order; gradients flow back to every rank's part
    (``torch.distributed.nn.all_gather`` sums the incoming gradients across ranks, which is right for a
    loss that every rank computes on the global batch and DDP then averages)."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()))


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` (B, ...) over ranks in rank order, without gradients (queue keys, banks)."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of ``x`` over ranks (out of place, no gradient through the other ranks' parts)."""
    if not is_distributed():
        return x
    out = x.detach().clone()
    dist.all_reduce(out)
    return out


@torch.no_grad()
def gather_uneven(x: Tensor) -> Tensor:
    """Concatenate ``x`` (N_r, ...) over ranks in rank order when N_r differs: pad to the largest,
    gather, trim. Plain ``torch.distributed``, like the helpers above."""
    if not is_distributed():
        return x
    sizes = gather_no_grad(torch.tensor([x.shape[0]], device=x.device)).tolist()
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[: x.shape[0]] = x
    return torch.cat([g[:n] for g, n in zip(gather_no_grad(padded).chunk(len(sizes)), sizes)])
