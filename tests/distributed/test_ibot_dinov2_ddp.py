"""iBOT and DINOv2 across ranks: 2 gloo processes, each with half of the batch (2 global views and 2
small crops), give the loss, the (DDP-averaged) gradients and the new centres of 1 process on the
whole batch. What crosses ranks: iBOT's [CLS] and patch centres (batch means all-reduced), DINOv2's
Sinkhorn-Knopp teacher targets (sums all-reduced, the masked-patch counts differing per rank).
DINOv2's KoLeo term is per rank by design (nearest neighbours within each rank's batch, as the
official code), so it runs here with its weight at 0. The masks are drawn for the whole batch and
each rank takes its half of each view (in a run each rank draws its own). One pair of processes for
both methods."""
from __future__ import annotations

from unittest import mock

import torch

from ddp_harness import assert_ranks_match, loss_and_mean_grads, run_on_ranks
from ssl_bench import distributed, masking
from ssl_bench.methods import DINOv2, IBOT

SETTINGS = {"backbone": "vit", "linear_probe": False, "knn": False, "collapse_monitor": False,
            "backbone_kwargs": {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2,
                                "dynamic_img_size": True},
            "proj_hidden_dim": 16, "bottleneck_dim": 8, "out_dim": 32, "mask_min_block": 1}
BUILD = {"ibot": lambda: IBOT(**SETTINGS), "dinov2": lambda: DINOv2(koleo_weight=0.0, patch_out_dim=24, **SETTINGS)}


def _my_half(x: torch.Tensor) -> torch.Tensor:
    return x.chunk(distributed.world_size())[distributed.rank()]


def _global_masks(batch, grid, generator, *args):
    """The masks of the whole batch of both global views ((view, image) order); this rank's images."""
    w = distributed.world_size()
    full = masking.ibot_masks(batch * w, grid, torch.Generator().manual_seed(5), *args)
    return torch.cat([_my_half(v) for v in full.chunk(2)])


def _run(name: str, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)  # identical initial weights on every rank
    model = BUILD[name]()
    model.center.normal_()
    model.train()
    with mock.patch("ssl_bench.methods.ibot.ibot_masks", _global_masks):
        _, out = model.compute_ssl_loss([_my_half(v) for v in views])
    loss, grads = loss_and_mean_grads(out["loss"], model)
    grads["center (buffer)"] = model.center.clone()
    grads["patch_center (buffer)"] = model.patch_center.clone()
    return loss, grads


def _all(views: list[torch.Tensor]) -> dict:
    return {name: _run(name, views) for name in BUILD}


def test_two_ranks_equal_one_process():
    gen = torch.Generator().manual_seed(1)
    views = [torch.randn(8, 3, 16, 16, generator=gen) for _ in range(2)] + \
        [torch.randn(8, 3, 8, 8, generator=gen) for _ in range(2)]
    single = _all(views)
    assert single["ibot"][1]["patch_center (buffer)"].abs().sum() > 0           # the iBOT centres moved
    assert "mask_token" in single["ibot"][1] and "patch_head.mlp.0.weight" in single["dinov2"][1]
    per_rank = run_on_ranks(_all, 2, views)
    assert_ranks_match(single, per_rank, min_grads=10)
