"""InfoMin: the loss against a naive loop, the JigSaw branch's puzzles, shapes and head, the method's
step (puzzles as extra views, reproducible generator). 2 gloo processes == 1 process: in
tests/distributed/test_ddp_swav_nnclr_cmc_moco_deepcluster.py's one spawn (each spawn costs seconds)."""
from __future__ import annotations

import math

import pytest
import torch

from ssl_bench.errors import ConfigError
from ssl_bench.losses import infomin_loss
from ssl_bench.methods import METHODS, InfoMin
from ssl_bench.methods.jigsaw import JigsawHead, cut_patches, default_patch_size, sample_puzzles
from helpers import tiny_model

TINY = tiny_model(4, proj_hidden_dim=16, proj_dim=8, queue_size=32)  # also tests/distributed's InfoMin step


def _naive_nce(q: torch.Tensor, k: torch.Tensor, neg: torch.Tensor, t: float) -> float:
    """-log softmax of the positive, one row at a time, from the definition (MoCo Eq. 1)."""
    total = 0.0
    for i in range(len(q)):
        qi = q[i] / q[i].norm()
        pos = math.exp(float(qi @ (k[i] / k[i].norm())) / t)
        negs = sum(math.exp(float(qi @ (n / n.norm())) / t) for n in neg)
        total += -math.log(pos / (pos + negs))
    return total / len(q)


def test_infomin_loss_is_the_beta_mixture_of_two_infonce_terms():
    g = torch.Generator().manual_seed(0)
    q, j, k, neg = (torch.randn(n, 5, generator=g) for n in (6, 6, 6, 11))
    for beta in (0.0, 0.5, 0.8):
        expected = (1 - beta) * _naive_nce(q, k, neg, 0.2) + beta * _naive_nce(j, k, neg, 0.2)
        assert abs(float(infomin_loss(q, j, k, neg, 0.2, beta)) - expected) < 1e-5
    q.requires_grad_(), j.requires_grad_(), k.requires_grad_()
    infomin_loss(q, j, k, neg, 0.2, 0.5).backward()
    assert q.grad.abs().sum() > 0 and j.grad.abs().sum() > 0 and k.grad is None     # keys: no gradient
    with pytest.raises(ValueError, match="beta"):
        infomin_loss(q, j, k, neg, 0.2, 1.5)


def test_puzzles_tile_the_grid_in_a_random_order_and_cut_the_right_pixels():
    assert default_patch_size(255) == 64 and default_patch_size(32) == 8      # official 64 px / 85 px cell
    p = sample_puzzles(5, 32, 3, 8, torch.Generator().manual_seed(1))
    assert p["top"].shape == p["left"].shape == p["order"].shape == (5, 9)
    for b in range(5):
        assert sorted(p["order"][b].tolist()) == list(range(9))
        cell_row, cell_col = (p["top"][b] - 1) // 10, (p["left"][b] - 1) // 10     # 30 px grid centred: origin 1
        assert torch.equal(cell_row * 3 + cell_col, p["order"][b])                   # each patch inside its cell
        assert bool(((p["top"][b] - 1) % 10 <= 2).all() and ((p["left"][b] - 1) % 10 <= 2).all())
    assert not torch.equal(p["order"][0], p["order"][1])
    x = torch.rand(5, 3, 32, 32)
    patches = cut_patches(x, p["top"], p["left"], 8)
    assert patches.shape == (45, 3, 8, 8)
    for b in range(5):
        for k in range(9):
            t, left = int(p["top"][b, k]), int(p["left"][b, k])
            assert torch.equal(patches[b * 9 + k], x[b, :, t:t + 8, left:left + 8])
    with pytest.raises(ValueError, match="does not fit"):
        sample_puzzles(2, 32, 3, 11, torch.Generator())


def test_jigsaw_head_shapes_and_each_image_depends_on_its_own_patches_in_order():
    torch.manual_seed(0)
    head = JigsawHead(12, 8, num_patches=9)
    feats = torch.randn(4 * 9, 12)
    out = head(feats)
    assert out.shape == (4, 8)
    changed = feats.clone()
    changed[9:18] += 1.0                                          # image 1's patches only
    moved = head(changed)
    assert torch.allclose(moved[[0, 2, 3]], out[[0, 2, 3]]) and not torch.allclose(moved[1], out[1])
    swapped = feats.clone()
    swapped[[0, 1]] = feats[[1, 0]]                               # two patches of image 0 trade places
    assert not torch.allclose(head(swapped)[0], out[0])           # the order is part of the input


def test_method_step_puzzles_ride_along_and_are_reproducible():
    assert METHODS["infomin"] is InfoMin
    torch.manual_seed(3)
    model = InfoMin(**TINY)
    views = [torch.randn(4, 3, 32, 32) for _ in range(2)]
    feats, out = model.compute_ssl_loss(views)
    assert [tuple(f.shape) for f in feats] == [(4, 16), (4, 16), (36, 16), (36, 16)]
    assert out["loss"].ndim == 0 and [tuple(z.shape) for z in out["z"]] == [(4, 8), (4, 8)]
    assert int(model.jigsaw_draws) == 1 and len(model.queue) == 8
    assert {"jigsaw_seed", "jigsaw_draws"} <= set(model.state_dict())
    # the same seed and draw count give the same puzzles; the next draw differs
    torch.manual_seed(3)
    a, b = InfoMin(**TINY), InfoMin(**TINY)
    first = a.puzzles(views)[0]
    assert torch.equal(first, b.puzzles(views)[0]) and not torch.equal(first, a.puzzles(views)[0])
    with pytest.raises(ConfigError, match="jigsaw_beta"):
        InfoMin(jigsaw_beta=2.0, **TINY)
