"""The two view families of InfoMin's reverse-U experiments (Tian et al., 2020, Sec. 3.2), on batches.

- Spatial (Fig. 3a): two ``patch x patch`` patches of one image whose corners are ``distance`` pixels
  apart along a random axis (horizontal or vertical), at a random place, in a random order; a small
  distance is a large overlap (much shared information), ``distance >= patch`` no overlap.
- Colour (Fig. 3b): one image in a colour space, its channels split into two views (CMC's L vs ab;
  the paper's spaces: RGB, XYZ, HSV, Lab, Luv, YCbCr, YDbDr ...), each channel standardised.
"""
from __future__ import annotations

import torch
from kornia import color
from torch import Tensor

from ssl_bench.methods.jigsaw import cut_patches

# YDbDr (SECAM): Y = luma; Db, Dr = scaled blue and red differences.
_YDBDR = torch.tensor([[0.299, 0.587, 0.114], [-0.450, -0.883, 1.333], [-1.333, 1.116, 0.217]])


def _ydbdr(rgb: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", _YDBDR.to(rgb), rgb)


#: colour space -> (conversion of RGB in [0, 1], channels of view 1, channels of view 2)
COLOUR_SPLITS = {
    "RGB": (lambda x: x, (0,), (1, 2)),
    "XYZ": (color.rgb_to_xyz, (1,), (0, 2)),
    "HSV": (color.rgb_to_hsv, (0,), (1, 2)),       # hue (radians) vs saturation, value
    "Lab": (color.rgb_to_lab, (0,), (1, 2)),
    "Luv": (color.rgb_to_luv, (0,), (1, 2)),
    "YCbCr": (color.rgb_to_ycbcr, (0,), (1, 2)),
    "YDbDr": (_ydbdr, (0,), (1, 2)),
}


def spatial_pair(images: Tensor, patch: int, distance: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two patches per image, ``distance`` px apart (see the module docstring)."""
    b, _, h, w = images.shape
    if patch + distance > min(h, w):
        raise ValueError(f"patches of {patch} px {distance} px apart do not fit a {h}x{w} image")
    along = torch.randint(2, (b,), generator=generator).bool()            # True: vertical offset
    lo = torch.randint(min(h, w) - patch - distance + 1, (b,), generator=generator)
    across = torch.randint(min(h, w) - patch + 1, (b,), generator=generator)
    top1, left1 = torch.where(along, lo, across), torch.where(along, across, lo)
    top2, left2 = top1 + along * distance, left1 + (~along) * distance
    swap = torch.randint(2, (b,), generator=generator).bool()
    t1, t2 = torch.where(swap, top2, top1), torch.where(swap, top1, top2)
    l1, l2 = torch.where(swap, left2, left1), torch.where(swap, left1, left2)
    return (cut_patches(images, t1.unsqueeze(1), l1.unsqueeze(1), patch),
            cut_patches(images, t2.unsqueeze(1), l2.unsqueeze(1), patch))


class ColourSplit:
    """An RGB batch in [0, 1] -> the two channel views of ``space``, standardised with statistics
    measured once on ``reference`` images."""

    def __init__(self, space: str, reference: Tensor) -> None:
        self.convert, self.channels1, self.channels2 = COLOUR_SPLITS[space]
        converted = self.convert(reference)
        self.mean = converted.mean(dim=(0, 2, 3), keepdim=True)
        self.std = converted.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-6)

    def __call__(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        x = (self.convert(rgb) - self.mean) / self.std
        return x[:, list(self.channels1)], x[:, list(self.channels2)]
