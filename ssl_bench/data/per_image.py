"""The per-image augmentation pipeline (torchvision.transforms.v2), run in DataLoader workers.

This is the pipeline peers use; ssl-bench keeps it for datasets that do not fit in memory and as
the reference that the batched pipeline (``batched_augment.py``) is tested and timed against.
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from .recipes import MultiViewRecipe, ViewAugment


def view_transform(v: ViewAugment) -> v2.Compose:
    """torchvision transform for one view: uint8 CHW tensor or PIL image in, normalised float out."""
    return v2.Compose([
        v2.ToImage(),
        v2.RandomResizedCrop(v.size, scale=v.crop_scale, ratio=v.crop_ratio, antialias=True),
        v2.RandomHorizontalFlip(v.hflip_prob),
        v2.RandomApply([v2.ColorJitter(v.brightness, v.contrast, v.saturation, v.hue)], p=v.jitter_prob),
        v2.RandomGrayscale(v.grayscale_prob),
        v2.RandomApply([v2.GaussianBlur(v.blur_kernel_size, sigma=v.blur_sigma)], p=v.blur_prob),
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
