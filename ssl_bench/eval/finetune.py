"""The ``finetune`` protocol: the backbone and a new linear head trained together on the labelled
train images (``fitting.fit_classifier``); with ``--random-init``, the supervised-only baseline of
semi-supervised methods (PAWS, Sec. 5)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import copy

import torch
from torch import Tensor

from ..data.recipes import view_augment
from ..data.tree_images import close as close_images, embed_images, hold_or_stream
from ..fitting import fit_classifier
from ..metrics import knn_accuracy
from .registry import EpochsRecord, accuracy_metrics, positive, register_protocol, setting

# fine-tuning recipe (fitting.fit_classifier's defaults, recorded in every finetune result):
# strong SimCLR-CIFAR view, SGD momentum 0.9, lr 0.05, weight decay 5e-4, batch 64, cosine schedule
FINETUNE_RECIPE = {"view": "strong", "optimizer": "sgd", "momentum": 0.9, "lr": 0.05, "weight_decay": 5e-4,
                   "batch_size": 64, "schedule": "cosine"}


def finetune_scores(target: Any, epochs: int, seed: int, train_idx: Tensor | None = None,
                    memory_limit_mb: float | None = None, **fit_options: Any) -> dict[int, float]:
    """Fine-tuning protocol: a copy of the target's backbone (the checkpoint's, or the config's at
    random initialisation; ``target`` an ``evaluate.EvalTarget``) and a new linear head trained
    together on the (labelled) train images, top-1/top-5 on the val images. The head's
    initialisation and the augmentation stream depend only on ``seed``, so a checkpoint and its
    random-init baseline differ only in the starting backbone.

    Image trees: every file is prepared as the k-NN / linear features' loader prepares it (resize,
    centre crop ``data.image_size``), then held in memory as uint8 while the decoded labelled train
    images, then the val images, fit in ``memory_limit_mb`` (default ``$SSL_BENCH_TREE_MEMORY_MB``,
    else 2048 MiB), else streamed from the files in ``data.num_workers`` workers; the result is the
    same either way (``data.tree_images``). ``fit_options`` go to ``fitting.fit_classifier`` (another
    optimiser, label smoothing: the ``vit_finetune`` protocol)."""
    dm, model = target.dm, target.model()
    train, val = dm.eval_splits()
    if train_idx is not None:
        train = train.subset(train_idx)
    images, val_images = hold_or_stream([train, val], dm.image_size, int(dm.hparams.num_workers), memory_limit_mb,
                                        names=(f"finetune train ({target.cfg['data']['dataset']})",
                                               f"finetune val ({target.cfg['data']['dataset']})"))
    try:
        torch.manual_seed(seed)
        classifier = fit_classifier(copy.deepcopy(model.backbone), model.feature_dim, images, train.labels,
                                    view_augment(FINETUNE_RECIPE["view"], dm.image_size, dm.mean, dm.std),
                                    dm.num_classes, epochs=epochs, batch_size=FINETUNE_RECIPE["batch_size"],
                                    lr=FINETUNE_RECIPE["lr"], weight_decay=FINETUNE_RECIPE["weight_decay"],
                                    seed=seed, device="cuda" if torch.cuda.is_available() else "cpu",
                                    **fit_options)
        scores = embed_images(classifier, val_images, dm.eval_batch_transform).cpu()
    finally:
        close_images(images, val_images)
    return knn_accuracy(scores, val.labels.cpu(), top_k=(1, 5))


@register_protocol
class Finetune(EpochsRecord):
    """The backbone and a new linear head trained together on the labelled train images
    (``finetune_scores``); with ``--random-init``, the supervised-only baseline."""

    name = "finetune"
    help = "the backbone and a new linear head trained on the labelled images (with --random-init: " \
           "the supervised-only baseline)"
    needs_features = False

    @dataclass
    class Settings:
        epochs: int = setting(100, "training epochs", positive, "must be a positive integer")

    def run(self, target: Any, settings: Any, labelled: Tensor | None) -> dict[str, float]:
        return accuracy_metrics(finetune_scores(target, settings.epochs, target.seed, labelled))

    def record(self, settings: Any) -> dict[str, Any]:
        return {**super().record(settings), "recipe": FINETUNE_RECIPE}
