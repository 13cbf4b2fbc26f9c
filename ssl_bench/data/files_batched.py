"""The ``files_batched`` and ``files_gpu`` pipelines for image trees (``folder``, ``imagenet``, ...).

``files_batched`` (CPU decode): DataLoader workers read each file's bytes, sample every view's
RandomResizedCrop box on the full image size (read from the header, torchvision's sampler via
``batched_augment.sample_crop_boxes``), decode the image once, at reduced size where every crop
allows it, and crop + resize each view to its fixed size (``file_decode.py``). The uint8 crops
``(B, 3, s, s)`` per view then go through the rest of the batched augmentation (flip, colour
jitter, grayscale, blur, solarise, normalise: ``BatchedViewAugment`` after its crop stage, with
per-sample parameters): in the workers when training on the CPU (so it overlaps the training step),
on the GPU in ``on_after_batch_transfer`` when training there.

``files_gpu`` (GPU decode): workers only read bytes and sample the boxes; the batch is decoded on the
GPU with nvjpeg (``gpu_decode.py``), cropped there, then augmented there. Non-JPEG files and images
nvjpeg rejects fall back to the CPU decode, per image.

Corrupt or truncated files end in ``CorruptImageError`` naming the file (one line), or, with
``data.skip_corrupt_images``, are replaced by another image of the same batch with a one-line warning that
names the file and counts the skips of this process.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .batched_augment import BatchedViewAugment, sample_crop_boxes
from .file_decode import Box, decode_crops, fill_skipped, open_lazy, read_bytes, skip_or_raise
from .recipes import MultiViewRecipe, ViewAugment
from .sources import CorruptImageError, Split

OUTPUTS = ("views", "crops", "encoded")
AUGMENT_CHUNK = 16  # images per augmentation call in a worker: keeps a chunk's float views in cache
T = TypeVar("T")


@dataclass
class EncodedViews:
    """A ``files_gpu`` training batch before decoding: bytes, per-view boxes ``(B, 4)`` (top, left,
    height, width) and sizes, file names. It holds no tensors, so Lightning's transfer to the device
    leaves it on the host, where nvjpeg wants its input."""

    data: list[bytes]
    boxes: list[np.ndarray]
    sizes: list[int]
    files: list[str]


# ----------------------------------------------------------------------------- augmentation

class PrecroppedViewAugment(BatchedViewAugment):
    """:class:`BatchedViewAugment` for views that arrive cropped and resized to ``view.size``: its
    crop stage becomes the horizontal flip and the scaling to ``[0, 1]``; every later stage and the
    parameter sampling (``sample_appearance``) are the parent's."""

    def sample_params(self, batch_size: int, height: int = 0, width: int = 0) -> dict[str, Tensor]:
        return self.sample_appearance(batch_size)

    def crop(self, images: Tensor, p: dict[str, Tensor], input_scale: float | None = None) -> Tensor:
        if input_scale is None:
            input_scale = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0
        x = images.to(torch.float32, copy=True).mul_(input_scale)   # a copy: later stages work in place
        idx = p["flip"].nonzero().squeeze(1).to(x.device, non_blocking=True)
        if len(idx):
            x.index_copy_(0, idx, x.index_select(0, idx).flip(-1))
        return x


class PrecroppedMultiView(nn.Module):
    """All views of a recipe from their pre-cropped uint8 batches: ``[(B, 3, s_v, s_v)]`` ->
    normalised float32 views, augmented ``chunk`` images at a time (None: the whole batch)."""

    def __init__(self, recipe: MultiViewRecipe, generator: torch.Generator | None = None,
                 chunk: int | None = None) -> None:
        super().__init__()
        self.views = nn.ModuleList(PrecroppedViewAugment(v, generator) for v in recipe.all_views())
        self.chunk = chunk

    def forward(self, crops: list[Tensor]) -> list[Tensor]:
        out = []
        for aug, x in zip(self.views, crops):
            step = self.chunk or len(x)
            parts = [aug.apply(x[s:s + step], aug.sample_params(len(x[s:s + step])))
                     for s in range(0, len(x), step)]
            out.append(parts[0] if len(parts) == 1 else torch.cat(parts))
        return out


# ----------------------------------------------------------------------------- boxes and skips

def sample_view_boxes(height: int, width: int, views: list[ViewAugment],
                      generator: torch.Generator | None = None) -> list[Box]:
    """One RandomResizedCrop box per view on a ``height x width`` image (views sharing scale and
    ratio are drawn in one call)."""
    boxes: list[Box | None] = [None] * len(views)
    groups: dict[tuple, list[int]] = {}
    for i, v in enumerate(views):
        groups.setdefault((v.crop_scale, v.crop_ratio), []).append(i)
    for (scale, ratio), idx in groups.items():
        b = sample_crop_boxes(len(idx), height, width, scale, ratio, generator)
        rows = torch.stack([b["top"], b["left"], b["height"], b["width"]], 1).tolist()
        for i, row in zip(idx, rows):
            boxes[i] = tuple(row)  # type: ignore[assignment]
    return boxes  # type: ignore[return-value]


# ----------------------------------------------------------------------------- dataset

class FileViewBatches(Dataset):
    """``dataset[list_of_indices]`` -> ``(views, labels)`` for a batch of image files.

    ``output``: ``"views"`` (normalised float views, augmented here), ``"crops"`` (uint8 crops per
    view, to be augmented on the training device) or ``"encoded"`` (:class:`EncodedViews` for the
    GPU decoder). Random draws use torch's global RNG (seeded per DataLoader worker) unless
    ``generator`` is given.
    """

    def __init__(self, split: Split, recipe: MultiViewRecipe, output: str = "views", skip_corrupt: bool = False,
                 generator: torch.Generator | None = None, reduce: bool = True) -> None:
        if split.files is None:
            raise ValueError("FileViewBatches reads image files; this split is in memory")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got '{output}'")
        self.split, self.output, self.skip, self.generator, self.reduce = split, output, skip_corrupt, generator, reduce
        self.views = recipe.all_views()
        self.sizes = [v.size for v in self.views]
        self.augment = PrecroppedMultiView(recipe, generator, chunk=AUGMENT_CHUNK) if output == "views" else None

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, indices: list[int]) -> tuple[Any, Tensor]:
        files = [self.split.files[i] for i in indices]  # type: ignore[index]
        labels = self.split.labels[torch.as_tensor(indices, dtype=torch.long)]
        step = self._encode if self.output == "encoded" else self._crops
        rows = fill_skipped([self._guarded(step, f) for f in files], files)
        if self.output == "encoded":
            data, boxes = zip(*rows)
            per_view = [np.array([b[v] for b in boxes], dtype=np.int64) for v in range(len(self.views))]
            return EncodedViews(list(data), per_view, self.sizes, files), labels
        crops = [torch.from_numpy(np.stack([r[v] for r in rows])).permute(0, 3, 1, 2).contiguous()
                 for v in range(len(self.views))]
        if self.augment is None:
            return crops, labels
        with torch.no_grad():
            return self.augment(crops), labels

    def _guarded(self, step: Callable[[str], T], path: str) -> T | None:
        try:
            return step(path)
        except CorruptImageError as err:
            skip_or_raise(err, self.skip)
            return None

    def _encode(self, path: str) -> tuple[bytes, list[Box]]:
        data = read_bytes(path)
        width, height = open_lazy(data, path).size
        return data, sample_view_boxes(height, width, self.views, self.generator)

    def _crops(self, path: str) -> list[np.ndarray]:
        image = open_lazy(read_bytes(path), path)
        boxes = sample_view_boxes(image.height, image.width, self.views, self.generator)
        return decode_crops(image, boxes, self.sizes, path, reduce=self.reduce)


def device_views(views: Any, augment: PrecroppedMultiView, device: torch.device,
                 skip_corrupt: bool = False) -> list[Tensor]:
    """The training device's half of the pipeline: decode (``files_gpu``) and augment a batch's views;
    views already augmented in the workers pass through."""
    if isinstance(views, EncodedViews):
        from .gpu_decode import decode_views_on_device

        views = decode_views_on_device(views, device, skip_corrupt)
    if views[0].dtype != torch.uint8:
        return views
    with torch.no_grad():
        return augment.to(device)(views)
