"""Batched augmentation: each op against torchvision's functional op on the same parameters, the
sampled parameters against torchvision's samplers and the recipe's ranges, and the module contract
(shapes, dtypes, devices, reproducibility)."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from scipy import stats
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ssl_bench.data import batched_ops as ops
from ssl_bench.data.batched_augment import BatchedMultiView, BatchedViewAugment, sample_crop_boxes
from ssl_bench.data.recipes import CIFAR_MEAN, CIFAR_STD, ViewAugment, build_recipe

FLOAT_TOL = 1e-5
JITTER_FNS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
JITTER_NAMES = ("brightness", "contrast", "saturation", "hue")
# Every op exercised: blur and solarisation on half the samples, a non-square input, small output.
ALL_OPS = ViewAugment(size=12, grayscale_prob=0.3, blur_prob=0.5, solarize_prob=0.5)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int = 8, h: int = 20, w: int = 24, seed: int = 0) -> torch.Tensor:
    """Float images in [0, 1] with some exact grays and channel ties (hue's edge cases)."""
    x = torch.rand(max(n, 4), 3, h, w, generator=_gen(seed))
    x[0, :, :5] = x[0, :1, :5]          # gray pixels (chroma 0)
    x[1, 1] = x[1, 0]                   # R == G everywhere
    x[2, 2, :, :7] = x[2, 0, :, :7]     # R == B on a block
    x[3, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    return x[:n]


def _per_sample(fn, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
    return torch.stack([fn(x[i], *(float(a[i]) for a in args)) for i in range(len(x))])


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# ------------------------------------------------------------------ deterministic ops vs torchvision

BOXES = [  # (top, left, height, width, size): up- and down-scaling, full image, thin crops
    (0, 0, 20, 24, 16), (3, 5, 7, 9, 16), (2, 1, 17, 22, 8), (0, 0, 20, 24, 20),
    (4, 4, 10, 10, 10), (1, 2, 5, 19, 7), (19, 23, 1, 1, 4), (0, 0, 20, 24, 33),
]


@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("box", BOXES)
def test_resized_crop_equals_torchvision(box, antialias):
    top, left, h, w, size = box
    x = _images(4)
    n = len(x)
    args = [torch.full((n,), v) for v in (top, left, h, w)]
    flip = torch.tensor([False, True, False, True])
    out = ops.resized_crop(x, *args, size, flip=flip, antialias=antialias)
    ref = TF.resized_crop(x, top, left, h, w, [size, size], antialias=antialias)
    ref = torch.where(flip.view(-1, 1, 1, 1), TF.horizontal_flip(ref), ref)
    assert out.shape == (n, 3, size, size)
    assert _max_err(out, ref) < FLOAT_TOL
    # uint8 in (scaled by 1/255 inside): torchvision's uint8 kernel rounds, so within one level
    xu = (x * 255).round().to(torch.uint8)
    out_u = ops.resized_crop(xu, *args, size, flip=flip, antialias=antialias, scale=1 / 255)
    ref_u = TF.resized_crop(xu, top, left, h, w, [size, size], antialias=antialias)
    ref_u = torch.where(flip.view(-1, 1, 1, 1), TF.horizontal_flip(ref_u), ref_u)
    assert _max_err((out_u * 255).round(), ref_u.float()) <= 1.0


def test_resized_crop_per_sample_boxes_in_one_call():
    x = _images(len(BOXES), h=20, w=24)
    top, left, h, w = (torch.tensor([b[i] for b in BOXES]) for i in range(4))
    out = ops.resized_crop(x, top, left, h, w, 9)
    ref = torch.stack([TF.resized_crop(x[i], *BOXES[i][:4], [9, 9]) for i in range(len(BOXES))])
    assert _max_err(out, ref) < FLOAT_TOL


def test_antialias_only_matters_when_downscaling():
    """The per-image pipeline resizes with antialias=True; without it, a downscaled crop aliases."""
    x = _images(2, h=32, w=32)
    full = [torch.zeros(2, dtype=torch.long)] * 2 + [torch.full((2,), 32)] * 2
    down_aa, down = (ops.resized_crop(x, *full, 8, antialias=a) for a in (True, False))
    assert _max_err(down_aa, TF.resize(x, [8, 8], antialias=True)) < FLOAT_TOL
    assert _max_err(down_aa, down) > 0.05          # a 4x downscale: clearly different
    up_aa, up = (ops.resized_crop(x, *full, 48, antialias=a) for a in (True, False))
    assert _max_err(up_aa, up) < FLOAT_TOL          # upscaling: the same bilinear kernel


def test_interp_matrix_rows_are_convex_and_stay_in_the_crop():
    start, length = torch.tensor([0, 3, 10]), torch.tensor([16, 5, 6])
    for antialias in (True, False):
        m = ops.interp_matrix(start, length, 16, 11, antialias)
        assert torch.allclose(m.sum(-1), torch.ones(3, 11)) and (m >= 0).all()
        cols = torch.arange(16)
        outside = (cols < start.view(-1, 1)) | (cols >= (start + length).view(-1, 1))
        assert (m * outside.unsqueeze(1)).abs().max() == 0


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation"])
def test_linear_jitter_ops_equal_torchvision(name):
    x = _images()
    factor = torch.tensor([0.0, 0.3, 0.9, 1.0, 1.2, 1.8, 0.6, 1.5])
    out = getattr(ops, f"adjust_{name}")(x, factor)
    assert _max_err(out, _per_sample(getattr(TF, f"adjust_{name}"), x, factor)) < FLOAT_TOL


def test_hue_equals_torchvision_including_grays_and_ties():
    x = _images()
    for factor in (torch.tensor([-0.5, -0.3, -0.1, 0.0, 0.05, 0.2, 0.4, 0.5]), torch.full((8,), 1 / 6)):
        out = ops.adjust_hue(x, factor)
        assert _max_err(out, _per_sample(TF.adjust_hue, x, factor)) < FLOAT_TOL


def test_jitter_step_applies_each_samples_own_op():
    x = _images()
    op = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])          # 3 (hue) and 4 (none): unchanged here
    factor = torch.tensor([1.4, 0.5, 1.7, 1.3, 0.2, 0.7, 1.6, 0.1])
    out = ops.jitter_step(x, op, factor)
    for i in range(len(x)):
        ref = JITTER_FNS[op[i]](x[i], factor[i].item()) if op[i] < 3 else x[i]
        assert _max_err(out[i], ref) < FLOAT_TOL


def test_grayscale_equals_torchvision():
    x = _images()
    apply = torch.tensor([True, False] * 4)
    out = ops.grayscale(x, apply)
    ref = torch.where(apply.view(-1, 1, 1, 1), TF.rgb_to_grayscale(x, num_output_channels=3), x)
    assert _max_err(out, ref) < FLOAT_TOL


def test_gaussian_blur_equals_torchvision_per_sample_sigma():
    x = _images()
    sigma = torch.linspace(0.1, 2.0, len(x))
    for k in (3, 5, 23):
        out = ops.gaussian_blur(x, k, sigma)
        ref = torch.stack([TF.gaussian_blur(x[i], [k, k], [float(sigma[i])] * 2) for i in range(len(x))])
        assert _max_err(out, ref) < FLOAT_TOL


def test_solarize_equals_torchvision_at_the_threshold():
    x = (torch.arange(256, dtype=torch.float32) / 255).view(1, 1, 16, 16).expand(4, 3, 16, 16).contiguous()
    threshold = torch.tensor([0.0, 128 / 255, 0.5, 1.0])
    out = ops.solarize(x, threshold)
    assert _max_err(out, _per_sample(TF.solarize, x, threshold)) == 0.0
    assert torch.equal(ops.solarize(x, torch.full((4,), math.inf)), x)     # "not applied"


def test_normalize_equals_torchvision():
    x = _images()
    ref = TF.normalize(x.clone(), list(CIFAR_MEAN), list(CIFAR_STD))
    assert _max_err(ops.normalize(x.clone(), CIFAR_MEAN, CIFAR_STD), ref) < FLOAT_TOL


# ------------------------------------------------------------------ the whole view vs torchvision

def _torchvision_view(x: torch.Tensor, p: dict, v: ViewAugment) -> torch.Tensor:
    """The per-image recipe with the batched module's sampled parameters, one image at a time."""
    out = []
    for i in range(len(x)):
        img = TF.resized_crop(x[i], *(int(p[k][i]) for k in ("top", "left", "height", "width")),
                              [v.size, v.size], antialias=True)
        if p["flip"][i]:
            img = TF.horizontal_flip(img)
        if p["jitter"][i]:
            for o in p["jitter_order"][i].tolist():
                img = JITTER_FNS[o](img, float(p[JITTER_NAMES[o]][i]))
        if p["grayscale"][i]:
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if p["blur"][i]:
            img = TF.gaussian_blur(img, [v.blur_kernel_size] * 2, [float(p["sigma"][i])] * 2)
        if p["solarize"][i]:
            img = TF.solarize(img, round(v.solarize_threshold * 255) / 255)
        out.append(TF.normalize(img, list(v.mean), list(v.std)))
    return torch.stack(out)


def test_view_apply_equals_torchvision_ops_in_the_sampled_order():
    x = _images(48, h=20, w=18)
    aug = BatchedViewAugment(ALL_OPS, generator=_gen(3))
    p = aug.sample_params(len(x), 20, 18)
    for flag in ("flip", "jitter", "grayscale", "blur", "solarize"):     # every branch is exercised
        assert 0 < int(p[flag].sum()) < len(x)
    assert _max_err(aug.apply(x, p), _torchvision_view(x, p, ALL_OPS)) < 1e-4   # 1e-5 before /std


def test_view_on_uint8_is_within_quantisation_of_torchvision_uint8():
    """The per-image pipeline rounds or truncates to uint8 after every op; the batched one does not."""
    xu = (TF.gaussian_blur(_images(64, h=20, w=18), [5, 5], [1.5, 1.5]) * 255).round().to(torch.uint8)
    v = replace(ALL_OPS, solarize_prob=0.0)          # a pixel at 127.6 vs 128 would flip by ~1/2
    aug = BatchedViewAugment(v, generator=_gen(4))
    p = aug.sample_params(len(xu), 20, 18)
    std, mean = torch.tensor(v.std).view(1, 3, 1, 1), torch.tensor(v.mean).view(1, 3, 1, 1)
    ours = (aug.apply(xu, p) * std + mean) * 255
    ref_v = replace(v, mean=(0.0,) * 3, std=(1 / 255,) * 3)      # torchvision on uint8, unnormalised
    ref = _torchvision_view_uint8(xu, p, ref_v)
    diff = (ours - ref).abs()
    assert diff.mean() < 2.0 and diff.flatten().quantile(0.999) < 8.0


def _torchvision_view_uint8(x: torch.Tensor, p: dict, v: ViewAugment) -> torch.Tensor:
    out = []
    for i in range(len(x)):
        img = TF.resized_crop(x[i], *(int(p[k][i]) for k in ("top", "left", "height", "width")),
                              [v.size, v.size], antialias=True)
        if p["flip"][i]:
            img = TF.horizontal_flip(img)
        if p["jitter"][i]:
            for o in p["jitter_order"][i].tolist():
                img = JITTER_FNS[o](img, float(p[JITTER_NAMES[o]][i]))
        if p["grayscale"][i]:
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if p["blur"][i]:
            img = TF.gaussian_blur(img, [v.blur_kernel_size] * 2, [float(p["sigma"][i])] * 2)
        out.append(img.float())
    return torch.stack(out)


# ------------------------------------------------------------------ sampled parameters

N = 4096


def _rate_ok(flags: torch.Tensor, p: float) -> bool:
    """Observed rate within 5 standard errors of p (exact for p in {0, 1})."""
    rate = flags.float().mean().item()
    return abs(rate - p) <= 5 * math.sqrt(p * (1 - p) / len(flags)) + 1e-12


def test_crop_area_uniform_and_ratio_log_uniform_without_rejection():
    """On a large image with boxes that always fit, torchvision's sampler reduces to area fraction
    ~ U(scale) and log aspect ~ U(log ratio), up to integer rounding of the sides."""
    scale, ratio = (0.1, 0.5), (3 / 4, 4 / 3)
    b = sample_crop_boxes(N, 1000, 1000, scale, ratio, _gen(0))
    area = (b["height"] * b["width"]).double() / 1e6
    log_ratio = (b["width"].double() / b["height"].double()).log()
    assert stats.kstest(area.numpy(), stats.uniform(0.1, 0.4).cdf).pvalue > 1e-3
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    assert stats.kstest(log_ratio.numpy(), stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3
    assert area.min() > 0.099 and area.max() < 0.501
    # placement: uniform over the valid offsets (mean offset = half the slack)
    slack = (1000 - b["height"]).double()
    assert abs((b["top"].double() / slack.clamp(min=1)).mean().item() - 0.5) < 0.02


def test_crop_distribution_matches_torchvision_on_cifar_sized_images():
    """32x32 with scale (0.08, 1): rounding and rejected tries shape the law; compare with
    torchvision's own RandomResizedCrop.make_params (two-sample KS)."""
    torch.manual_seed(0)
    tv = v2.RandomResizedCrop(32)
    ref = [tv.make_params([torch.zeros(3, 32, 32)]) for _ in range(2000)]
    ref_area = torch.tensor([r["height"] * r["width"] for r in ref], dtype=torch.float64)
    ref_ratio = torch.tensor([r["width"] / r["height"] for r in ref], dtype=torch.float64)
    b = sample_crop_boxes(N, 32, 32, (0.08, 1.0), (3 / 4, 4 / 3), _gen(1))
    area = (b["height"] * b["width"]).double()
    ratio = b["width"].double() / b["height"].double()
    assert stats.ks_2samp(area.numpy(), ref_area.numpy()).pvalue > 1e-3
    assert stats.ks_2samp(ratio.numpy(), ref_ratio.numpy()).pvalue > 1e-3
    assert (b["top"] >= 0).all() and (b["top"] + b["height"] <= 32).all()
    assert (b["left"] >= 0).all() and (b["left"] + b["width"] <= 32).all()
    assert (area >= 1).all() and ((b["width"] / b["height"] - 1).abs() <= 1 / 3 + 0.2).all()


@pytest.mark.parametrize("hw", [(40, 20), (20, 40), (30, 30)])
def test_crop_fallback_is_torchvisions_central_crop(hw):
    """A scale no box can satisfy: every sample takes torchvision's fallback box."""
    h, w = hw
    b = sample_crop_boxes(16, h, w, (1.5, 2.0), (3 / 4, 4 / 3), _gen(0))
    ref = v2.RandomResizedCrop(8, scale=(1.5, 2.0)).make_params([torch.zeros(3, h, w)])
    for key in ("top", "left", "height", "width"):
        assert (b[key] == ref[key]).all(), key


def test_sampled_flags_and_factors_follow_the_view():
    v = ViewAugment(hflip_prob=0.5, jitter_prob=0.8, brightness=0.4, contrast=0.3, saturation=1.5, hue=0.1,
                    grayscale_prob=0.2, blur_prob=0.1, blur_sigma=(0.1, 2.0), solarize_prob=0.2)
    p = BatchedViewAugment(v, generator=_gen(5)).sample_params(N, 32, 32)
    for flag, prob in [("flip", 0.5), ("jitter", 0.8), ("grayscale", 0.2), ("blur", 0.1), ("solarize", 0.2)]:
        assert p[flag].dtype == torch.bool and _rate_ok(p[flag], prob), flag
    # torchvision's ranges: [max(0, 1 - s), 1 + s] and [-h, h], uniform
    for name, lo, hi in [("brightness", 0.6, 1.4), ("contrast", 0.7, 1.3), ("saturation", 0.0, 2.5),
                         ("hue", -0.1, 0.1), ]:
        f = p[name].double()
        assert f.min() >= lo and f.max() <= hi, name
        assert stats.kstest(f.numpy(), stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3, name
    assert p["sigma"].min() >= 0.1 and p["sigma"].max() <= 2.0
    # a random permutation of the four ops per sample, each op equally likely at each position
    order = p["jitter_order"]
    assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(N, 4))
    for pos in range(4):
        for op in range(4):
            assert _rate_ok(order[:, pos] == op, 0.25)
    assert (order != order[0]).any(dim=1).float().mean() > 0.9        # not one order for the batch


def test_zero_strength_skips_the_op_like_torchvision():
    v = ViewAugment(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, jitter_prob=1.0)
    aug = BatchedViewAugment(v, generator=_gen(0))
    assert aug.jitter_ranges == (None, None, None, None)
    p = aug.sample_params(64, 8, 8)
    assert (p["brightness"] == 1).all() and (p["hue"] == 0).all()
    # so the jitter leaves the crop untouched (hue's HSV round trip is not even run)
    x = _images(64, h=8, w=8)
    no_jitter = {**p, "jitter": torch.zeros(64, dtype=torch.bool)}
    assert torch.equal(aug.apply(x, p), aug.apply(x, no_jitter))


def _isolated(**kw) -> ViewAugment:
    """A view whose only random op is the one under test: whole-image crop, everything else off."""
    base = ViewAugment(size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip_prob=0.0, jitter_prob=0.0,
                       grayscale_prob=0.0, mean=(0.0,) * 3, std=(1.0,) * 3)
    return replace(base, **kw)


def test_application_rates_seen_in_the_outputs():
    """4096 copies of one fixed pattern: each op changes the output at its configured rate."""
    pattern = torch.zeros(3, 8, 8)
    pattern[0, :, :4], pattern[1, :, 4:], pattern[2, ::2] = 0.9, 0.7, 0.3     # coloured, asymmetric
    x = pattern.expand(N, 3, 8, 8)
    changed = {}
    cases = {"flip": _isolated(hflip_prob=0.3), "jitter": _isolated(jitter_prob=0.6),
             "grayscale": _isolated(grayscale_prob=0.2),
             "blur": _isolated(blur_prob=0.4, blur_sigma=(0.5, 2.0), size=16),   # sigma 0.1 is a no-op
             "solarize": _isolated(solarize_prob=0.25)}
    for name, v in cases.items():
        aug = BatchedViewAugment(v, generator=_gen(7))
        p = aug.sample_params(N, 8, 8)
        out = aug.apply(x, p)
        ident = TF.resize(pattern, [v.size, v.size], antialias=True)
        changed[name] = (out - ident).abs().amax(dim=(1, 2, 3)) > 1e-4
        assert torch.equal(changed[name], p[name]), name   # changed exactly where the flag is set
    for name, prob in [("flip", 0.3), ("jitter", 0.6), ("grayscale", 0.2), ("blur", 0.4), ("solarize", 0.25)]:
        assert _rate_ok(changed[name], prob), name


# ------------------------------------------------------------------ module contract

def test_multiview_shapes_dtypes_and_small_crops():
    recipe = build_recipe({"name": "byol", "num_small_crops": 3, "small_crop_size": 12}, 32, CIFAR_MEAN, CIFAR_STD)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        views = BatchedMultiView(recipe, generator=_gen(0))(x)
    assert [tuple(v.shape) for v in views] == [(16, 3, 32, 32)] * 2 + [(16, 3, 12, 12)] * 3
    assert all(v.dtype == torch.float32 and v.device == x.device and v.is_contiguous() for v in views)
    assert all(torch.isfinite(v).all() for v in views)
    assert not torch.allclose(views[0], views[1])                     # independent draws per view
    with torch.inference_mode():
        assert len(BatchedMultiView(recipe)(x)) == 5


def test_seeded_generator_reproduces_and_seeds_differ():
    recipe = build_recipe({"name": "simclr", "num_small_crops": 2}, 32, CIFAR_MEAN, CIFAR_STD)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    a, b, c = (BatchedMultiView(recipe, generator=_gen(s))(x) for s in (1, 1, 2))
    assert all(torch.equal(u, w) for u, w in zip(a, b))
    assert not torch.equal(a[0], c[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu_for_the_same_seed():
    recipe = build_recipe({"name": "byol", "num_small_crops": 2}, 32, CIFAR_MEAN, CIFAR_STD)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    cpu = BatchedMultiView(recipe, generator=_gen(9))(x)
    gpu = BatchedMultiView(recipe, generator=_gen(9)).cuda()(x.cuda())
    for u, w in zip(cpu, gpu):
        assert w.device.type == "cuda" and w.dtype == torch.float32
        assert (u - w.cpu()).abs().max() < 1e-3     # TF32 matmuls on the GPU
