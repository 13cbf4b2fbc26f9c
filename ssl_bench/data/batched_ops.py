"""Batched image ops with one parameter per sample, for the on-device augmentation pipeline.

Every op takes a float batch ``(B, 3, H, W)`` with values in ``[0, 1]`` and per-sample parameters
as tensors of shape ``(B,)``, and computes what the matching ``torchvision.transforms.v2.functional``
op computes on each float image with that sample's parameter (tests check this to 1e-5). Loops run
over the few steps of a recipe, never over samples.

Timings quoted below: ms per batch of 512 CIFAR images (3x32x32), BYOL's second view, one torch
thread on the 2-core CPU in a quiet window, median of 5 (``benchmarks/augment_throughput.py --ops
--threads 1``; the table is in ``benchmarks/RESULTS.md``). They are why an op is written here instead of
taken from ``kornia.augmentation`` (which also differs from torchvision's semantics where noted);
where kornia was as fast and matched torchvision it is used (``gaussian_blur``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from kornia.filters import gaussian_blur2d
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

# ITU-R 601-2 luma weights exactly as torchvision's rgb_to_grayscale (kornia uses 0.299, not 0.2989).
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)

# Jitter op codes, in torchvision's ColorJitter order (its ``fn_idx`` values).
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


def _col(t: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) for broadcasting over an image batch."""
    return t.reshape(-1, 1, 1, 1)


# --------------------------------------------------------------------------------------------
# Geometry: resized crop (+ horizontal flip) as two per-sample interpolation matrices.
# Measured: box sampling + crop + flip 4.7 ms vs 17.1 ms for kornia's RandomResizedCrop (13.7;
# it also samples boxes with its own procedure, warps with grid_sample and has no antialiasing)
# + RandomHorizontalFlip (1.7; free here: the flip is folded into the x matrix).
# --------------------------------------------------------------------------------------------

def interp_matrix(start: Tensor, length: Tensor, in_size: int, out_size: int, antialias: bool = True,
                  flip: Tensor | None = None, gain: float = 1.0) -> Tensor:
    """Per-sample 1-D resampling matrices ``(B, out_size, in_size)`` of a crop, as torch resizes it.

    Row ``i`` holds the weights with which ``F.interpolate(mode="bilinear", align_corners=False)``
    mixes the crop pixels ``[start, start + length)`` into output pixel ``i``: a triangle filter
    centred at ``start + scale * (i + 0.5)`` in pixel-edge coordinates, ``scale = length / out_size``,
    of half-width ``max(scale, 1)`` when ``antialias`` (torch's ``_upsample_bilinear2d_aa``, i.e.
    PIL's filter support) or ``1`` without, restricted to the crop and renormalised. Renormalising
    at the crop border is exactly torch's clamping of source coordinates to the crop. Rows come in
    reverse order where ``flip`` (a horizontal flip of the output), and sum to ``gain``.
    """
    start = start.to(torch.float32).reshape(-1, 1, 1)
    length = length.to(torch.float32).reshape(-1, 1, 1)
    dev = start.device
    scale = length / out_size
    out_idx = torch.arange(out_size, device=dev, dtype=torch.float32).view(1, -1, 1)
    if flip is not None:                                   # i -> out_size - 1 - i on flipped samples
        out_idx = out_idx + flip.to(torch.float32).view(-1, 1, 1) * (out_size - 1 - 2 * out_idx)
    centre = start + scale * (out_idx + 0.5)
    pix = torch.arange(in_size, device=dev, dtype=torch.float32).view(1, 1, -1) + 0.5
    support = scale.clamp(min=1.0) if antialias else torch.ones_like(scale)
    inside = ((pix > start) & (pix < start + length)).to(torch.float32)          # (B, 1, in_size)
    w = (pix - centre).abs_().div_(support).neg_().add_(1.0).clamp_(min=0.0).mul_(inside)
    total = w.sum(dim=2, keepdim=True)
    return w.div_(total if gain == 1.0 else total.div_(gain))


def resized_crop(images: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor,
                 size: int, flip: Tensor | None = None, antialias: bool = True,
                 scale: float = 1.0) -> Tensor:
    """Crop box ``(top, left, height, width)`` of each image, resize it to ``size x size`` (bilinear),
    optionally mirror it (``flip``: bool ``(B,)``) and multiply by ``scale`` (``1/255`` for uint8 in).

    Equals ``torchvision.transforms.v2.functional.resized_crop(img, top, left, height, width,
    [size, size], antialias=antialias)`` (then ``hflip``) per sample, computed for the whole batch as
    ``Wy @ img @ Wx^T`` with the matrices of :func:`interp_matrix`. Boxes must lie inside the image.
    """
    b, c, h, w = images.shape
    wy = interp_matrix(top, height, h, size, antialias, gain=scale)
    wx = interp_matrix(left, width, w, size, antialias, flip=flip)
    x = images.to(torch.float32).reshape(b, c * h, w)
    x = torch.bmm(x, wx.transpose(1, 2)).view(b * c, h, size)    # resample columns
    wy = wy.unsqueeze(1).expand(b, c, size, h).reshape(b * c, size, h)
    return torch.bmm(wy, x).view(b, c, size, size)                # resample rows


# --------------------------------------------------------------------------------------------
# Colour. Brightness, contrast, saturation and grayscale are each "per-sample 3x3 colour matrix
# plus bias, then clamp": one bmm per step for the whole batch. Hue is a vectorised hexcone hue
# rotation. Measured: ColorJitter p=0.8 13.2 ms vs 51.1 ms for kornia.augmentation.ColorJitter
# (which also draws one op order per batch, not per image); RandomGrayscale p=0.2 0.4 vs 2.3 ms.
# --------------------------------------------------------------------------------------------

def _gray_weights(device: torch.device) -> Tensor:
    return torch.tensor(GRAY_WEIGHTS, device=device, dtype=torch.float32)


def color_affine(images: Tensor, matrix: Tensor, bias: Tensor | None = None, clamp: bool = True) -> Tensor:
    """``clamp(matrix[b] @ rgb + bias[b], 0, 1)`` at every pixel: matrix ``(B, 3, 3)``, bias ``(B, 3)``."""
    b, c, h, w = images.shape
    out = torch.bmm(matrix, images.reshape(b, c, h * w)).view(b, c, h, w)
    if bias is not None:        # in place: baddbmm would materialise the broadcast bias (a full copy)
        out.add_(bias.view(b, c, 1, 1))
    return out.clamp_(0.0, 1.0) if clamp else out


def jitter_step(images: Tensor, op: Tensor, factor: Tensor, with_contrast: bool | None = None) -> Tensor:
    """One ColorJitter position: sample ``b`` gets brightness, contrast or saturation (``op[b]`` in
    0, 1, 2) with ``factor[b]``; any other op code (hue, or "not jittered") leaves it unchanged.

    torchvision's float formulas (v2.functional.adjust_*): brightness ``clamp(f x)``; contrast
    ``clamp(f x + (1 - f) mean(gray(x)))``; saturation ``clamp(f x + (1 - f) gray(x))``, with
    ``gray`` the luma of :data:`GRAY_WEIGHTS`. All three are ``clamp(M x + c)`` with
    ``M = f I + (1 - f) [op is saturation] 1 w^T`` and ``c = (1 - f) [op is contrast] mean(gray(x))``.
    ``with_contrast``: whether any sample does contrast (saves the mean when not); None = look
    (a device sync on a GPU, which callers avoid by deciding on CPU parameters).
    """
    dev = images.device
    wts = _gray_weights(dev)
    f = torch.where(op <= SATURATION, factor.to(torch.float32), torch.ones_like(factor, dtype=torch.float32))
    eye = torch.eye(3, device=dev).expand(len(f), 3, 3)
    sat = ((op == SATURATION).float() * (1.0 - f)).view(-1, 1, 1)
    matrix = f.view(-1, 1, 1) * eye + sat * wts.view(1, 1, 3).expand(len(f), 3, 3)
    bias = None
    is_contrast = op == CONTRAST
    if with_contrast if with_contrast is not None else bool(is_contrast.any()):
        mean_gray = images.mean(dim=(2, 3)) @ wts                       # (B,)
        bias = ((1.0 - f) * is_contrast.float() * mean_gray).unsqueeze(1).expand(-1, 3)
    return color_affine(images, matrix, bias)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """torchvision adjust_brightness with one factor per sample."""
    return jitter_step(images, torch.full_like(factor, BRIGHTNESS, dtype=torch.long), factor)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """torchvision adjust_contrast with one factor per sample."""
    return jitter_step(images, torch.full_like(factor, CONTRAST, dtype=torch.long), factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """torchvision adjust_saturation with one factor per sample."""
    return jitter_step(images, torch.full_like(factor, SATURATION, dtype=torch.long), factor)


def adjust_hue(images: Tensor, factor: Tensor) -> Tensor:
    """torchvision adjust_hue with one factor per sample (in turns, ``[-0.5, 0.5]``).

    torchvision converts RGB to HSV (PIL's hexcone formulas), adds the factor to H modulo 1 and
    converts back with S and V unchanged. Since ``V = max`` and ``V S = max - min = chroma``, the
    round trip is, per channel with primary hue ``p`` in (0, 2, 4) sextants for (R, G, B):
    ``out = min + chroma * clamp(2 - d, 0, 1)``, ``d`` the circular distance between the new hue
    (in sextants) and ``p``. H uses torchvision's branches (max == R first, then G), selected
    arithmetically: ``torch.where`` and bool masks are ~10x slower than arithmetic on this CPU.
    Measured (one thread, CPU time, 410 images): 6.3 ms vs 21-27 ms for the same per-sample hue
    written with torchvision's ``where`` / select-table formulas.
    """
    r, g, b = images.unbind(dim=1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    chroma = maxc - minc
    not_r = torch.sign(maxc - r)                      # 0 where R is the max
    not_g = torch.sign(maxc - g)                      # 0 where G is a max
    # hue in sextants, chroma * (R branch, else G branch, else B branch); chroma 0: any hue, out = min
    num = torch.lerp(g - b, torch.lerp((b - r).add_(chroma, alpha=2.0), (r - g).add_(chroma, alpha=4.0), not_g),
                     not_r)
    h = num.div_(chroma.clamp(min=1e-12))
    h.add_(6.0 * _col(factor.to(images.dtype)).squeeze(1))
    h.sub_(torch.floor(h * (1.0 / 6.0)).mul_(6.0))   # wrap to [0, 6)
    p = torch.tensor([0.0, 2.0, 4.0], device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    # clamp(2 - d, 0, 1) = clamp(|e - 3|, 1, 2) - 1 with e = |h - p| in [0, 6), d = min(e, 6 - e)
    ramp = (h.unsqueeze(1) - p).abs_().sub_(3.0).abs_().clamp_(1.0, 2.0)
    return ramp.mul_(chroma.unsqueeze(1)).add_((minc - chroma).unsqueeze(1))


def grayscale(images: Tensor, apply: Tensor) -> Tensor:
    """torchvision rgb_to_grayscale(num_output_channels=3) on samples where ``apply``; others as is."""
    n = len(apply)
    rows = _gray_weights(images.device).view(1, 1, 3).expand(n, 3, 3)
    eye = torch.eye(3, device=images.device).expand(n, 3, 3)
    matrix = torch.where(apply.view(-1, 1, 1), rows, eye)
    return color_affine(images, matrix, clamp=False)


def solarize(images: Tensor, threshold: Tensor) -> Tensor:
    """torchvision solarize: invert pixels ``>= threshold[b]``; ``threshold > 1`` leaves a sample as is.

    Written as ``|[x >= t] - x|`` (exact) with ``[x >= t] = min(sign(x - t) + 1, 1)``, since bool
    ops and ``torch.where`` are slow on this CPU. Measured (p=0.2, on the selected samples):
    1.1 ms vs 11.2 ms for kornia.augmentation.RandomSolarize.
    """
    step = torch.sign(images - _col(threshold.to(images.dtype))).add_(1.0).clamp_(max=1.0)  # [x >= t]
    return step.sub_(images).abs_()


def gaussian_blur(images: Tensor, kernel_size: int, sigma: Tensor) -> Tensor:
    """torchvision gaussian_blur (reflect padding) with one sigma per sample: kornia's
    ``filters.gaussian_blur2d`` with a ``(B, 2)`` sigma, which uses the same kernel
    ``exp(-n^2 / 2 sigma^2)`` (normalised) and border. Measured (p=1, 3x3): 5.0 ms vs 5.3 ms for
    kornia.augmentation.RandomGaussianBlur, so not rewritten (and off at CIFAR size anyway).
    """
    sig = sigma.to(images.dtype).view(-1, 1).expand(-1, 2)
    return gaussian_blur2d(images, (kernel_size, kernel_size), sig, border_type="reflect")


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """torchvision's ``normalize`` (``(x - mean) / std`` per channel), in place on the batch.
    Measured: 0.36 ms (2 threads) vs 0.98 ms for a one-pass ``addcmul(..., out=x)`` and 3.4 ms for
    kornia.augmentation.Normalize."""
    return TF.normalize(images, list(mean), list(std), inplace=True)
