"""Batched RandAugment (InfoMin's recipe): each op against torchvision's own op on the same
magnitudes, the whole sampled step against torchvision's ``RandAugment`` in distribution, the level
noise, and the InfoMin view against the per-image op sequence."""
from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch
from scipy import stats
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ssl_bench.data import randaugment as ra
from ssl_bench.data.batched_augment import BatchedViewAugment
from ssl_bench.data.per_image import RandAugmentLevels
from ssl_bench.data.recipes import build_recipe

FILL = (0.2, 0.5, 0.7)
TV = v2.RandAugment(fill=list(FILL))        # only its op dispatcher is used: torchvision's per-image ops


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tv_op(img: torch.Tensor, op: int, magnitude: float, rand_aug: v2.RandAugment = TV) -> torch.Tensor:
    return rand_aug._apply_image_or_video_transform(img, ra.OPS[op], magnitude,
                                                    interpolation=rand_aug.interpolation, fill=rand_aug._fill)


@pytest.mark.parametrize("op", range(len(ra.OPS)), ids=ra.OPS)
def test_each_op_equals_torchvision_on_the_same_magnitudes(op):
    """Per-sample levels in [0, 10] and signs on a non-square batch, fill colour included."""
    g = _gen(op)
    x = torch.rand(12, 3, 20, 18, generator=g)
    x[0] = x[0, :1]                                   # a gray image (autocontrast / equalize ties)
    level = torch.rand(12, generator=g) * 10
    level[1] = 10.0
    sign = torch.where(torch.rand(12, generator=g) < 0.5, -1.0, 1.0)
    mag = ra.op_magnitude(op, level, sign, 20, 18, translate=0.45)
    out = ra.apply_op(x.clone(), op, mag, FILL)
    ref = torch.stack([_tv_op(x[i], op, float(mag[i])) for i in range(len(x))])
    assert (out - ref).abs().max().item() < 1e-5


def _all_outcomes(x: torch.Tensor, num_ops: int) -> torch.Tensor:
    """Every image our RandAugment can make from ``x`` at level 10 (op and sign per step)."""
    choices = [(op, s) for op in range(len(ra.OPS)) for s in ((-1.0, 1.0) if op in ra.SIGNED else (1.0,))]
    combos = list(itertools.product(choices, repeat=num_ops))
    p = {"ra_op": torch.tensor([[c[0] for c in combo] for combo in combos]),
         "ra_sign": torch.tensor([[c[1] for c in combo] for combo in combos]),
         "ra_level": torch.full((len(combos), num_ops), 10.0)}
    return ra.randaugment(x.expand(len(combos), -1, -1, -1).clone(), p, ra.TORCHVISION_TRANSLATE, (0.0,) * 3)


def test_two_steps_have_torchvisions_outcomes_and_frequencies():
    """torchvision's RandAugment(2, magnitude=10, num_magnitude_bins=11) is our level 10 without noise:
    every image it makes is one of ours, and each of ours comes out as often (chi-square test)."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 10, 9, generator=_gen(1))
    outcomes = _all_outcomes(x, 2).flatten(1)                       # (529, D), one per (op, sign) pair
    same = torch.cdist(outcomes, outcomes, p=math.inf) < 1e-5        # different steps, same image
    group = same.float().argmax(dim=1)                               # first combination giving that image
    choices = [(op, s) for op in range(14) for s in ((-1.0, 1.0) if op in ra.SIGNED else (1.0,))]
    prob = {c: 1 / (14 * (2 if c[0] in ra.SIGNED else 1)) for c in choices}
    expected = torch.zeros(len(outcomes))
    for k, (c1, c2) in enumerate(itertools.product(choices, repeat=2)):
        expected[group[k]] += prob[c1] * prob[c2]
    tv = v2.RandAugment(num_ops=2, magnitude=10, num_magnitude_bins=11)
    n = 1500
    seen = torch.stack([tv(x[0]) for _ in range(n)]).flatten(1)
    dist, nearest = torch.cdist(seen, outcomes, p=math.inf).min(dim=1)
    assert float(dist.max()) < 1e-5, "torchvision made an image our RandAugment cannot"
    counts = torch.bincount(group[nearest], minlength=len(outcomes)).float()
    expected, counts = expected[expected > 0], counts[expected > 0]
    # Pool rare outcomes so every cell expects >= 5, then a chi-square test at p = 1e-4.
    order = expected.argsort(descending=True)
    big = order[expected[order] * n >= 5]
    rest = order[expected[order] * n < 5]
    obs = torch.cat([counts[big], counts[rest].sum().view(1)])
    exp = torch.cat([expected[big], expected[rest].sum().view(1)]) * n
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    assert stats.chi2.sf(chi2, len(obs) - 1) > 1e-4


def test_sampled_ops_signs_and_noisy_levels():
    n = 20000
    p = ra.sample_params(n, 2, magnitude=10.0, magnitude_std=0.5, generator=_gen(2))
    counts = torch.bincount(p["ra_op"].flatten(), minlength=14).float()
    se = math.sqrt(2 * n * (1 / 14) * (13 / 14))
    assert (counts - 2 * n / 14).abs().max() < 5 * se
    assert abs(float((p["ra_sign"] < 0).float().mean()) - 0.5) < 5 * math.sqrt(0.25 / (2 * n))
    level = p["ra_level"]
    assert float(level.min()) >= 0.0 and float(level.max()) == 10.0
    # N(10, 0.5) clipped to [0, 10]: half the draws at 10, the rest a half-normal below it.
    assert abs(float((level == 10.0).float().mean()) - 0.5) < 5 * math.sqrt(0.25 / (2 * n))
    assert abs(float(level.mean()) - (10 - 0.5 / math.sqrt(2 * math.pi))) < 0.01
    fixed = ra.sample_params(100, 2, magnitude=7.0, generator=_gen(3))["ra_level"]
    assert bool((fixed == 7.0).all())
    # timm's per-op probability: a step is the identity with 1 - p + p / 14
    halved = ra.sample_params(n, 2, magnitude=10.0, generator=_gen(4), prob=0.5)["ra_op"]
    rate = float((halved == ra.IDENTITY).float().mean())
    assert abs(rate - (0.5 + 0.5 / 14)) < 5 * math.sqrt(0.25 / (2 * n))


def test_per_image_randaugment_levels_uses_the_same_outcomes():
    """The per-image pipeline's RandAugment (torchvision's ops, our sampler) at level 10 without noise
    makes only images from the batched outcome set."""
    view = build_recipe({"name": "infomin", "randaug_magnitude_std": 0.0, "randaug_prob": 1.0,
                         "randaug_translate": ra.TORCHVISION_TRANSLATE}, 9, (0.0,) * 3, (1.0,) * 3).views[0]
    x = torch.rand(1, 3, 10, 9, generator=_gen(4))
    outcomes = _all_outcomes(x, 2).flatten(1)
    per_image = RandAugmentLevels(view, fill=[0.0, 0.0, 0.0])
    torch.manual_seed(1)
    seen = torch.stack([per_image(x[0]) for _ in range(60)]).flatten(1)
    assert float(torch.cdist(seen, outcomes, p=math.inf).min(dim=1).values.max()) < 1e-5


def test_infomin_view_equals_torchvision_ops_in_infomins_order():
    """crop + flip, jitter, blur, RandAugment, grayscale, normalise: the batched view against
    torchvision's ops applied one image at a time with the sampled parameters."""
    recipe = build_recipe({"name": "infomin", "blur_prob": 0.5}, 12, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    v = recipe.views[0]
    assert (v.crop_scale, v.brightness, v.saturation, v.hue, v.jitter_prob, v.grayscale_prob) == \
        ((0.2, 1.0), 0.8, 0.8, 0.2, 0.8, 0.2)
    assert (v.randaug_num_ops, v.randaug_magnitude, v.randaug_magnitude_std, v.randaug_prob, v.randaug_translate) == \
        (2, 10.0, 0.5, 0.5, 0.45)
    x = torch.rand(40, 3, 20, 18, generator=_gen(5))
    aug = BatchedViewAugment(v, generator=_gen(6))
    p = aug.sample_params(len(x), 20, 18)
    tv = v2.RandAugment(fill=list(v.mean))
    jitter = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    names = ("brightness", "contrast", "saturation", "hue")
    ref = []
    for i in range(len(x)):
        img = TF.resized_crop(x[i], *(int(p[k][i]) for k in ("top", "left", "height", "width")), [12, 12],
                              antialias=True)
        img = TF.horizontal_flip(img) if p["flip"][i] else img
        if p["jitter"][i]:
            for o in p["jitter_order"][i].tolist():
                img = jitter[o](img, float(p[names[o]][i]))
        if p["blur"][i]:
            img = TF.gaussian_blur(img, [v.blur_kernel_size] * 2, [float(p["sigma"][i])] * 2)
        for k in range(2):
            op = int(p["ra_op"][i, k])
            img = _tv_op(img, op, float(ra.op_magnitude(op, p["ra_level"][i, k], p["ra_sign"][i, k], 12, 12, 0.45)), tv)
        img = TF.rgb_to_grayscale(img, num_output_channels=3) if p["grayscale"][i] else img
        ref.append(TF.normalize(img, list(v.mean), list(v.std)))
    assert (aug.apply(x, p) - torch.stack(ref)).abs().max().item() < 1e-4    # 1e-5 before / std


def test_other_recipes_draw_no_randaugment_parameters():
    view = build_recipe({"name": "simclr"}, 12, (0.5,) * 3, (0.25,) * 3).views[0]
    assert not any(k.startswith("ra_") for k in BatchedViewAugment(view, _gen(0)).sample_params(4, 16, 16))
    infomin = replace(view, randaug_num_ops=2)
    assert BatchedViewAugment(infomin, _gen(0)).sample_params(4, 16, 16)["ra_op"].shape == (4, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_infomin_views_and_puzzles_on_cuda_match_cpu():
    """The batched InfoMin views (RandAugment included) and the JigSaw patches on the device equal
    the CPU's for the same seed; a nearest-neighbour warp may flip a pixel at a rounding tie."""
    from ssl_bench.data.batched_augment import BatchedMultiView
    from ssl_bench.methods.jigsaw import cut_patches, sample_puzzles
    recipe = build_recipe({"name": "infomin"}, 32, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    cpu = BatchedMultiView(recipe, generator=_gen(9))(x)
    gpu = BatchedMultiView(recipe, generator=_gen(9)).cuda()(x.cuda())
    for u, w in zip(cpu, gpu):
        assert w.device.type == "cuda"
        assert ((u - w.cpu()).abs() > 1e-3).float().mean() < 1e-3
    p = sample_puzzles(64, 32, 3, 8, _gen(3))
    assert torch.equal(cut_patches(cpu[0], p["top"], p["left"], 8),
                       cut_patches(cpu[0].cuda(), p["top"], p["left"], 8).cpu())
