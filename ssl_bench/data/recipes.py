"""Augmentation recipes: one dataclass per view, shared by the per-image and batched pipelines.

Parameter names and defaults follow torchvision's transforms (RandomResizedCrop scale/ratio,
ColorJitter brightness/contrast/saturation/hue, ...), so a recipe reads the same in either pipeline.

Named recipes:
- ``simclr``: SimCLR (Chen et al., 2020, Appendix A): crop (0.08, 1), flip, colour jitter
  (0.8*s, 0.8*s, 0.8*s, 0.2*s) with s=0.5 on CIFAR (p=0.8), grayscale p=0.2, blur p=0.5 on
  ImageNet-sized images only (SimCLR drops blur on CIFAR-10, Appendix B.9).
- ``byol``: BYOL (Grill et al., 2020, Table 6): jitter (0.4, 0.4, 0.2, 0.1) p=0.8, grayscale p=0.2,
  asymmetric blur p=(1.0, 0.1) and solarisation p=(0.0, 0.2). On CIFAR-sized images the blur is off
  for both views (the usual CIFAR adaptation, e.g. the solo-learn CIFAR configs).
- ``infomin``: InfoMin (Tian et al., 2020, Sec. 5 and its official ``aug: D`` code): crop (0.2, 1),
  flip, jitter (0.8, 0.8, 0.8, 0.2) p=0.8, blur p=0.5, RandAugment (2 ops, level 10 of 10, level std
  0.5, each op run with p=0.5 as timm's ``rand-n2-m10-mstd0.5``, translation up to 0.45 of the side,
  fill = the mean colour), grayscale p=0.2. On CIFAR-sized
  images the blur is off (the project's CIFAR adaptation, as for ``simclr``); ``blur_prob`` overrides it.
- ``weak``: ReSSL (Zheng et al., 2021, Sec. 3.3): view 0 is the weak view the teacher sees (random
  resized crop and flip only), view 1 the strong view the student sees (MoCo v2's augmentations:
  jitter (0.4, 0.4, 0.4, 0.1) p=0.8, grayscale p=0.2, blur p=0.5 on ImageNet-sized images only).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SMALL_IMAGE_SIZE = 64  # images up to this size get the CIFAR adaptations (no blur)


@dataclass(frozen=True)
class ViewAugment:
    """Random augmentation of one view; probabilities are per sample."""

    size: int = 32
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: float = 0.0
    solarize_threshold: float = 0.5  # on images scaled to [0, 1]
    # RandAugment after the blur, before grayscale (randaugment.py; 0 ops = off): level on timm's
    # 0-10 scale, its per-sample Gaussian noise, the probability that a step runs (timm: 0.5,
    # torchvision: 1) and the translation at level 10 as a fraction of the side.
    randaug_num_ops: int = 0
    randaug_magnitude: float = 10.0
    randaug_magnitude_std: float = 0.0
    randaug_prob: float = 1.0
    randaug_translate: float = 150 / 331   # torchvision's constant; InfoMin uses 0.45
    mean: tuple[float, float, float] = CIFAR_MEAN
    std: tuple[float, float, float] = CIFAR_STD

    @property
    def blur_kernel_size(self) -> int:
        """SimCLR's Gaussian kernel: about 10% of the image side, odd."""
        k = max(3, int(round(0.1 * self.size)))
        return k if k % 2 == 1 else k + 1


@dataclass(frozen=True)
class MultiViewRecipe:
    """The global views (usually 2, each with its own ViewAugment) plus optional small crops."""

    views: tuple[ViewAugment, ...]
    num_small_crops: int = 0
    small_crop: ViewAugment | None = None

    @property
    def num_views(self) -> int:
        return len(self.views) + self.num_small_crops

    def all_views(self) -> list[ViewAugment]:
        small = [self.small_crop] * self.num_small_crops if self.small_crop else []
        return list(self.views) + small


def view_augment(kind: str, size: int, mean: tuple, std: tuple) -> ViewAugment:
    """One view for training on labels (SCAN's stages, supervised fine-tuning): ``weak`` is a
    resized crop (0.5-1) + flip (SCAN's "standard" augmentation); ``strong`` the SimCLR CIFAR view
    (crop 0.2-1, colour jitter 0.4/0.4/0.4/0.1 p=0.8, grayscale p=0.2)."""
    if kind == "weak":
        return ViewAugment(size=size, crop_scale=(0.5, 1.0), jitter_prob=0.0, grayscale_prob=0.0,
                           mean=tuple(mean), std=tuple(std))
    return ViewAugment(size=size, crop_scale=(0.2, 1.0), brightness=0.4, contrast=0.4, saturation=0.4,
                       hue=0.1, mean=tuple(mean), std=tuple(std))


def _simclr(size: int, **kw: Any) -> MultiViewRecipe:
    s = 0.5 if size <= SMALL_IMAGE_SIZE else 1.0
    view = ViewAugment(size=size, brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s,
                       hue=0.2 * s, blur_prob=0.0 if size <= SMALL_IMAGE_SIZE else 0.5)
    return MultiViewRecipe(views=(replace(view, **kw),) * 2)


def _byol(size: int, **kw: Any) -> MultiViewRecipe:
    small = size <= SMALL_IMAGE_SIZE
    base = ViewAugment(size=size, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
    v1 = replace(base, blur_prob=0.0 if small else 1.0, solarize_prob=0.0, **kw)
    v2 = replace(base, blur_prob=0.0 if small else 0.1, solarize_prob=0.2, **kw)
    return MultiViewRecipe(views=(v1, v2))


def _weak(size: int, **kw: Any) -> MultiViewRecipe:
    strong = ViewAugment(size=size, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
                         blur_prob=0.0 if size <= SMALL_IMAGE_SIZE else 0.5)
    weak = replace(strong, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
    return MultiViewRecipe(views=(replace(weak, **kw), replace(strong, **kw)))


def _infomin(size: int, **kw: Any) -> MultiViewRecipe:
    view = ViewAugment(size=size, crop_scale=(0.2, 1.0), brightness=0.8, contrast=0.8, saturation=0.8,
                       hue=0.2, blur_prob=0.0 if size <= SMALL_IMAGE_SIZE else 0.5, randaug_num_ops=2,
                       randaug_magnitude=10.0, randaug_magnitude_std=0.5, randaug_prob=0.5,
                       randaug_translate=0.45)
    return MultiViewRecipe(views=(replace(view, **kw),) * 2)


RECIPES = {"simclr": _simclr, "byol": _byol, "weak": _weak, "infomin": _infomin}
VIEW_KEYS = {f.name for f in fields(ViewAugment)}
RECIPE_KEYS = {"name", "num_small_crops", "small_crop_size", "small_crop_scale"}


def build_recipe(cfg: dict[str, Any] | None, size: int, mean: tuple, std: tuple) -> MultiViewRecipe:
    """Recipe from a config dict: ``{name: byol, crop_scale: [0.2, 1.0], num_small_crops: 6, ...}``.

    Keys other than ``name`` and the small-crop keys override every global view's field.
    """
    cfg = dict(cfg or {})
    name = cfg.pop("name", "simclr")
    if name not in RECIPES:
        raise ValueError(f"unknown augmentation recipe '{name}'; known: {', '.join(sorted(RECIPES))}")
    unknown = set(cfg) - VIEW_KEYS - RECIPE_KEYS
    if unknown:
        raise ValueError(f"unknown augmentation key(s) {sorted(unknown)}; "
                         f"allowed: {sorted(VIEW_KEYS | RECIPE_KEYS - {'name'})}")
    n_small = int(cfg.pop("num_small_crops", 0))
    small_size = int(cfg.pop("small_crop_size", max(8, size * 96 // 224)))
    small_scale = tuple(cfg.pop("small_crop_scale", (0.05, 0.14)))
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    overrides.setdefault("mean", tuple(mean))
    overrides.setdefault("std", tuple(std))
    recipe = RECIPES[name](size, **overrides)
    if n_small:
        small = replace(recipe.views[0], size=small_size, crop_scale=small_scale, blur_prob=0.0)
        recipe = replace(recipe, num_small_crops=n_small, small_crop=small)
    return recipe


def recipe_to_dict(recipe: MultiViewRecipe) -> dict[str, Any]:
    return asdict(recipe)
