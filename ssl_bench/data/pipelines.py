"""Data pipelines as objects: how a split becomes training and evaluation batches.

A pipeline is chosen once, from ``data.pipeline`` (``resolve_pipeline``), and the data module asks it
for the training dataset, the evaluation loader and the on-device transform instead of switching on
its name. Four are built in:

- ``batched`` (in-memory sources; the default there): the uint8 images stay in one tensor (on the GPU
  when training there); a batch is one indexing op, augmented on the device in
  ``on_after_batch_transfer`` (``BatchedMultiView``);
- ``per_image``: ``PerImageMultiView`` in DataLoader workers, one image at a time (any source);
- ``files_batched`` (image trees; the default there): workers decode each file once into fixed-size
  uint8 crops per view, which the batched augmentation finishes (in the workers on a CPU run, on the
  GPU when training there; ``files_batched.py``);
- ``files_gpu``: the same with the JPEG decode on the GPU (nvjpeg).

A new pipeline is a ``Pipeline`` subclass registered in ``PIPELINE_CLASSES``.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, ClassVar

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, default_collate

from .per_image import PerImageMultiView, eval_transform
from .sources import IMAGE_TREE_DATASETS, CorruptImageError, Split, open_image

log = logging.getLogger("ssl_bench")


class InMemoryBatches(Dataset):
    """``dataset[list_of_indices]`` -> ``(images[idx], labels[idx])``: one indexing op per batch, no collate.
    With ``with_indices`` the batch also carries ``idx`` (the sample-index batch contract)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, with_indices: bool = False) -> None:
        self.images, self.labels, self.with_indices = images, labels, with_indices

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.images.device)
        return (self.images[idx], self.labels[idx], idx) if self.with_indices else (self.images[idx], self.labels[idx])


class PerSample(Dataset):
    """``dataset[i]`` -> ``(transform(image_i), label_i)`` for an in-memory or file split.

    With ``skip_corrupt`` an undecodable file gives ``None`` (dropped by ``collate_present``) and is
    counted in ``skipped``, a shared-memory counter that DataLoader workers increment."""

    def __init__(self, split: Split, transform: Callable[[Any], Any], skip_corrupt: bool = False) -> None:
        self.split, self.transform, self.skip_corrupt = split, transform, skip_corrupt
        self.skipped = torch.zeros((), dtype=torch.long).share_memory_()

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[Any, int] | None:
        s = self.split
        try:
            image = s.images[i] if s.images is not None else open_image(s.files[i])  # type: ignore[index]
        except CorruptImageError:
            if not self.skip_corrupt:
                raise
            self.skipped += 1
            log.warning(f"skipped unreadable image {s.files[i]} (data.skip_corrupt_images)")  # type: ignore[index]
            return None
        return self.transform(image), int(s.labels[i])


def collate_present(samples: list[Any]) -> Any:
    """``default_collate`` of the samples that are not ``None`` (skipped unreadable images)."""
    return default_collate([x for x in samples if x is not None])


class WithIndex(Dataset):
    """``dataset[i]`` -> ``(*dataset[i], i)``: the per-image pipeline's side of the sample-index contract."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, ...] | None:
        sample = self.dataset[i]
        return None if sample is None else (*sample, i)  # None: a skipped unreadable image


class BatchOf(Dataset):
    """``dataset[list_of_indices]`` -> ``[dataset[i] for i in indices]``, for a batch sampler passed as ``sampler``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, indices: list[int]) -> list[Any]:
        return [self.dataset[i] for i in indices]


class Pipeline:
    """One way of turning a split into batches, bound to its data module (``dm``: recipe, sizes,
    normalisation, the trainer's device). ``serves`` says which sources it reads: ``"memory"``,
    ``"files"`` (image trees) or ``"any"``."""

    name: ClassVar[str] = ""
    serves: ClassVar[str] = "any"

    def __init__(self, dm: Any) -> None:  # the SSLDataModule that owns it (not imported: it imports this module)
        self.dm = dm

    @classmethod
    def check(cls, dataset: str) -> None:
        """One line when this pipeline cannot read ``dataset``."""
        tree = dataset in IMAGE_TREE_DATASETS
        if cls.serves == "memory" and tree:
            raise ValueError(f"{dataset} is read from image files, which the {cls.name} pipeline cannot hold in "
                             f"memory; use data.pipeline: files_batched (its default) or per_image")
        if cls.serves == "files" and not tree:
            raise ValueError(f"data.pipeline {cls.name} reads image trees ({', '.join(IMAGE_TREE_DATASETS)}); "
                             f"{dataset} is held in memory: use batched or per_image")

    def storage_device(self) -> torch.device:
        """Where the splits' images are kept."""
        return torch.device("cpu")

    def train_dataset(self, split: Split, with_indices: bool) -> tuple[Dataset, Callable | None]:
        """(the training dataset, indexed by a batch of indices; its collate function or None)."""
        raise NotImplementedError

    def eval_loader(self, split: Split, sampler: Sampler, loader_kwargs: dict[str, Any]) -> DataLoader:
        """Un-augmented, normalised ``(images, labels)`` batches of ``split`` (image trees: resized to
        ``size * 8 / 7`` and centre-cropped, the 256/224 protocol), one image at a time in workers."""
        dm = self.dm
        size = dm.image_size
        resize = math.floor(size * 8 / 7) if split.files is not None else None  # 224 -> 256
        tf = eval_transform(size, dm.mean, dm.std, resize=resize)
        return DataLoader(dm.per_sample_dataset(split, tf), batch_size=dm.hparams.eval_batch_size,
                          sampler=sampler, collate_fn=collate_present, **loader_kwargs)

    def after_transfer(self, batch: Any, training: bool) -> Any:
        """The batch on the training device: what is left to do there (default: nothing)."""
        return batch

    @property
    def loader_workers(self) -> bool:
        """Whether the training loader uses ``data.num_workers`` workers."""
        return True


class InMemoryBatched(Pipeline):
    name, serves = "batched", "memory"

    def storage_device(self) -> torch.device:
        """The training device when it is a GPU (``in_memory_device: auto``), else as configured."""
        target = self.dm.trainer_device()
        want = self.dm.hparams.in_memory_device
        if want == "auto":
            return target if target is not None and target.type == "cuda" else torch.device("cpu")
        dev = torch.device(want)
        if dev.type == "cuda" and dev.index is None and target is not None and target.type == "cuda":
            return target  # "cuda" means this rank's GPU
        return dev

    def train_dataset(self, split: Split, with_indices: bool) -> tuple[Dataset, Callable | None]:
        return InMemoryBatches(split.images, split.labels, with_indices), None  # type: ignore[arg-type]

    def eval_loader(self, split: Split, sampler: Sampler, loader_kwargs: dict[str, Any]) -> DataLoader:
        batches = BatchSampler(sampler, self.dm.hparams.eval_batch_size, drop_last=False)
        return DataLoader(InMemoryBatches(split.images, split.labels), sampler=batches,  # type: ignore[arg-type]
                          batch_size=None, **loader_kwargs)

    def after_transfer(self, batch: Any, training: bool) -> Any:
        images, labels, *indices = batch  # indices: only for methods that ask (the sample-index contract)
        if training:
            return (self.dm.train_batch_transform(images), labels, *indices)
        return self.dm.eval_batch_transform(images), labels

    @property
    def loader_workers(self) -> bool:
        return False


class PerImage(Pipeline):
    name, serves = "per_image", "any"

    def train_dataset(self, split: Split, with_indices: bool) -> tuple[Dataset, Callable | None]:
        per_sample: Dataset = self.dm.per_sample_dataset(split, PerImageMultiView(self.dm.recipe))
        return BatchOf(WithIndex(per_sample) if with_indices else per_sample), collate_present


class FilesBatched(Pipeline):
    name, serves = "files_batched", "files"
    on_gpu_output = "crops"  # what workers hand a GPU run: uint8 crops, augmented on the device

    def train_dataset(self, split: Split, with_indices: bool) -> tuple[Dataset, Callable | None]:
        from .files_batched import FileViewBatches

        target = self.dm.trainer_device()
        on_gpu = target is not None and target.type == "cuda"
        self.check_device(on_gpu, target)
        output = self.on_gpu_output if on_gpu else "views"
        return FileViewBatches(split, self.dm.recipe, output, self.dm.hparams.skip_corrupt_images), None

    def check_device(self, on_gpu: bool, target: torch.device | None) -> None:
        """One line when this pipeline cannot train on ``target``."""

    def after_transfer(self, batch: Any, training: bool) -> Any:
        return (self.dm.files_batch_transform(batch[0]), batch[1]) if training else batch


class FilesGPU(FilesBatched):
    name = "files_gpu"
    on_gpu_output = "encoded"  # JPEG bytes and crop boxes: decoded on the GPU

    def check_device(self, on_gpu: bool, target: torch.device | None) -> None:
        if not on_gpu:
            raise ValueError(f"data.pipeline files_gpu decodes on the GPU (nvjpeg), but this run trains on "
                             f"{target or 'cpu'}; use data.pipeline: files_batched")


PIPELINE_CLASSES: dict[str, type[Pipeline]] = {c.name: c for c in (InMemoryBatched, PerImage, FilesBatched, FilesGPU)}
PIPELINES = ("auto", *PIPELINE_CLASSES)


def resolve_pipeline(name: str, dataset: str) -> str:
    """``data.pipeline`` checked against ``dataset``; ``auto`` resolves to ``files_batched`` for image
    trees and ``batched`` otherwise."""
    if name not in PIPELINES:
        raise ValueError(f"data.pipeline must be one of {', '.join(PIPELINES)}, got '{name}'")
    if name == "auto":
        name = "files_batched" if dataset in IMAGE_TREE_DATASETS else "batched"
    PIPELINE_CLASSES[name].check(dataset)
    return name
