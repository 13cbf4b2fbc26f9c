"""Datasets, multi-view augmentation pipelines and the LightningDataModule."""
from .datamodule import SSLDataModule
from .recipes import MultiViewRecipe, ViewAugment, build_recipe
from .samplers import ContiguousEvalSampler, ShuffledBatchSampler, trim_gathered
from .sources import (KNOWN_DATASETS, CorruptImageError, DatasetNotFoundError, Source, Split, load_source,
                      stratified_subset)

__all__ = ["SSLDataModule", "MultiViewRecipe", "ViewAugment", "build_recipe", "ContiguousEvalSampler",
           "ShuffledBatchSampler", "trim_gathered", "KNOWN_DATASETS", "CorruptImageError", "DatasetNotFoundError",
           "Source", "Split", "load_source", "stratified_subset"]
