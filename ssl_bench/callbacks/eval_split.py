"""The whole evaluation split from per-rank validation outputs, in order and without padding."""
from __future__ import annotations

import pytorch_lightning as pl
import torch

from ..distributed import gather_uneven


def split_size(trainer: pl.Trainer, dataloader_idx: int) -> int | None:
    """Images in validation dataloader ``dataloader_idx``'s split (``None`` if it has no length)."""
    try:
        return len(trainer.val_dataloaders[dataloader_idx].dataset)
    except (TypeError, IndexError, KeyError, AttributeError):
        return None


def gather_split(parts: list[torch.Tensor], trainer: pl.Trainer, dataloader_idx: int) -> torch.Tensor:
    """This rank's validation outputs, gathered over ranks in rank order and trimmed to the split:
    the rank-contiguous eval sampler (``data.samplers.ContiguousEvalSampler``) pads the last rank
    with repeats of the final image, which must not be counted twice."""
    return gather_uneven(torch.cat(parts))[: split_size(trainer, dataloader_idx)]
