"""The per-image augmentation pipeline (torchvision.transforms.v2), run in DataLoader workers.

This is the pipeline peers use; ssl-bench keeps it for datasets that do not fit in memory and as
the reference that the batched pipeline (``batched_augment.py``) is tested and timed against.
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from . import randaugment as ra
from .recipes import MultiViewRecipe, ViewAugment


class RandAugmentLevels(v2.RandAugment):
    """torchvision's RandAugment with a per-image level ~ N(magnitude, magnitude_std) on timm's 0-10
    scale and a settable translation (InfoMin's ``rand-n2-m10-mstd0.5``); the ops are torchvision's
    own. Draws its parameters with :func:`randaugment.sample_params`, as the batched pipeline does.
    Fills with the mean colour on the uint8 scale (the per-image pipeline is uint8 until ``ToDtype``),
    or with ``fill`` if given."""

    def __init__(self, v: ViewAugment, fill: list[float] | None = None) -> None:
        super().__init__(num_ops=v.randaug_num_ops, fill=fill if fill is not None else [round(255 * m) for m in v.mean])
        self.view = v

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        v = self.view
        h, w = image.shape[-2:]
        p = ra.sample_params(1, v.randaug_num_ops, v.randaug_magnitude, v.randaug_magnitude_std, prob=v.randaug_prob)
        for op, level, sign in zip(p["ra_op"][0].tolist(), p["ra_level"][0], p["ra_sign"][0]):
            magnitude = float(ra.op_magnitude(op, level, sign, h, w, v.randaug_translate))
            image = self._apply_image_or_video_transform(image, ra.OPS[op], magnitude,
                                                         interpolation=self.interpolation, fill=self._fill)
        return image


def _grayscale_blur_randaugment(v: ViewAugment) -> list[v2.Transform]:
    """SimCLR / BYOL's grayscale then blur; with RandAugment on, InfoMin's blur, RandAugment, grayscale
    (as the batched pipeline orders them)."""
    grayscale = v2.RandomGrayscale(v.grayscale_prob)
    blur = v2.RandomApply([v2.GaussianBlur(v.blur_kernel_size, sigma=v.blur_sigma)], p=v.blur_prob)
    return [blur, RandAugmentLevels(v), grayscale] if v.randaug_num_ops else [grayscale, blur]


def view_transform(v: ViewAugment) -> v2.Compose:
    """torchvision transform for one view: uint8 CHW tensor or PIL image in, normalised float out."""
    return v2.Compose([
        v2.ToImage(),
        v2.RandomResizedCrop(v.size, scale=v.crop_scale, ratio=v.crop_ratio, antialias=True),
        v2.RandomHorizontalFlip(v.hflip_prob),
        v2.RandomApply([v2.ColorJitter(v.brightness, v.contrast, v.saturation, v.hue)], p=v.jitter_prob),
        *_grayscale_blur_randaugment(v),
        v2.RandomSolarize(threshold=round(v.solarize_threshold * 255), p=v.solarize_prob),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(v.mean, v.std),
    ])


class PerImageMultiView:
    """Applies each view's transform to one image and returns the list of views."""

    def __init__(self, recipe: MultiViewRecipe) -> None:
        self.transforms = [view_transform(v) for v in recipe.all_views()]

    def __call__(self, image) -> list[torch.Tensor]:
        return [t(image) for t in self.transforms]


def eval_transform(size: int, mean: tuple, std: tuple, resize: int | None = None) -> v2.Compose:
    """Deterministic transform for k-NN / probe features: (resize,) centre crop, normalise."""
    ops = [v2.ToImage()]
    if resize is not None:
        ops += [v2.Resize(resize, antialias=True), v2.CenterCrop(size)]
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(ops)
