"""The ``files_gpu`` decode: a batch of JPEG bytes -> every view's uint8 crop, on the training device.

nvjpeg decodes the whole batch in one ``torchvision.io.decode_jpeg(list, device="cuda")`` call; each
view's box (sampled in the worker on the full image size) is then cropped from its decoded image and
resized on the device with torch's antialiased bilinear filter (what the per-image pipeline's
RandomResizedCrop computes), and rounded to uint8 like the CPU path's crops. Files that are not
JPEG, and JPEGs the device decoder rejects, go through the CPU decode (``file_decode.py``) one by
one. Every function also runs with ``device="cpu"`` (libjpeg-turbo instead of nvjpeg), which is how
it is tested on machines without a GPU.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from .file_decode import Box, decode_crops, fill_skipped, open_lazy, skip_or_raise
from .sources import CorruptImageError

JPEG_MAGIC = b"\xff\xd8"


def crop_resize(image: Tensor, box: Box, size: int) -> Tensor:
    """uint8 ``(3, H, W)`` -> the box ``(top, left, height, width)`` resized to uint8 ``(3, size, size)``."""
    top, left, h, w = box
    crop = image[None, :, top:top + h, left:left + w].to(torch.float32)
    out = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)[0]


def decode_jpegs(data: list[bytes], device: torch.device) -> list[Tensor | None]:
    """Decoded RGB uint8 ``(3, H, W)`` per item on ``device``; None where it is not a JPEG or fails.
    One batched call; if it fails (the decoder returns nothing partial), one call per image."""
    from torchvision.io import ImageReadMode, decode_jpeg

    out: list[Tensor | None] = [None] * len(data)
    idx = [i for i, d in enumerate(data) if d[:2] == JPEG_MAGIC]
    if not idx:
        return out
    encoded = [torch.frombuffer(bytearray(data[i]), dtype=torch.uint8) for i in idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec
        try:
            decoded: list[Tensor | None] = list(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            decoded = []
            for e in encoded:
                try:
                    decoded.append(decode_jpeg(e, mode=ImageReadMode.RGB, device=device))
                except RuntimeError:
                    decoded.append(None)
    for i, img in zip(idx, decoded):
        out[i] = img
    return out


def decode_views_on_device(batch, device: torch.device, skip_corrupt: bool = False) -> list[Tensor]:
    """An ``EncodedViews`` batch -> uint8 ``(B, 3, s, s)`` per view on ``device``."""
    device = torch.device(device)
    images = decode_jpegs(batch.data, device)
    rows: list[list[Tensor] | None] = []
    for i, (data, image, path) in enumerate(zip(batch.data, images, batch.files)):
        boxes = [tuple(int(v) for v in b[i]) for b in batch.boxes]
        if image is not None:
            rows.append([crop_resize(image, box, s) for box, s in zip(boxes, batch.sizes)])
            continue
        try:  # not a JPEG, or one the device decoder rejects: PIL on the CPU
            crops = decode_crops(open_lazy(data, path), boxes, batch.sizes, path)
            rows.append([torch.from_numpy(c).permute(2, 0, 1).to(device) for c in crops])
        except CorruptImageError as err:
            skip_or_raise(err, skip_corrupt)
            rows.append(None)
    full = fill_skipped(rows, batch.files)
    return [torch.stack([r[v] for r in full]) for v in range(len(batch.sizes))]
