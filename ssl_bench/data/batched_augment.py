"""Batched multi-view augmentation on any device: the per-image recipe of ``per_image.py``, for a
whole uint8 batch at once, with independent random parameters per sample.

Each view follows the SimCLR / BYOL augmentation (Chen et al., 2020, Appendix A; Grill et al.,
2020, Table 6) exactly as torchvision's per-image pipeline parameterises it:

1. RandomResizedCrop(size, scale, ratio): torchvision's sampler (10 tries of area ~ U(scale) x HW
   and log-aspect ~ U(log ratio), first box that fits, else its central fallback), bilinear resize
   with ``antialias`` (default True, like the per-image pipeline);
2. horizontal flip with ``hflip_prob`` (folded into the resize);
3. with ``jitter_prob``: ColorJitter, factors ~ U(torchvision's ranges: ``[max(0, 1 - b), 1 + b]``
   for brightness / contrast / saturation, ``[-h, h]`` for hue; a zero strength skips the op), in a
   random order drawn PER SAMPLE, as torchvision draws ``randperm(4)`` per image;
4. grayscale with ``grayscale_prob``; 5. Gaussian blur with ``blur_prob``, kernel
   ``blur_kernel_size``, sigma ~ U(blur_sigma); with RandAugment on (``randaug_num_ops``,
   ``randaugment.py``; InfoMin's recipe) the order is InfoMin's instead: blur, RandAugment, grayscale;
6. solarise with ``solarize_prob`` at
   ``round(255 * solarize_threshold) / 255`` (torchvision's uint8 threshold);
7. Normalize(mean, std).

One deliberate difference: the per-image pipeline works on uint8 tensors, so torchvision rounds
(resize, blur, hue) or truncates (brightness, contrast, saturation) to uint8 after every op; here
everything after the uint8 input is float32. On the same parameters the two agree to the
quantisation (a few /255 before normalisation); on float input each op equals torchvision's.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from . import batched_ops as ops
from . import randaugment
from .recipes import MultiViewRecipe, ViewAugment

NO_OP = 4  # jitter op code for "nothing at this position" (samples that are not jittered)


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def _bernoulli(n: int, p: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator) < p


def sample_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                      ratio: tuple[float, float], generator: torch.Generator | None = None,
                      attempts: int = 10) -> dict[str, Tensor]:
    """torchvision's RandomResizedCrop box sampler (``make_params``), vectorised over ``n`` samples.

    All ``attempts`` tries are drawn at once; each sample keeps its first box that fits (same
    distribution as torchvision's loop), and samples with none get torchvision's central fallback.
    Returns int64 ``top, left, height, width`` of shape ``(n,)``.
    """
    area = height * width
    target = area * (torch.rand(n, attempts, generator=generator, dtype=torch.float64)
                     * (scale[1] - scale[0]) + scale[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.rand(n, attempts, generator=generator, dtype=torch.float64)
                       * (log_hi - log_lo) + log_lo)
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)      # first try that fits
    found = fits.any(dim=1)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)

    in_ratio = width / height                                     # torchvision's fallback box
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, torch.full_like(w, fw))
    h = torch.where(found, h, torch.full_like(h, fh))
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    top = torch.where(found, (u[:, 0] * (height - h + 1)).floor().long(), torch.full_like(h, (height - fh) // 2))
    left = torch.where(found, (u[:, 1] * (width - w + 1)).floor().long(), torch.full_like(w, (width - fw) // 2))
    return {"top": top, "left": left, "height": h, "width": w}


class BatchedViewAugment(nn.Module):
    """One view's random augmentation (a :class:`ViewAugment`) for a whole batch.

    ``forward(images)`` = ``apply(images, sample_params(B, H, W))``: uint8 ``(B, 3, H, W)`` (or float
    in ``[0, 1]``) on any device -> normalised float32 ``(B, 3, size, size)`` on that device.
    Parameters are drawn on the CPU (from ``generator``, a CPU ``torch.Generator``, if given, else
    torch's global RNG), so a seed gives the same views on every device, and the apply step never
    waits on the device to decide what to skip.
    """

    def __init__(self, view: ViewAugment, generator: torch.Generator | None = None,
                 antialias: bool = True) -> None:
        super().__init__()
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator (parameters are drawn on the CPU), "
                             f"got one on {generator.device}")
        self.view = view
        self.generator = generator
        self.antialias = antialias
        # torchvision's own parsing of the jitter strengths into ranges (None = op skipped).
        jitter = v2.ColorJitter(view.brightness, view.contrast, view.saturation, view.hue)
        self.jitter_ranges = (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)

    def sample_params(self, batch_size: int, height: int, width: int) -> dict[str, Tensor]:
        """Per-sample parameters on the CPU: crop box (``top, left, height, width``), bools
        ``flip, jitter, grayscale, blur, solarize``, jitter factors ``brightness, contrast,
        saturation, hue`` (identity where an op is skipped), ``jitter_order`` ``(B, 4)`` (a random
        permutation of the op codes 0-3 per sample), blur ``sigma`` and, with RandAugment on,
        ``ra_op, ra_level, ra_sign`` ``(B, randaug_num_ops)``."""
        v = self.view
        p = sample_crop_boxes(batch_size, height, width, v.crop_scale, v.crop_ratio, self.generator)
        return {**p, **self.sample_appearance(batch_size)}

    def sample_appearance(self, batch_size: int) -> dict[str, Tensor]:
        """The parameters of :meth:`sample_params` other than the crop box (drawn after it, in this
        order), for views that arrive already cropped (``files_batched.PrecroppedViewAugment``)."""
        v, g, n = self.view, self.generator, batch_size
        p = {"flip": _bernoulli(n, v.hflip_prob, g)}
        p["jitter"] = _bernoulli(n, v.jitter_prob, g)
        for name, rng, neutral in zip(("brightness", "contrast", "saturation", "hue"),
                                      self.jitter_ranges, (1.0, 1.0, 1.0, 0.0)):
            p[name] = torch.full((n,), neutral) if rng is None else _uniform(n, rng[0], rng[1], g)
        p["jitter_order"] = torch.rand(n, 4, generator=g).argsort(dim=1)
        p["grayscale"] = _bernoulli(n, v.grayscale_prob, g)
        p["blur"] = _bernoulli(n, v.blur_prob, g)
        p["sigma"] = _uniform(n, v.blur_sigma[0], v.blur_sigma[1], g)
        p["solarize"] = _bernoulli(n, v.solarize_prob, g)
        if v.randaug_num_ops:           # drawn last: the other recipes' streams stay as they were
            p.update(randaugment.sample_params(n, v.randaug_num_ops, v.randaug_magnitude,
                                               v.randaug_magnitude_std, g, v.randaug_prob))
        return p

    def apply(self, images: Tensor, params: dict[str, Tensor], input_scale: float | None = None) -> Tensor:
        """Apply fixed per-sample ``params`` (as from :meth:`sample_params`) to ``images``.

        ``input_scale`` maps input values to ``[0, 1]``: default ``1/255`` for uint8, else 1. Params
        may live on the CPU (as sampled) or on the images' device; decisions about what to skip are
        taken on a CPU copy, so on a GPU nothing waits for the device."""
        cpu = {k: t.cpu() for k, t in params.items()}
        x = self.crop(images, cpu, input_scale)
        x = self.jitter(x, cpu)
        if self.view.randaug_num_ops:  # InfoMin's order: blur, RandAugment, then grayscale
            x = self.grayscale(self.randaugment(self.blur(x, cpu), cpu), cpu)
        else:  # SimCLR / BYOL's order (the recorded runs' float operations, unchanged)
            x = self.blur(self.grayscale(x, cpu), cpu)
        x = self.solarize(x, cpu)
        return ops.normalize(x, self.view.mean, self.view.std)

    # The stages of :meth:`apply`, in order; each takes float (B, 3, h, w) in [0, 1] and CPU params.

    def crop(self, images: Tensor, p: dict[str, Tensor], input_scale: float | None = None) -> Tensor:
        """Resized crop + horizontal flip; uint8 or float in, float32 in [0, 1] out (convex
        combinations of the input pixels: no clamp needed, up to float rounding)."""
        dev = images.device
        box = [p[k].to(dev, non_blocking=True) for k in ("top", "left", "height", "width")]
        if input_scale is None:
            input_scale = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0
        return ops.resized_crop(images, *box, self.view.size, flip=p["flip"].to(dev, non_blocking=True),
                                antialias=self.antialias, scale=input_scale)

    def jitter(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """ColorJitter on the ``jitter`` samples, each in its own ``jitter_order``: at each of the 4
        positions one batched linear step (brightness / contrast / saturation, per-sample op) and
        the hue on the samples whose op there is hue."""
        if not bool(p["jitter"].any()):
            return x
        dev = x.device
        order = torch.where(p["jitter"].unsqueeze(1), p["jitter_order"], NO_OP)
        factors = torch.stack([p["brightness"], p["contrast"], p["saturation"], torch.ones(len(order))], 1)
        linear_active = [rng is not None for rng in self.jitter_ranges[:3]]
        hue = p["hue"].to(dev, non_blocking=True)
        for k in range(4):
            op = order[:, k]
            if any(linear_active[code] and bool((op == code).any()) for code in range(3)):
                factor = factors.gather(1, op.clamp(max=ops.HUE).unsqueeze(1)).squeeze(1)
                x = ops.jitter_step(x, op.to(dev, non_blocking=True), factor.to(dev, non_blocking=True),
                                    with_contrast=linear_active[ops.CONTRAST] and bool((op == ops.CONTRAST).any()))
            if self.jitter_ranges[3] is not None:
                idx = (op == ops.HUE).nonzero().squeeze(1).to(dev, non_blocking=True)
                if len(idx):
                    x.index_copy_(0, idx, ops.adjust_hue(x.index_select(0, idx), hue.index_select(0, idx)))
        return x

    def grayscale(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        if not bool(p["grayscale"].any()):
            return x
        idx = p["grayscale"].nonzero().squeeze(1).to(x.device, non_blocking=True)
        every = torch.ones(len(idx), dtype=torch.bool, device=x.device)
        return x.index_copy_(0, idx, ops.grayscale(x.index_select(0, idx), every))

    def blur(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        if not bool(p["blur"].any()):
            return x
        idx = p["blur"].nonzero().squeeze(1)
        sigma = p["sigma"][idx].to(x.device, non_blocking=True)
        idx = idx.to(x.device, non_blocking=True)
        return x.index_copy_(0, idx, ops.gaussian_blur(x.index_select(0, idx), self.view.blur_kernel_size, sigma))

    def randaugment(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        if not self.view.randaug_num_ops:
            return x
        return randaugment.randaugment(x, p, self.view.randaug_translate, fill=self.view.mean)

    def solarize(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        if not bool(p["solarize"].any()):
            return x
        idx = p["solarize"].nonzero().squeeze(1).to(x.device, non_blocking=True)
        threshold = torch.full((len(idx),), round(self.view.solarize_threshold * 255) / 255, device=x.device)
        return x.index_copy_(0, idx, ops.solarize(x.index_select(0, idx), threshold))

    def forward(self, images: Tensor) -> Tensor:
        b, _, h, w = images.shape
        return self.apply(images, self.sample_params(b, h, w))


class BatchedMultiView(nn.Module):
    """All views of a :class:`MultiViewRecipe` (2 global views, then small crops) for a batch:
    uint8 ``(B, 3, H, W)`` on any device -> list of normalised float32 ``(B, 3, v.size, v.size)``.
    Drop-in for ``per_image.PerImageMultiView`` applied in a GPU-side ``on_after_batch_transfer``."""

    def __init__(self, recipe: MultiViewRecipe, generator: torch.Generator | None = None,
                 antialias: bool = True) -> None:
        super().__init__()
        self.recipe = recipe
        self.views = nn.ModuleList(BatchedViewAugment(v, generator, antialias) for v in recipe.all_views())

    def forward(self, images: Tensor) -> list[Tensor]:
        b, _, h, w = images.shape
        scale = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0
        x = images.to(torch.float32)       # converted once for all views
        return [view.apply(x, view.sample_params(b, h, w), input_scale=scale) for view in self.views]
