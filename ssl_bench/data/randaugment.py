"""RandAugment (Cubuk et al., 2020) as batched per-sample ops, with InfoMin's magnitude noise.

Op set, op order and magnitudes are torchvision's ``v2.RandAugment`` (its ``_AUGMENTATION_SPACE``):
each of ``num_ops`` steps picks one of the 14 ops uniformly and, for a signed op, a sign with
probability 1/2. The strength is a *level* on timm's 0-10 scale (the scale of InfoMin's
``rand-n2-m10-mstd0.5``, Tian et al., 2020, Sec. 5 / official code): level ``L`` gives
``L / 10`` of torchvision's maximum (shear 0.3, translation ``translate`` x side, rotation 30 deg,
enhancement factors ``1 +- 0.9``, posterize to ``round(8 - 0.4 L)`` bits, solarize at ``1 - L/10``).
So at an integer level and ``magnitude_std = 0`` a step is exactly torchvision's
``RandAugment(num_ops, magnitude=L, num_magnitude_bins=11)`` (with ``translate = 150/331``, its
constant); ``magnitude_std > 0`` draws the level per sample and step from ``N(L, std)`` clipped
to ``[0, 10]`` (timm's ``mstd``), and ``prob < 1`` runs each step with that probability (timm's
``AugmentOp`` default 0.5). Geometric ops use nearest interpolation, like torchvision's default,
and fill with ``fill`` (InfoMin fills with the dataset mean colour).

Every op takes a float batch ``(B, 3, H, W)`` in ``[0, 1]`` and per-sample tensors ``(B,)``, and
equals the ``torchvision.transforms.v2.functional`` op on each image (tests check this). Loops run
over the steps and the 14 op codes, never over samples.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from . import batched_ops as ops

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
       "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
(IDENTITY, SHEAR_X, SHEAR_Y, TRANSLATE_X, TRANSLATE_Y, ROTATE, BRIGHTNESS, COLOR, CONTRAST, SHARPNESS,
 POSTERIZE, SOLARIZE, AUTOCONTRAST, EQUALIZE) = range(len(OPS))
SIGNED = frozenset({SHEAR_X, SHEAR_Y, TRANSLATE_X, TRANSLATE_Y, ROTATE, BRIGHTNESS, COLOR, CONTRAST, SHARPNESS})
MAX_LEVEL = 10.0
TORCHVISION_TRANSLATE = 150.0 / 331.0  # torchvision's translation at full strength, as a fraction of the side


def sample_params(n: int, num_ops: int, magnitude: float, magnitude_std: float = 0.0,
                  generator: torch.Generator | None = None, prob: float = 1.0) -> dict[str, Tensor]:
    """Per-sample, per-step parameters on the CPU: ``ra_op`` (int64 op code), ``ra_level`` (level in
    ``[0, 10]``) and ``ra_sign`` (+-1; -1 with probability 1/2 as torchvision's ``rand() <= 0.5``),
    each ``(n, num_ops)``. With ``prob < 1`` each step runs with probability ``prob`` and is the
    identity otherwise (timm's ``AugmentOp(prob=0.5)``, which InfoMin's ``rand-n2-m10-mstd0.5`` uses;
    torchvision always runs its ops)."""
    op = torch.randint(len(OPS), (n, num_ops), generator=generator)
    sign = torch.where(torch.rand(n, num_ops, generator=generator) <= 0.5, -1.0, 1.0)
    level = torch.full((n, num_ops), float(magnitude))
    if magnitude_std > 0:
        level = (level + magnitude_std * torch.randn(n, num_ops, generator=generator)).clamp(0.0, MAX_LEVEL)
    if prob < 1.0:
        op = torch.where(torch.rand(n, num_ops, generator=generator) < prob, op, IDENTITY)
    return {"ra_op": op, "ra_level": level, "ra_sign": sign}


def op_magnitude(op: int, level: Tensor, sign: Tensor, height: int, width: int,
                 translate: float = TORCHVISION_TRANSLATE) -> Tensor:
    """The value torchvision passes to op ``op`` (its ``magnitude``) at ``level`` with ``sign``."""
    frac = level.to(torch.float64) / MAX_LEVEL
    top = {SHEAR_X: 0.3, SHEAR_Y: 0.3, TRANSLATE_X: translate * width, TRANSLATE_Y: translate * height,
           ROTATE: 30.0, BRIGHTNESS: 0.9, COLOR: 0.9, CONTRAST: 0.9, SHARPNESS: 0.9}
    if op in top:
        return frac * top[op] * sign.to(torch.float64)
    if op == POSTERIZE:
        return torch.floor(8.0 - 4.0 * frac + 0.5)
    if op == SOLARIZE:
        return 1.0 - frac
    return torch.zeros_like(frac)


# ------------------------------------------------------------------------------ geometry

def inverse_affine_matrix(angle: Tensor, translate: Tensor, shear: Tensor, center: Tensor) -> Tensor:
    """torchvision's ``_get_inverse_affine_matrix`` (scale 1) per sample, in float64: the ``(B, 2, 3)``
    map from output to input pixel coordinates (origin at the image centre). ``angle`` and ``shear``
    ``(B, 2)`` in degrees; ``translate`` and ``center`` ``(B, 2)`` in pixels."""
    rot = torch.deg2rad(angle.to(torch.float64))
    sx, sy = torch.deg2rad(shear.to(torch.float64)).unbind(1)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    lin = torch.stack([torch.stack([d, -b], 1), torch.stack([-c, a], 1)], 1)        # (B, 2, 2)
    cxy = center.to(torch.float64)
    shift = (lin @ (-cxy - translate.to(torch.float64)).unsqueeze(2)).squeeze(2) + cxy
    return torch.cat([lin, shift.unsqueeze(2)], dim=2)


def warp(images: Tensor, matrix: Tensor, fill: Sequence[float]) -> Tensor:
    """torchvision's affine grid transform (nearest, output size = input size) with a per-sample
    inverse ``matrix`` ``(B, 2, 3)``; pixels mapped from outside the image get ``fill``."""
    b, c, h, w = images.shape
    dev, dt = images.device, images.dtype
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=dev)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, device=dev)
    base = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w), torch.ones(h, w, device=dev)], -1)
    theta = matrix.to(dt).transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=dt, device=dev)
    grid = base.view(1, h * w, 3).expand(b, -1, -1).bmm(theta).view(b, h, w, 2)
    x = torch.cat([images, torch.ones(b, 1, h, w, dtype=dt, device=dev)], dim=1)
    x = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    out, mask = x[:, :c], x[:, c:]
    fill_img = torch.tensor(list(fill), dtype=dt, device=dev).view(1, -1, 1, 1)
    return torch.where(mask < 0.5, fill_img.expand_as(out), out)


def geometric(images: Tensor, op: int, magnitude: Tensor, fill: Sequence[float]) -> Tensor:
    """ShearX/Y, TranslateX/Y or Rotate with one magnitude per sample, with the arguments
    torchvision's RandAugment passes to ``affine`` / ``rotate`` (shears about the top-left corner,
    shear angle ``atan(magnitude)``, translations truncated to whole pixels, rotation about the centre)."""
    n, _, h, w = images.shape
    m = magnitude.to(torch.float64).cpu()
    angle = torch.zeros(n, dtype=torch.float64)
    translate, shear, center = (torch.zeros(n, 2, dtype=torch.float64) for _ in range(3))
    if op in (SHEAR_X, SHEAR_Y):
        shear[:, op - SHEAR_X] = torch.rad2deg(torch.atan(m))
        center[:] = torch.tensor([-0.5 * w, -0.5 * h], dtype=torch.float64)     # center=[0, 0] in pixels
    elif op in (TRANSLATE_X, TRANSLATE_Y):
        translate[:, op - TRANSLATE_X] = torch.trunc(m)
    elif op == ROTATE:
        angle = -m                                      # rotate() passes -angle to the affine matrix
    else:
        raise ValueError(f"{OPS[op]} is not a geometric op")
    return warp(images, inverse_affine_matrix(angle, translate, shear, center).to(images.device), fill)


# ------------------------------------------------------------------------------ colour

def adjust_sharpness(images: Tensor, factor: Tensor) -> Tensor:
    """torchvision adjust_sharpness per sample: the interior blends towards the 3x3 smoothing
    ``[[1,1,1],[1,5,1],[1,1,1]] / 13`` by ``1 - factor`` (border pixels kept), then clamps."""
    b, c, h, w = images.shape
    if h <= 2 or w <= 2:
        return images
    a, k = 1.0 / 13.0, 5.0 / 13.0
    kernel = torch.tensor([[a, a, a], [a, k, a], [a, a, a]], dtype=images.dtype, device=images.device)
    blurred = F.conv2d(images, kernel.expand(c, 1, 3, 3), groups=c)
    out = images.clone()
    inner = out[..., 1:-1, 1:-1]
    inner.add_((blurred - inner) * (1.0 - factor.to(images.dtype)).view(-1, 1, 1, 1))
    return out.clamp_(0.0, 1.0)


def posterize(images: Tensor, bits: Tensor) -> Tensor:
    """torchvision posterize on float images, ``bits`` per sample: ``floor(x 2^bits) / 2^bits``, clamped."""
    levels = torch.pow(2.0, bits.to(images.dtype)).view(-1, 1, 1, 1)
    return torch.minimum((images * levels).floor_(), levels - 1).clamp_(min=0.0).div_(levels)


def apply_op(images: Tensor, op: int, magnitude: Tensor, fill: Sequence[float]) -> Tensor:
    """One RandAugment op (code ``op``) on every image, with per-sample ``magnitude`` as from
    :func:`op_magnitude`."""
    mag = magnitude.to(images.device, torch.float32)
    if op == IDENTITY:
        return images
    if op in (SHEAR_X, SHEAR_Y, TRANSLATE_X, TRANSLATE_Y, ROTATE):
        return geometric(images, op, magnitude, fill)
    if op == BRIGHTNESS:
        return ops.adjust_brightness(images, 1.0 + mag)
    if op == COLOR:
        return ops.adjust_saturation(images, 1.0 + mag)
    if op == CONTRAST:
        return ops.adjust_contrast(images, 1.0 + mag)
    if op == SHARPNESS:
        return adjust_sharpness(images, 1.0 + mag)
    if op == POSTERIZE:
        return posterize(images, mag)
    if op == SOLARIZE:
        return ops.solarize(images, mag)
    if op == AUTOCONTRAST:
        return TF.autocontrast(images)            # torchvision's kernel is per image and channel already
    if op == EQUALIZE:
        return TF.equalize(images)                # likewise (a per-image uint8 histogram)
    raise ValueError(f"unknown RandAugment op code {op}")


def randaugment(images: Tensor, params: dict[str, Tensor], translate: float, fill: Sequence[float]) -> Tensor:
    """Apply the sampled steps (``params`` from :func:`sample_params`, on the CPU) to ``images``, in
    place (like the pipeline's other stages): at each step, each op code runs once on the samples
    that drew it."""
    _, _, h, w = images.shape
    op_all, level_all, sign_all = params["ra_op"], params["ra_level"], params["ra_sign"]
    for k in range(op_all.shape[1]):
        for code in op_all[:, k].unique().tolist():
            if code == IDENTITY:
                continue
            sel = (op_all[:, k] == code).nonzero().squeeze(1)
            mag = op_magnitude(code, level_all[sel, k], sign_all[sel, k], h, w, translate)
            idx = sel.to(images.device, non_blocking=True)
            images.index_copy_(0, idx, apply_op(images.index_select(0, idx), code, mag, fill))
    return images

