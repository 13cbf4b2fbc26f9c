"""Run a function on N gloo processes (CPU) and collect each rank's return value.

The 1-process vs 2-process equality tests use it: a batch-, queue- or statistics-dependent loss
computed on two ranks (each with half the batch, cross-rank tensors through
``ssl_bench.distributed``) must equal the single-process value on the whole batch.

    def loss_on_rank(full_batch):            # a module-level function (it is pickled by name)
        r = ssl_bench.distributed.rank()
        return my_loss(full_batch.chunk(2)[r])
    per_rank = run_on_ranks(loss_on_rank, 2, full_batch)

Return values must be picklable (tensors, numbers, dicts of them).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, fn: Callable[..., Any], args: tuple, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world)
    try:
        result = fn(*args)
        torch.save(result, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_on_ranks(fn: Callable[..., Any], world_size: int, *args: Any) -> list[Any]:
    """``[fn(*args) on rank r for r in range(world_size)]``, each rank in its own process."""
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        mp.spawn(_worker, args=(world_size, fn, args, folder), nprocs=world_size, join=True)
        return [torch.load(Path(folder) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


def assert_ranks_match(single: dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]], per_rank: list[dict],
                       min_grads: int = 1) -> None:
    """Each entry's (loss, DDP-averaged gradients by parameter name) on every rank == one process on
    the whole batch. float32 noise scales with the gradient magnitude (e.g. Barlow Twins' last
    projector bias has a true gradient of 0 and ~1e-5 of rounding), so the absolute tolerance is
    relative to the largest gradient."""
    for name, (loss, grads) in single.items():
        assert len(grads) >= min_grads, name
        scale = max(g.abs().max().item() for g in grads.values())
        for rank_result in per_rank:
            rank_loss, rank_grads = rank_result[name]
            torch.testing.assert_close(rank_loss, loss, rtol=1e-5, atol=1e-6, msg=f"{name} loss")
            assert rank_grads.keys() == grads.keys()
            for pname, g in grads.items():
                torch.testing.assert_close(rank_grads[pname], g, rtol=1e-4, atol=1e-4 * scale, msg=f"{name} {pname}")


def freeze_batchnorm_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """Train mode with every BatchNorm in eval mode (running statistics, the same on any split of the
    batch), so 1 and 2 processes compute the same function."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def loss_and_mean_grads(loss: torch.Tensor, model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Backward ``loss``; return it and the parameters' gradients, averaged over ranks when there are
    several (what DDP optimises and applies)."""
    loss.backward()
    loss = loss.detach()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    world = dist.get_world_size() if dist.is_initialized() else 1
    if world > 1:
        for t in [loss, *grads.values()]:
            dist.all_reduce(t)
            t /= world
    return loss, grads
