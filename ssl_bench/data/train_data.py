"""What a method may take from its training data, handed to it by the build layer before ``fit``
(``BaseMethod.attach_data``): a method declares what it needs by overriding that hook, instead of
reaching into ``trainer.datamodule`` during setup."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .recipes import ViewAugment
from .sources import Split


@dataclass(frozen=True)
class TrainData:
    """The training data's facts: ``num_samples`` (the training split's size: per-sample memory),
    ``mean`` / ``std`` (per channel, of the normalisation the batches carry), ``train`` (the training
    split: labels, and images when held in memory), ``views`` (the recipe's view augmentations) and
    ``normalise`` (uint8 images -> the normalised tensors evaluation sees)."""

    dataset: str
    num_samples: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    train: Split
    views: list[ViewAugment]
    normalise: Callable[[torch.Tensor], torch.Tensor]

    @classmethod
    def of(cls, dm: Any) -> "TrainData":
        """The facts of an ``SSLDataModule``."""
        return cls(dataset=dm.hparams.dataset, num_samples=int(dm.num_train_samples), mean=tuple(dm.mean),
                   std=tuple(dm.std), train=dm.source.train, views=list(dm.recipe.views),
                   normalise=dm.eval_batch_transform)
