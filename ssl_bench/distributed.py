"""All-gather helpers on top of Lightning's (which needs equal shapes on every rank)."""
from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor


@torch.no_grad()
def gather_uneven(pl_module: pl.LightningModule, x: Tensor) -> Tensor:
    """Concatenate ``x`` (N_r, ...) over ranks when N_r differs: pad to the largest, gather, trim."""
    if pl_module.trainer.world_size == 1:
        return x
    sizes = pl_module.all_gather(torch.tensor(x.shape[0], device=x.device)).tolist()
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[: x.shape[0]] = x
    gathered = pl_module.all_gather(padded)
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)])
