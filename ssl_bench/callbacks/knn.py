"""Weighted k-NN evaluation of the frozen backbone, run at every validation."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

from ..metrics import knn_accuracy, weighted_knn_predict
from .eval_split import gather_split

VAL_LOADER, BANK_LOADER = 0, 1


class KNNEvaluator(pl.Callback):
    """Weighted k-NN (Wu et al. 2018): cosine similarity, top-k votes weighted exp(sim/T).

    Collects backbone features of validation dataloader 0 (queries) and 1 (the un-augmented train
    split: the bank), gathers them across ranks, classifies in chunks and logs ``val_knn_top1`` and
    ``val_knn_top5``. Defaults k=20, T=0.07 as in Wu et al. and most SSL papers' k-NN monitor.
    """

    def __init__(self, k: int = 20, temperature: float = 0.07, chunk_size: int = 1024) -> None:
        self.k, self.temperature, self.chunk_size = k, temperature, chunk_size
        self._feats: dict[int, list[torch.Tensor]] = {}
        self._labels: dict[int, list[torch.Tensor]] = {}
        self._warned = False

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._feats, self._labels = {}, {}

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._feats.setdefault(dataloader_idx, []).append(outputs["feats"].detach())
        self._labels.setdefault(dataloader_idx, []).append(outputs["labels"].detach())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if BANK_LOADER not in self._feats or VAL_LOADER not in self._feats:
            if not self._warned:
                rank_zero_warn("KNNEvaluator needs two validation dataloaders (val split, train bank); "
                               "val_knn_top1 is not logged")
                self._warned = True
            return
        bank, bank_labels, queries, query_labels = (
            gather_split(store[i], trainer, i)
            for i in (BANK_LOADER, VAL_LOADER) for store in (self._feats, self._labels))
        num_classes = pl_module.hparams.get("num_classes") or int(bank_labels.max()) + 1
        scores = weighted_knn_predict(bank, bank_labels, queries, num_classes, k=self.k,
                                      temperature=self.temperature, chunk_size=self.chunk_size)
        acc = knn_accuracy(scores, query_labels, top_k=(1, 5))
        pl_module.log("val_knn_top1", float(acc[1]), sync_dist=True)
        pl_module.log("val_knn_top5", float(acc[5]), sync_dist=True)
        self._feats, self._labels = {}, {}
