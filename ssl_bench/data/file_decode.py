"""One image file -> every view's fixed-size uint8 crop, from a single (reduced-size when possible) decode.

Used in DataLoader workers by the ``files_batched`` pipeline (and per image by the GPU path's
fallback). The crop boxes are sampled beforehand on the full image size (read from the header), as
torchvision's RandomResizedCrop does; this module only decodes and resamples:

- JPEG draft mode (``Image.draft``): libjpeg decodes at 1/2, 1/4 or 1/8 scale in the DCT, which is
  far cheaper than a full decode. The largest factor ``f`` is used such that every view's crop,
  scaled by ``1/f``, still has sides of at least ``DRAFT_GAP`` (2) times the view's output size, so
  every view is still downscaled 2x or more by the antialiased resize ("where the crop allows"). The crop boxes are scaled by ``1/f``
  (fractional) and PIL resamples them with its box argument.
- Crop before resize: each view resamples only its own box, with PIL's antialiased bilinear filter
  (the filter torch's ``antialias=True`` bilinear reproduces, as the per-image pipeline uses). At
  factor 1 this is ``im.crop(box).resize(size)``, torchvision's PIL ``resized_crop``, exactly.

PIL is used (not torchvision.io's decoder) because only PIL exposes libjpeg's scaled decoding.
"""
from __future__ import annotations

import io
import math
import warnings
from typing import TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from .sources import CorruptImageError

T = TypeVar("T")

DRAFT_FACTORS = (8, 4, 2)  # the scales libjpeg's DCT decoder offers (besides 1)
# After a draft decode every crop is still downscaled by at least this much by the antialiased
# resize, which smooths the DCT scaling's own (sharper, slightly aliased) filter: PIL's
# ``Image.thumbnail`` uses the same gap (its ``reducing_gap=2.0``). Measured against a full decode +
# resize of the same crops (sklearn's photographs at 500x375 and 1280x854, 64 px views, 200 crops):
# gap 1 changed pixels by up to 3.3/255 on average per crop (99th percentile 19, max 53), gap 2 by
# up to 0.9/255 (99th percentile 5, max 20). ``tests/data/test_files_batched.py`` holds it to that.
DRAFT_GAP = 2.0
Box = tuple[int, int, int, int]  # top, left, height, width in full-image pixels


def read_bytes(path: str) -> bytes:
    """The file's bytes, or ``CorruptImageError`` naming it when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as err:
        raise CorruptImageError(f"cannot read image {path}: {err.strerror or err}") from None


def corrupt(path: str, err: Exception) -> CorruptImageError:
    """The one-line error for an image that PIL cannot decode."""
    reason = "not a recognised image format" if isinstance(err, UnidentifiedImageError) else str(err)
    return CorruptImageError(f"cannot decode image {path}: {' '.join(reason.split()) or type(err).__name__}")


def open_lazy(data: bytes, path: str) -> Image.Image:
    """PIL image opened from bytes; only the header is parsed, so ``.size`` costs no decode."""
    try:
        return Image.open(io.BytesIO(data))
    except (OSError, ValueError, SyntaxError) as err:
        raise corrupt(path, err) from None


def draft_factor(boxes: list[Box], sizes: list[int], gap: float = DRAFT_GAP) -> int:
    """Largest of 8, 4, 2 (else 1) by which every box can shrink and keep sides >= ``gap`` x its view's size."""
    room = min(min(h, w) / (s * gap) for (_, _, h, w), s in zip(boxes, sizes))
    return next((f for f in DRAFT_FACTORS if room >= f), 1)


def decode_crops(image: Image.Image, boxes: list[Box], sizes: list[int], path: str,
                 reduce: bool = True, gap: float = DRAFT_GAP) -> list[np.ndarray]:
    """Decode ``image`` (from :func:`open_lazy`) once and return each box resized to ``s x s``:
    uint8 HWC RGB arrays. ``reduce=False`` always decodes at full size (the reference)."""
    factor = draft_factor(boxes, sizes, gap) if reduce and image.format == "JPEG" else 1
    width, height = image.size
    try:
        if factor > 1:  # requesting (W // f, H // f) makes PIL pick exactly f (W // (W // f) < 2 f)
            image.draft("RGB", (width // factor, height // factor))
        rgb = image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as err:  # truncated data, broken markers, ...
        raise corrupt(path, err) from None
    return [_resized_crop(rgb, box, size, factor) for box, size in zip(boxes, sizes)]


def _resized_crop(rgb: Image.Image, box: Box, size: int, factor: int) -> np.ndarray:
    """``box`` (full-size pixels) of an image decoded at ``1 / factor`` scale, resized to ``size``."""
    top, left, h, w = (v / factor for v in box)
    x0, y0 = math.floor(left), math.floor(top)
    x1, y1 = min(math.ceil(left + w), rgb.width), min(math.ceil(top + h), rgb.height)
    region = rgb.crop((x0, y0, x1, y1))  # resampling stays inside the crop, as torchvision's does
    sub = (left - x0, top - y0, min(left + w - x0, x1 - x0), min(top + h - y0, y1 - y0))
    return np.asarray(region.resize((size, size), Image.Resampling.BILINEAR, box=sub))


# ----------------------------------------------------------------------------- corrupt files in a batch
_skipped = 0  # corrupt images skipped by this process


def skip_or_raise(err: CorruptImageError, skip: bool) -> None:
    """With ``skip``, warn in one line (the file and this process's count); else raise ``err``."""
    global _skipped
    if not skip:
        raise err
    _skipped += 1
    warnings.warn(f"{err}; skipped ({_skipped} corrupt image(s) skipped so far in this process)",
                  RuntimeWarning, stacklevel=2)


def fill_skipped(rows: list[T | None], files: list[str]) -> list[T]:
    """Rows of skipped images (None) take the next good row of the batch, so the batch keeps its size."""
    good = [r for r in rows if r is not None]
    if not good:
        raise CorruptImageError(f"every image of a batch is corrupt, first {files[0]}")
    return [r if r is not None else good[i % len(good)] for i, r in enumerate(rows)]
