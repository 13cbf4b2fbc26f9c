"""The patch-token ViT backbone and the masking module (issue #23, shared machinery)."""
from __future__ import annotations

import math
import random

import pytest
import torch

from ssl_bench import masking
from ssl_bench.backbones import build_backbone

TINY_VIT = {"arch": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------ backbone
def test_vit_cls_feature_is_timms_and_tokens_match_full_sequence():
    torch.manual_seed(0)
    model, dim = build_backbone("vit", **TINY_VIT)
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        cls, patches = model.tokens(x)
        torch.testing.assert_close(model(x), model.vit(x))          # timm's own [CLS] feature
        torch.testing.assert_close(cls, model(x))
        seq = model.vit.forward_features(x)                          # [CLS] + 16 patch tokens
    assert dim == 32 and patches.shape == (3, 16, 32)
    torch.testing.assert_close(patches, seq[:, 1:])


def test_vit_keep_all_patches_in_any_order_permutes_the_tokens():
    """Dropping no token is the full forward (attention is permutation-equivariant), so the encoder
    sees each kept patch with its own position."""
    torch.manual_seed(0)
    model, _ = build_backbone("vit", **TINY_VIT)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    perm = torch.stack([torch.randperm(16, generator=_gen(i)) for i in range(2)])
    with torch.no_grad():
        cls_full, full = model.tokens(x)
        cls_perm, permuted = model.tokens(x, keep=perm)
    torch.testing.assert_close(cls_perm, cls_full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(permuted, masking.gather_tokens(full, perm), rtol=1e-5, atol=1e-5)


def test_vit_frozen_patch_embedding_and_errors():
    model, _ = build_backbone("vit", freeze_patch_embed=True, **TINY_VIT)
    assert not any(p.requires_grad for p in model.vit.patch_embed.parameters())
    assert all(p.requires_grad for p in model.vit.blocks.parameters())
    with pytest.raises(ValueError, match="arch"):
        build_backbone("vit", arch="resnet18")
    with pytest.raises(ValueError, match="class token"):
        build_backbone("vit", class_token=False, global_pool="avg", **TINY_VIT)


# ------------------------------------------------------------------------------------------ masking
@pytest.mark.parametrize("ratio, n, kept", [(0.75, 64, 16), (0.5, 16, 8), (0.0, 10, 10), (0.9, 49, 4)])
def test_random_masking_ratio_exact_per_sample(ratio, n, kept):
    m = masking.random_masking(5, n, ratio, _gen())
    assert m.keep.shape == (5, kept) and m.mask.shape == (5, n)
    assert (m.mask.sum(1) == n - kept).all()
    assert not m.mask.gather(1, m.keep).any()                        # kept patches are the unmasked ones
    assert all(len(set(row.tolist())) == kept for row in m.keep)     # without replacement
    assert len({tuple(row.tolist()) for row in m.keep}) > 1 or ratio == 0.0   # per-sample randomness


def test_random_masking_is_uniform_over_patches():
    m = masking.random_masking(4000, 16, 0.75, _gen())
    freq = m.mask.float().mean(0)
    assert (freq - 0.75).abs().max() < 0.03


def test_masks_deterministic_per_generator_and_differ_across_seeds():
    for draw in (lambda g: masking.random_masking(4, 64, 0.75, g).mask,
                 lambda g: masking.block_masking(4, (8, 8), 0.4, g),
                 lambda g: torch.cat([t.flatten(1) for t in masking.multiblock_masks(4, (8, 8), g)], 1)):
        assert torch.equal(draw(_gen(1)), draw(_gen(1)))
        assert not torch.equal(draw(_gen(1)), draw(_gen(2)))
    a, b = masking.step_generator(0, 10, 0), masking.step_generator(0, 10, 0)
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    others = [masking.step_generator(0, 11, 0), masking.step_generator(0, 10, 1), masking.step_generator(1, 10, 0)]
    ref = torch.rand(5, generator=masking.step_generator(0, 10, 0))
    assert all(not torch.equal(ref, torch.rand(5, generator=g)) for g in others)


def test_gather_and_restore_round_trip():
    tokens = torch.randn(3, 16, 5, requires_grad=True)
    m = masking.random_masking(3, 16, 0.75, _gen())
    kept = masking.gather_tokens(tokens, m.keep)
    for b in range(3):                                               # naive loop
        torch.testing.assert_close(kept[b], tokens[b, m.keep[b]])
    fill = torch.full((5,), 7.0, requires_grad=True)
    full = masking.restore_tokens(kept, m.keep, 16, fill)
    torch.testing.assert_close(full[~m.mask], tokens[~m.mask])
    assert (full[m.mask] == 7.0).all()
    full.sum().backward()
    assert torch.equal(tokens.grad, (~m.mask).float()[..., None].expand(-1, -1, 5))
    assert fill.grad.tolist() == [int(m.mask.sum())] * 5


def test_sample_blocks_within_scale_and_aspect_ranges():
    grid, area, aspect = (14, 14), (20.0, 40.0), (0.5, 2.0)
    blocks = masking.sample_blocks(2000, grid, area, aspect, _gen(), log_aspect=True)
    h, w = blocks.height.float(), blocks.width.float()
    # rounding each side moves the area and the ratio by at most half a patch per side
    assert ((h - 0.5) * (w - 0.5) <= area[1]).all() and ((h + 0.5) * (w + 0.5) >= area[0]).all()
    assert ((h - 0.5) / (w + 0.5) <= aspect[1]).all() and ((h + 0.5) / (w - 0.5) >= aspect[0]).all()
    assert (blocks.top >= 0).all() and (blocks.top + blocks.height <= grid[0]).all()
    assert (blocks.left >= 0).all() and (blocks.left + blocks.width <= grid[1]).all()
    mask = blocks.mask(grid).reshape(-1, *grid)
    for b in range(20):                                              # the mask is exactly the rectangle
        t, l, hh, ww = (int(v[b]) for v in (blocks.top, blocks.left, blocks.height, blocks.width))
        expect = torch.zeros(grid, dtype=torch.bool)
        expect[t:t + hh, l:l + ww] = True
        assert torch.equal(mask[b], expect)


def beit_block_mask_loop(grid: tuple[int, int], target: int, rng: random.Random, min_block: int = 4,
                         aspect: tuple[float, float] = (0.3, 1 / 0.3), tries: int = 10) -> torch.Tensor:
    """BEiT's Algorithm 1 for one image, written as the paper and its generator state it: add one
    rectangle at a time (area uniform in [min_block, left to mask], log-uniform aspect, smaller than
    the grid), keep it only if it masks 1..(left to mask) new patches, give up after ``tries`` misses."""
    height, width = grid
    mask = [[False] * width for _ in range(height)]
    count = 0
    while count < target:
        left_to_mask, added = target - count, 0
        for _ in range(tries):
            area = rng.uniform(min_block, left_to_mask)
            r = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
            h, w = round(math.sqrt(area * r)), round(math.sqrt(area / r))
            if h < height and w < width:
                top, left = rng.randint(0, height - h), rng.randint(0, width - w)
                cells = [(i, j) for i in range(top, top + h) for j in range(left, left + w) if not mask[i][j]]
                if 0 < len(cells) <= left_to_mask:
                    for i, j in cells:
                        mask[i][j] = True
                    added = len(cells)
                    break
        if added == 0:
            break
        count += added
    return torch.tensor(mask).flatten()


def test_block_masking_never_exceeds_the_target_and_almost_always_reaches_it():
    mask = masking.block_masking(500, (14, 14), 0.4, _gen())
    counts, target = mask.sum(1), round(0.4 * 196)
    assert (counts <= target).all()                                  # each block capped by what is left
    assert (counts == target).float().mean() > 0.8 and counts.min() >= target - 4
    assert not mask.all(1).any() and mask.any(1).all()


@pytest.mark.parametrize("grid, ratio, min_block", [((8, 8), 0.4, 4), ((4, 4), 0.5, 2), ((14, 14), 0.3, 16)])
def test_block_masking_has_the_law_of_beits_one_block_at_a_time_loop(grid, ratio, min_block):
    """The batched masks against BEiT's loop (above), over 3,000 images each: the same distribution of
    the masked count and the same masking frequency at every patch position (blocks cover the centre
    more than the corners), within sampling error."""
    n, target = 3000, round(ratio * grid[0] * grid[1])
    batched = masking.block_masking(n, grid, ratio, _gen(1), min_block=min_block).float()
    rng = random.Random(0)
    loop = torch.stack([beit_block_mask_loop(grid, target, rng, min_block) for _ in range(n)]).float()
    for masks in (batched, loop):
        assert (masks.sum(1) <= target).all()
    assert abs(batched.sum(1).mean() - loop.sum(1).mean()) < 0.02 * target
    reached = [float((m.sum(1) == target).float().mean()) for m in (batched, loop)]
    assert abs(reached[0] - reached[1]) < 0.04
    assert (batched.mean(0) - loop.mean(0)).abs().max() < 0.05        # per-position frequency, se ~0.013


def test_multiblock_masks_ijepa_shapes():
    grid = (8, 8)
    context, targets = masking.multiblock_masks(64, grid, _gen(3))
    assert targets.shape[:2] == (64, 4)
    n_tgt = targets.shape[2]
    assert 0.15 * 64 - 4 <= n_tgt <= 0.2 * 64 + 4                    # one size per batch (rounded sides)
    for b in range(64):
        tgt = set(targets[b].flatten().tolist())
        ctx = context[b].tolist()
        assert ctx == sorted(set(ctx)) and not tgt & set(ctx)        # context excludes every target patch
        for block in targets[b]:                                     # each target is a full rectangle
            rows, cols = block // 8, block % 8
            assert len(block) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert context.shape[1] >= 4


def test_multiblock_masks_on_a_grid_too_small_for_the_targets_is_a_config_error():
    """4 targets of 60-70% of a 3x3 grid leave no room for a context: a one-line ConfigError naming
    the settings to change, not a traceback."""
    from ssl_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="num_targets, target_scale"):
        masking.multiblock_masks(8, (3, 3), _gen(0), target_scale=(0.6, 0.7))
