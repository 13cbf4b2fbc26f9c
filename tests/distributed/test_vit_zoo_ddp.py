"""ViT-era zoo across ranks: 2 gloo processes, each with half of the batch, give the loss and the
(DDP-averaged) gradients of 1 process on the whole batch, for MoCo v3 (negatives: the momentum
keys of every rank, gathered), MAE and I-JEPA (per-sample losses; nothing is gathered, which this
checks). BatchNorm in MoCo v3's heads runs with frozen statistics (see test_ddp_simclr_barlow.py).
The masks are drawn for the whole batch and each rank takes its half, so both sides see the same
masks (in a run each rank draws its own: masking.step_generator is per rank). One pair of
processes for the three methods."""
from __future__ import annotations

from unittest import mock

import torch

from ddp_harness import assert_ranks_match, freeze_batchnorm_statistics, loss_and_mean_grads, run_on_ranks
from ssl_bench import distributed, masking
from ssl_bench.methods import IJEPA, MAE, MoCoV3

BACKBONE = {"backbone": "vit", "linear_probe": False, "knn": False, "collapse_monitor": False,
            "backbone_kwargs": {"img_size": 16, "patch_size": 2, "embed_dim": 16, "depth": 1, "num_heads": 2}}
BUILD = {
    "mocov3": lambda: MoCoV3(proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, temperature=0.2, **BACKBONE),
    "mae": lambda: MAE(decoder_dim=16, decoder_depth=1, decoder_heads=2, **BACKBONE),
    "ijepa": lambda: IJEPA(pred_dim=16, pred_depth=1, pred_heads=2, **BACKBONE),
}


def _my_half(x):
    return x.chunk(distributed.world_size())[distributed.rank()]


def _global_random_masking(batch, num_patches, ratio, generator):
    m = masking.random_masking(batch * distributed.world_size(), num_patches, ratio, torch.Generator().manual_seed(5))
    return masking.TokenMask(_my_half(m.keep), _my_half(m.mask))


def _global_multiblock(batch, grid, generator, *args):
    context, targets = masking.multiblock_masks(batch * distributed.world_size(), grid, torch.Generator().manual_seed(5), *args)
    return _my_half(context), _my_half(targets)


def _loss_and_grads(name: str, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)  # identical initial weights on every rank
    model = BUILD[name]()
    freeze_batchnorm_statistics(model)
    with mock.patch("ssl_bench.methods.mae.random_masking", _global_random_masking), \
            mock.patch("ssl_bench.methods.ijepa.multiblock_masks", _global_multiblock):
        _, out = model.compute_ssl_loss([_my_half(v) for v in views])
    loss, grads = loss_and_mean_grads(out["loss"], model)
    return loss, grads


def _all(views: list[torch.Tensor]) -> dict:
    return {name: _loss_and_grads(name, views) for name in BUILD}


def test_two_ranks_equal_one_process():
    gen = torch.Generator().manual_seed(1)
    views = [torch.randn(8, 3, 16, 16, generator=gen) for _ in range(2)]
    single = _all(views)
    per_rank = run_on_ranks(_all, 2, views)
    assert_ranks_match(single, per_rank, min_grads=6)
