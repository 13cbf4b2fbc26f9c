"""Image-tree splits as uint8 image batches for the protocols that train on pixels (fine-tuning, SCAN).

``finetune`` and ``scan`` index their images (random batches, neighbour pairs) and augment them with
the batched augmentation, as they do a CIFAR tensor. For an image tree each file is prepared as the
k-NN / linear evaluation prepares it (``datamodule._eval_loader``: decoded with PIL by
``sources.open_image``, shorter side resized to ``floor(size * 8 / 7)`` with antialiasing, centre
crop ``size x size``, ``size`` = ``data.image_size``), so every protocol sees the same pixels; the
training augmentation then crops from that view, as it does from a CIFAR image.

The rule (:func:`hold_or_stream`): a file split is decoded once into a uint8 ``(N, 3, size, size)``
tensor while its decoded size (``N * 3 * size * size`` bytes) fits in what is left of the memory
limit, the splits taken in the order given (the training images first: they are read every epoch);
otherwise it is streamed (:class:`StreamedImages`: every batch is read and decoded again, in
``data.num_workers`` DataLoader workers). The limit is ``$SSL_BENCH_TREE_MEMORY_MB`` MiB, default
``DEFAULT_MEMORY_LIMIT_MB`` (2048; 0 streams every tree). Both ways give the same images, so the same
results; in-memory datasets (CIFAR, STL-10, digits) are used as they are.

Decoding draws nothing from torch's global RNG (every DataLoader here has its own generator), so a
seeded run gives the same result held or streamed.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .sources import Split, open_image
from .worker_memory import keep_freed_memory

log = logging.getLogger("ssl_bench")

MEMORY_LIMIT_ENV = "SSL_BENCH_TREE_MEMORY_MB"
DEFAULT_MEMORY_LIMIT_MB = 2048.0
EMBED_BATCH = 512  # images per forward pass when embedding (features.embed's default)
#: batches read from files by :class:`StreamedImages` in this process (tests read it)
STREAMED_BATCHES = 0


def eval_view(size: int) -> v2.Compose:
    """PIL image -> uint8 ``(3, size, size)``: the evaluation loader's preparation of an image-tree
    file (``datamodule._eval_loader``: resize to ``floor(size * 8 / 7)``, centre crop) without its
    final scaling and normalisation, which ``SSLDataModule.eval_batch_transform`` applies."""
    return v2.Compose([v2.ToImage(), v2.Resize(math.floor(size * 8 / 7), antialias=True), v2.CenterCrop(size)])


class TreeFiles(Dataset):
    """``dataset[list_of_indices]`` -> uint8 ``(B, 3, size, size)``: the files at ``indices``, each
    prepared by :func:`eval_view`. An undecodable file raises ``CorruptImageError`` naming it."""

    def __init__(self, files: Sequence[str], size: int) -> None:
        self.files, self.size = list(files), size
        self.view = eval_view(size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, indices: list[int]) -> Tensor:
        return torch.stack([self.view(open_image(self.files[i])).as_subclass(Tensor) for i in indices])


class _Batches:
    """A batch sampler whose batches are replaced before each pass (a persistent loader reuses it)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _loader(dataset: Dataset, sampler: Iterable, num_workers: int, persistent: bool) -> DataLoader:
    # its own generator: creating an iterator would otherwise draw a seed from torch's global RNG
    return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=num_workers,
                      persistent_workers=persistent and num_workers > 0,
                      worker_init_fn=keep_freed_memory if num_workers > 0 else None,
                      generator=torch.Generator().manual_seed(0))


class StreamedImages:
    """The images of a file split, read and decoded again for every batch asked for, in
    ``num_workers`` DataLoader workers (persistent until :meth:`close`). ``len()`` is the number of
    images; :meth:`batches` plays the part of ``images[idx]`` for a sequence of index batches."""

    def __init__(self, files: Sequence[str], size: int, num_workers: int = 0) -> None:
        self.dataset = TreeFiles(files, size)
        self.size, self.num_workers = size, num_workers
        self._sampler = _Batches()
        self._loader: DataLoader | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def nbytes(self) -> int:
        """Bytes the decoded images would take in memory."""
        return decoded_bytes(len(self), self.size)

    def batches(self, index_batches: Iterable[Any]) -> Iterator[Tensor]:
        """uint8 ``(B, 3, size, size)`` per index batch (a list or an int64 tensor), in order."""
        global STREAMED_BATCHES
        self._sampler.batches = [torch.as_tensor(b).tolist() for b in index_batches]
        if self._loader is None:
            self._loader = _loader(self.dataset, self._sampler, self.num_workers, persistent=True)
        for batch in self._loader:
            STREAMED_BATCHES += 1
            yield batch

    def close(self) -> None:
        """Stops the workers."""
        self._loader = None


Images = Union[Tensor, StreamedImages]


def decoded_bytes(n: int, size: int) -> int:
    return n * 3 * size * size


def decode(files: Sequence[str], size: int, num_workers: int = 0, batch_size: int = 256) -> Tensor:
    """Every file prepared by :func:`eval_view`, in one uint8 ``(N, 3, size, size)`` tensor (decoded
    in ``num_workers`` DataLoader workers)."""
    out = torch.empty((len(files), 3, size, size), dtype=torch.uint8)
    chunks = [list(range(s, min(s + batch_size, len(files)))) for s in range(0, len(files), batch_size)]
    for idx, batch in zip(chunks, _loader(TreeFiles(files, size), chunks, num_workers, persistent=False)):
        out[idx[0]:idx[-1] + 1] = batch
    return out


def memory_limit_bytes(limit_mb: float | None = None) -> int:
    """``limit_mb`` MiB if given, else ``$SSL_BENCH_TREE_MEMORY_MB``, else ``DEFAULT_MEMORY_LIMIT_MB``."""
    if limit_mb is None:
        text = os.environ.get(MEMORY_LIMIT_ENV)
        try:
            limit_mb = float(text) if text else DEFAULT_MEMORY_LIMIT_MB
        except ValueError:
            raise ValueError(f"${MEMORY_LIMIT_ENV}={text}: expected a number of MiB (0 streams every image "
                             f"tree)") from None
    if not limit_mb >= 0:
        raise ValueError(f"the image-tree memory limit must be >= 0 MiB, got {limit_mb}")
    return int(limit_mb * 2**20)


def hold_or_stream(splits: Sequence[Split], size: int, num_workers: int = 0, limit_mb: float | None = None,
                   names: Sequence[str] | None = None) -> list[Images]:
    """The images of each split: an in-memory split's tensor as it is; a file split decoded into a
    tensor while its decoded size fits in what is left of the limit (:func:`memory_limit_bytes`),
    splits in the order given, else a :class:`StreamedImages` (see the module docstring)."""
    left = memory_limit_bytes(limit_mb)
    out: list[Images] = []
    names = list(names or (f"split {i}" for i in range(len(splits))))
    for name, split in zip(names, splits):
        if split.images is not None:
            out.append(split.images)
            continue
        need = decoded_bytes(len(split), size)
        if need <= left:
            left -= need
            out.append(decode(split.files, size, num_workers))  # type: ignore[arg-type]
            log.info(f"{name}: {len(split)} images of {size}x{size} held in memory ({need / 2**20:.1f} MiB decoded)")
        else:
            out.append(StreamedImages(split.files, size, num_workers))  # type: ignore[arg-type]
            log.info(f"{name}: {len(split)} images of {size}x{size} streamed from files ({need / 2**20:.1f} MiB "
                     f"decoded is over what is left of the {MEMORY_LIMIT_ENV} limit, {left / 2**20:.1f} MiB)")
    return out


def how_held(images: Images) -> str:
    """``"memory"`` or ``"streamed"``."""
    return "streamed" if isinstance(images, StreamedImages) else "memory"


def close(*images: Images) -> None:
    for x in images:
        if isinstance(x, StreamedImages):
            x.close()


def image_batches(images: Images, index_batches: Sequence[Tensor]) -> Iterator[Tensor]:
    """``images[idx]`` for every index batch, in order: indexed in memory, or read from the files."""
    if isinstance(images, StreamedImages):
        return images.batches(index_batches)
    return (images[idx] for idx in index_batches)


def map_chunks(fn: Callable[[Tensor], Any], images: Images, batch_size: int = EMBED_BATCH) -> list[Any]:
    """``fn`` of consecutive chunks of ``batch_size`` images (``images.split(batch_size)``)."""
    if isinstance(images, StreamedImages):
        n = len(images)
        chunks = [torch.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
        return [fn(x) for x in images.batches(chunks)]
    return [fn(x) for x in images.split(batch_size)]


@torch.no_grad()
def embed_images(module: nn.Module, images: Images, normalise: Callable[[Tensor], Tensor],
                 batch_size: int = EMBED_BATCH) -> Tensor:
    """``features.embed`` for held or streamed images: float32 outputs of ``module`` in eval mode."""
    module.eval()
    device = next(module.parameters()).device
    return torch.cat(map_chunks(lambda x: module(normalise(x.to(device))).float(), images, batch_size))
