"""MSN and LeJEPA across ranks: 2 gloo processes, each with half of the batch, give the loss and the
(DDP-averaged) gradients of 1 process on the whole batch. MSN: ME-MAX's mean anchor prediction is
gathered over ranks with gradients. LeJEPA: SIGReg's empirical characteristic function is summed
over ranks with gradients (checked alone at lambda = 1, and in the paper's mix at 0.05); its
directions are drawn the same on every rank. BatchNorm in the projectors runs with frozen
statistics (see test_ddp_simclr_barlow.py). MSN's masks are drawn for the whole batch and each
rank takes its half, so both sides see the same masks. One pair of processes for both methods."""
from __future__ import annotations

from unittest import mock

import torch

from ddp_harness import assert_ranks_match, freeze_batchnorm_statistics, loss_and_mean_grads, run_on_ranks
from ssl_bench import distributed, masking
from ssl_bench.methods import MSN, LeJEPA

BACKBONE = {"backbone": "vit", "linear_probe": False, "knn": False, "collapse_monitor": False,
            "backbone_kwargs": {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2,
                                "dynamic_img_size": True}}
BUILD = {
    "msn": lambda: MSN(proj_hidden_dim=16, proj_dim=8, num_prototypes=12, mask_ratio=0.5, **BACKBONE),
    "lejepa": lambda: LeJEPA(proj_hidden_dim=16, proj_dim=8, num_slices=16, **BACKBONE),
    "lejepa_sigreg_only": lambda: LeJEPA(proj_hidden_dim=16, proj_dim=8, num_slices=16, lambd=1.0, **BACKBONE),
}


def _my_half(x):
    return x.chunk(distributed.world_size())[distributed.rank()]


def _global_random_masking(batch, num_patches, ratio, generator):
    m = masking.random_masking(batch * distributed.world_size(), num_patches, ratio, torch.Generator().manual_seed(5))
    return masking.TokenMask(_my_half(m.keep), _my_half(m.mask))


def _loss_and_grads(name: str, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)  # identical initial weights (and seeds) on every rank
    model = BUILD[name]()
    freeze_batchnorm_statistics(model)
    with mock.patch("ssl_bench.methods.msn.random_masking", _global_random_masking):
        _, out = model.compute_ssl_loss([_my_half(v) for v in views])
    loss, grads = loss_and_mean_grads(out["loss"], model)
    return loss, grads


def _all(views: list[torch.Tensor]) -> dict:
    return {name: _loss_and_grads(name, views) for name in BUILD}


def test_two_ranks_equal_one_process():
    gen = torch.Generator().manual_seed(1)
    views = [torch.randn(8, 3, 16, 16, generator=gen) for _ in range(2)] + \
            [torch.randn(8, 3, 8, 8, generator=gen) for _ in range(2)]
    single = _all(views)
    per_rank = run_on_ranks(_all, 2, views)
    assert_ranks_match(single, per_rank, min_grads=6)
