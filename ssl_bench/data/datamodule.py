"""``SSLDataModule``: multi-view training batches and un-augmented evaluation batches for any source.

Batch contracts (the methods rely on them):

- training: ``(views, labels)``, ``views`` a list of normalised float (B, 3, h, w) tensors (the
  recipe's global views, then its small crops), ``labels`` int64 (B,) (-1 for unlabelled images);
  a method whose class sets ``needs_sample_indices = True`` (a per-sample memory bank, e.g.
  DeepCluster v2) gets ``(views, labels, indices)`` instead, ``indices`` int64 (B,) positions in the
  training split; every other method's batch is unchanged;
- validation: ``val_dataloader()`` is a list ``[val split, un-augmented train split (k-NN bank)]``;
  batches are ``(images, labels)`` with normalised float (B, 3, H, W) images. Image trees are resized
  to ``size * 8 / 7`` and centre-cropped (the 256/224 protocol); in-memory images are used as they are.
  Only k-NN and the linear probe read them: an image tree without a val split (no ``val/`` and no
  ``val_fraction``, or unlabelled images) has no validation loaders, and training with either of
  them on is refused in one line when the trainer sets the data module up (``check_evaluations``).

How a split becomes batches is the pipeline's (``pipelines.py``: ``batched``, ``per_image``,
``files_batched``, ``files_gpu``), an object chosen once from ``data.pipeline``; the data module
owns the source, the splits, the samplers and the resumable training order. Because this data
module overrides ``on_after_batch_transfer`` (the pipeline's on-device step), Lightning uses it
instead of the model's.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..errors import ConfigError
from .pipelines import PIPELINE_CLASSES, PerSample, Pipeline, resolve_pipeline
from .recipes import MultiViewRecipe, build_recipe
from .samplers import ContiguousEvalSampler, ShuffledBatchSampler
from .sources import (DOWNLOADABLE, IMAGE_TREE_DATASETS, KNOWN_DATASETS, CorruptImageError, Source, Split, dataset_name,
                      load_source, stratified_subset, unreadable_images)
from .worker_memory import keep_freed_memory

log = logging.getLogger("ssl_bench")


class ResumableDataLoader(DataLoader):
    """The training DataLoader, with ``state_dict``/``load_state_dict`` forwarded to its data module.

    Lightning treats a loader with these methods as resumable: it stores the state in the fit loop's
    checkpoint entry as well and does not warn that a mid-epoch resume is unreliable. The state is
    the data module's (trainer-corrected) sampler state, so restoring it twice changes nothing.
    """

    owner: "SSLDataModule | None" = None

    def state_dict(self) -> dict[str, Any]:
        return self.owner.state_dict().get("train_sampler", {}) if self.owner is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.owner is not None and state_dict:
            self.owner.load_state_dict({"train_sampler": state_dict})

    def __iter__(self) -> Any:
        if getattr(self.sampler, "_start", 0) > 0:
            # resumed mid-epoch: the global RNG was restored to its state after the checkpoint's batch;
            # creating an iterator draws a seed from it, which the uninterrupted run drew at the start
            # of the epoch, so undo that draw and the next batch is augmented exactly as it was
            state = torch.get_rng_state()
            iterator = super().__iter__()
            torch.set_rng_state(state)
            return iterator
        return super().__iter__()


def _concat(a: Split, b: Split) -> Split:
    return Split(labels=torch.cat([a.labels, b.labels]), images=torch.cat([a.images, b.images]))  # type: ignore[list-item]


class SSLDataModule(pl.LightningDataModule):
    """Multi-view SSL data for ``dataset`` (see ``sources.py``); every argument is a plain (YAML) type.

    Args:
        dataset: a name from ``sources.KNOWN_DATASETS``.
        root: the data directory (default: searched, see ``sources.candidate_roots``).
        batch_size / eval_batch_size: per-rank batch sizes for training / evaluation.
        num_workers: DataLoader workers (ignored when the images live on the GPU).
        pipeline: ``"auto"`` (``"batched"`` for in-memory sources, ``"files_batched"`` for image
            trees), ``"batched"``, ``"per_image"``, ``"files_batched"`` or ``"files_gpu"`` (nvjpeg).
        augment: recipe config for ``recipes.build_recipe`` (e.g. ``{name: byol, num_small_crops: 6}``).
        train_subset / val_subset: class-stratified subset sizes (seeded by ``seed``).
        eval_train_subset: size of the stratified subset of the train split used as k-NN bank / probe set.
        seed: seeds the data's subsets (``train_subset``, ``val_subset``, ``eval_train_subset``), which
            define the data and so stay fixed across run seeds.
        order_seed: seeds the training order (``order_seed + epoch``); ``None``: ``seed``. A run built
            from a config gets ``run.seed`` here (``build.build_datamodule``), so run seeds vary it.
        in_memory_device: where the batched pipeline keeps the images: ``"auto"`` (the training
            device when it is a GPU, else CPU), ``"cpu"`` or ``"cuda"``.
        image_size: training crop size for image trees (default: the images' median shorter side, at
            most 224).
        use_unlabeled: STL-10: also train on the 100k unlabelled images (label -1).
        check_images: image trees: decode every image once at setup and name the unreadable ones.
        skip_corrupt_images: image trees: skip unreadable images instead of stopping with an error
            (per_image: counted in ``skipped_images``, the summary's ``skipped_image_reads``; files
            pipelines: replaced by another image of the batch, with a one-line warning naming it).
        drop_unknown_val_classes: image trees: leave out val classes not in train (else an error).
        name: the dataset's name for people (run and sweep-cell names, summaries, report sections);
            default: ``sources.dataset_name`` (a ``folder`` tree's root folder name, else ``dataset``).
        val_fraction: image trees without ``val/``: this fraction of train, class-stratified and
            seeded by ``seed``, is held out as the val split (``sources.hold_out_val``).
        download: cifar10, cifar100, stl10: fetch the dataset into ``root`` with torchvision when it
            is not there (``sources.download``).
    """

    def __init__(self, dataset: str, root: str | None = None, batch_size: int = 256, eval_batch_size: int = 512,
                 num_workers: int = 2, pipeline: str = "auto", augment: dict | None = None,
                 train_subset: int | None = None, val_subset: int | None = None,
                 eval_train_subset: int | None = None, seed: int = 0, order_seed: int | None = None,
                 in_memory_device: str = "auto",
                 image_size: int | None = None, use_unlabeled: bool = False,
                 check_images: bool = False, skip_corrupt_images: bool = False,
                 drop_unknown_val_classes: bool = False, name: str | None = None,
                 val_fraction: float | None = None, download: bool = False) -> None:
        super().__init__()
        if dataset not in KNOWN_DATASETS:
            raise ValueError(f"unknown dataset '{dataset}'; known: {', '.join(KNOWN_DATASETS)}")
        dataset_name({"dataset": dataset, "root": root, "name": name})  # a data.name that cannot name a run: one line
        if val_fraction is not None and dataset not in IMAGE_TREE_DATASETS:
            raise ValueError(f"data.val_fraction holds out part of an image tree's train/ "
                             f"({', '.join(IMAGE_TREE_DATASETS)}) as its val split; {dataset} has its own val split")
        if val_fraction is not None and not 0 < val_fraction < 1:
            raise ValueError(f"data.val_fraction must be between 0 and 1 (e.g. 0.1), got {val_fraction}")
        if download and dataset not in DOWNLOADABLE:
            raise ValueError(f"data.download fetches {', '.join(DOWNLOADABLE)} with torchvision; {dataset} cannot "
                             f"be downloaded (set data.root to where its files are)")
        pipeline = resolve_pipeline(pipeline, dataset)  # before save_hyperparameters: "auto" is recorded resolved
        if image_size is not None and dataset not in IMAGE_TREE_DATASETS:
            raise ValueError(f"data.image_size applies to image-tree datasets ({', '.join(IMAGE_TREE_DATASETS)}) "
                             f"only; {dataset} images keep their size")
        if in_memory_device != "auto":
            torch.device(in_memory_device)  # raises on a malformed device string
        self.save_hyperparameters()
        #: how splits become batches (``pipelines.py``), chosen once
        self.pipeline: Pipeline = PIPELINE_CLASSES[pipeline](self)
        #: training batches carry sample indices: set by the build layer from the method's declaration
        self.sample_indices = False
        self._source: Source | None = None
        self._recipe: MultiViewRecipe | None = None
        self._splits: dict[str, Split] = {}
        self._splits_device = torch.device("cpu")
        self._train_sampler: ShuffledBatchSampler | None = None
        self._pending_sampler_state: dict[str, Any] | None = None
        self._batched_aug: torch.nn.Module | None = None
        self._norm: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._skipped_at_check = 0
        self._per_sample: list[PerSample] = []

    # ------------------------------------------------------------------ source and constants

    @property
    def source(self) -> Source:
        """The loaded source (loaded on first use)."""
        if self._source is None:
            h = self.hparams
            opts: dict[str, Any] = {"train_subset": h.train_subset, "val_subset": h.val_subset, "seed": h.seed}
            if h.image_size is not None:
                opts["image_size"] = h.image_size
            if h.dataset == "stl10" and h.use_unlabeled:
                opts["unlabeled"] = True
            if h.drop_unknown_val_classes:
                opts["drop_unknown_val_classes"] = True
            if h.val_fraction is not None:
                opts["val_fraction"] = h.val_fraction
            if h.download:
                opts["download"] = True
            self._source = load_source(h.dataset, h.root, **opts)
            if h.check_images:
                self._source = self._checked(self._source)
        return self._source

    def _checked(self, src: Source) -> Source:
        """``check_images``: decode every file once; unreadable ones end in one error, or are left out
        with ``skip_corrupt_images``."""
        from dataclasses import replace

        if src.train.files is None:
            return src

        workers = max(1, self.hparams.num_workers)
        bad = {"train": unreadable_images(src.train.files, workers), "val": unreadable_images(src.val.files, workers)}
        total = sum(map(len, bad.values()))
        if not total:
            return src
        names = [s.files[i] for k, s in (("train", src.train), ("val", src.val)) for i in bad[k]]  # type: ignore
        shown = ", ".join(names[:3]) + (", ..." if total > 3 else "")
        if not self.hparams.skip_corrupt_images:
            raise CorruptImageError(f"data.check_images: {total} image(s) cannot be decoded ({shown}); remove them, "
                                    f"or set data.skip_corrupt_images: true to leave them out")
        log.info(f"data.check_images: left out {total} unreadable image(s) ({shown})")
        self._skipped_at_check = total

        def keep(split: Split, drop: list[int]) -> Split:
            mask = torch.ones(len(split), dtype=torch.bool)
            mask[drop] = False
            return split.subset(mask.nonzero().flatten())

        return replace(src, train=keep(src.train, bad["train"]), val=keep(src.val, bad["val"]))

    @property
    def skipped_images(self) -> int:
        """Unreadable images left out so far (at the check, and reads skipped while loading)."""
        return self._skipped_at_check + sum(int(d.skipped) for d in self._per_sample)

    @property
    def train_order_seed(self) -> int:
        """The seed of the training order (``order_seed``, else ``seed``)."""
        h = self.hparams
        return int(h.seed if h.order_seed is None else h.order_seed)

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    @property
    def dataset_name(self) -> str:
        """The dataset's name for people (``data.name``, see ``sources.dataset_name``)."""
        h = self.hparams
        return dataset_name({"dataset": h.dataset, "root": h.root, "name": h.name})

    @property
    def has_val(self) -> bool:
        """Whether there is a val split (an image tree may have none: see the module docstring)."""
        return len(self.source.val) > 0

    def check_evaluations(self, knn: bool, linear_probe: bool) -> None:
        """One ``ConfigError`` line when k-NN or the linear probe is on but there is no val split to
        score them on, saying what to set."""
        if not (knn or linear_probe) or self.has_val:
            return
        src, what = self.source, "k-NN and the linear probe (model.knn, model.linear_probe)"
        if src.num_classes == 0:
            raise ConfigError(f"{self.dataset_name}: {src.origin} holds unlabelled images (no class folders): {what} "
                              f"need labels; pretrain without them with --model.knn false --model.linear_probe false")
        raise ConfigError(f"{self.dataset_name}: {src.origin} has no val/ folder, so {what} have no val split to "
                          f"score; set data.val_fraction (e.g. 0.1: that part of train, class-stratified and seeded "
                          f"by data.seed, becomes the val split), add val/<class>/ folders, or pretrain without "
                          f"them with --model.knn false --model.linear_probe false")

    @property
    def num_train_samples(self) -> int:
        """Size of the training split (what the sample indices of the batch contract index)."""
        self.setup()
        return len(self._splits["train"])

    @property
    def image_size(self) -> int:
        return self.source.image_size

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.source.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.source.std

    @property
    def recipe(self) -> MultiViewRecipe:
        if self._recipe is None:
            self._recipe = build_recipe(self.hparams.augment, self.image_size, self.mean, self.std)
        return self._recipe

    # ------------------------------------------------------------------ setup

    def prepare_data(self) -> None:
        """Runs on one process per node: decodes and caches CIFAR-10's archive once, and downloads a
        missing dataset with ``download`` (nothing downloads without it)."""
        _ = self.source

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is not None and stage in (None, "fit") and not self.has_val:
            # nothing to validate (the build layer refused k-NN / probe without a val split): the trainer
            # skips validation, and Lightning's warning about an empty val_dataloader
            self.trainer.limit_val_batches = 0
        device = self.storage_device()
        if self._splits and self._splits_device == device:
            return
        src = self.source
        train = src.train
        if self.hparams.use_unlabeled and src.train_unlabeled is not None:
            train = _concat(train, src.train_unlabeled)
        bank = src.train
        if self.hparams.eval_train_subset is not None:
            bank = bank.subset(stratified_subset(bank.labels, int(self.hparams.eval_train_subset), self.hparams.seed))
        splits = {"train": train, "val": src.val, "bank": bank}
        if device.type != "cpu":  # one copy per split on the device
            splits = {k: Split(labels=s.labels.to(device), images=s.images.to(device))  # type: ignore[union-attr]
                      for k, s in splits.items()}
        self._splits, self._splits_device = splits, device

    def storage_device(self) -> torch.device:
        """Where the splits' uint8 images are kept (the pipeline's choice: the GPU for ``batched``
        when training there, else CPU)."""
        return self.pipeline.storage_device()

    def trainer_device(self) -> torch.device | None:
        return self.trainer.strategy.root_device if self.trainer is not None else None

    def _ranks(self) -> tuple[int, int]:
        return (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)

    def _wants_indices(self) -> bool:
        """The sample-index batch contract: set by the build layer from the method's declared
        ``needs_sample_indices`` (``build.prepare_fit``)."""
        return self.sample_indices

    def _loader_kwargs(self, split: Split) -> dict[str, Any]:
        on_cpu = split.images is None or split.images.device.type == "cpu"
        workers = self.hparams.num_workers if on_cpu else 0
        target = self.trainer_device()
        return {"num_workers": workers, "persistent_workers": workers > 0,
                "worker_init_fn": keep_freed_memory if workers > 0 else None,
                "pin_memory": on_cpu and target is not None and target.type == "cuda"}

    # ------------------------------------------------------------------ loaders

    def train_dataloader(self) -> ResumableDataLoader:
        self.setup()
        split = self._splits["train"]
        world, rank = self._ranks()
        sampler = ShuffledBatchSampler(len(split), self.hparams.batch_size, world, rank, self.train_order_seed)
        if len(sampler) == 0:
            raise ValueError(f"{self.hparams.dataset}: the training split has {len(split)} images, fewer than one "
                             f"global batch (data.batch_size {self.hparams.batch_size} x {world} ranks)")
        if self.trainer is not None:
            sampler.set_epoch(self.trainer.current_epoch)
        if self._pending_sampler_state is not None:
            sampler.load_state_dict(self._pending_sampler_state)
            self._pending_sampler_state = None
        self._train_sampler = sampler
        # the batch sampler goes in as `sampler` (batch_size=None): Lightning then finds it as
        # `dataloader.sampler` and calls its set_epoch at the start of every epoch
        dataset, collate = self.pipeline.train_dataset(split, self._wants_indices())
        loader = ResumableDataLoader(dataset, sampler=sampler, batch_size=None, collate_fn=collate,
                                     **self._loader_kwargs(split))
        loader.owner = self
        return loader

    def val_dataloader(self) -> list[DataLoader]:
        """``[val split, un-augmented train split (k-NN bank / probe features)]``; ``[]`` (no
        validation) when there is no val split."""
        self.setup()
        if not len(self._splits["val"]):
            return []
        return [self._eval_loader(self._splits["val"]), self._eval_loader(self._splits["bank"])]

    def eval_splits(self) -> tuple[Split, Split]:
        """The evaluation train split (``eval_train_subset`` of train when set: the k-NN bank, the
        images that few-label evaluation draws its labels from) and the val split, as held."""
        self.setup()
        return self._splits["bank"], self._splits["val"]

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return self._eval_loader(self._splits["val"])

    def _eval_loader(self, split: Split) -> DataLoader:
        world, rank = self._ranks()
        return self.pipeline.eval_loader(split, ContiguousEvalSampler(len(split), world, rank),
                                         self._loader_kwargs(split))

    def per_sample_dataset(self, split: Split, transform: Callable[[Any], Any]) -> PerSample:
        """``split`` one image at a time through ``transform`` (its unreadable-image count feeds
        ``skipped_images``)."""
        dataset = PerSample(split, transform, skip_corrupt=self.hparams.skip_corrupt_images)
        self._per_sample.append(dataset)
        return dataset

    # ------------------------------------------------------------------ batch transforms

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """The pipeline's on-device step: augment the training views (``batched``; the files
        pipelines when not done in workers) or normalise the evaluation images (``batched``)."""
        return self.pipeline.after_transfer(batch, training=self.trainer is not None and self.trainer.training)

    @torch.no_grad()
    def train_batch_transform(self, images: torch.Tensor) -> list[torch.Tensor]:
        """uint8 (B, 3, H, W) on any device -> the recipe's list of normalised views."""
        if self._batched_aug is None:
            from .batched_augment import BatchedMultiView

            self._batched_aug = BatchedMultiView(self.recipe)
        return self._batched_aug.to(images.device)(images)

    def files_batch_transform(self, views: Any) -> list[torch.Tensor]:
        """Files pipelines on the training device: see ``files_batched.device_views``."""
        from .files_batched import PrecroppedMultiView, device_views

        if self._batched_aug is None:
            self._batched_aug = PrecroppedMultiView(self.recipe)
        device = self.trainer_device() or torch.device("cpu")
        return device_views(views, self._batched_aug, device, self.hparams.skip_corrupt_images)  # type: ignore[arg-type]

    def eval_batch_transform(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> ``(x / 255 - mean) / std`` in float32."""
        if images.device not in self._norm:
            self._norm[images.device] = tuple(  # type: ignore[assignment]
                torch.tensor(v, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
                for v in (self.mean, self.std))
        mean, std = self._norm[images.device]
        return (images.float() / 255 - mean) / std

    # ------------------------------------------------------------------ resumable training order

    def state_dict(self) -> dict[str, Any]:
        """The training sampler's position, corrected to the batches the trainer actually finished.

        A DataLoader with workers (and Lightning's one-batch lookahead) draws batches before they are
        trained on, so the sampler's own count runs ahead; the fit loop's count of processed batches
        is the one that matches what a resumed run must skip. A finished epoch is stored as the
        start of the next one.
        """
        sampler = self._train_sampler
        if sampler is None:
            return {"train_sampler": self._pending_sampler_state} if self._pending_sampler_state else {}
        state = sampler.state_dict()
        trainer = self.trainer
        if trainer is not None and trainer.state.fn == "fit":
            done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
            if done >= min(trainer.num_training_batches, len(sampler)):
                state.update(epoch=sampler.epoch + 1, batches_yielded=0, samples_yielded=0)
            else:
                state.update(batches_yielded=done, samples_yielded=done * sampler.global_batch_size)
        return {"train_sampler": state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores the training order; applied to the sampler the next ``train_dataloader()`` creates."""
        state = state_dict.get("train_sampler")
        if state is None:
            return
        if self._train_sampler is not None:
            self._train_sampler.load_state_dict(state)
        else:
            self._pending_sampler_state = dict(state)
