"""Fitting a classifier: the one training loop (``fit_epochs``) under linear evaluation on frozen
features (``train_linear``: the ``linear`` protocol, PAWS's few-label probe), fine-tuning a
backbone with a new head on images (``fit_classifier``: the ``finetune`` protocol, the
supervised-only baseline) and SCAN's two stages (``eval/scan.py``). What differs between them -
the batches of an epoch, the loss of a batch, the optimiser and schedule - is passed in; the
online linear probe is the one classifier trained elsewhere, inside the Lightning fit
(``callbacks/linear_probe.py``), one step per pretraining step.

Fine-tuning a backbone at random initialisation (``ssl-bench eval --random-init --protocol
finetune``) is the supervised-only baseline of semi-supervised methods; fine-tuning a pretrained
one with the same recipe is what their pretraining is compared by.

PAWS's claim is that the unlabelled images help: the supervised-only model is what it has to beat
with the same labels, and fine-tuning the PAWS backbone with that same recipe (PAWS paper, Sec. 5,
"fine-tuned" as opposed to PAWS-NN) isolates what its pretraining adds. A plain loop (no Lightning
run): a few hundred steps on a few hundred in-memory images. The images are a uint8 tensor, or an
image tree's files streamed batch by batch (``data.tree_images``: the same images, the same result).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data.batched_augment import BatchedViewAugment
from .data.recipes import ViewAugment
from .data.tree_images import Images, image_batches


def fit_epochs(optimizer: torch.optim.Optimizer, epochs: int, epoch_batches: Callable[[], Iterable[Any]],
               batch_loss: Callable[[Any], Tensor], scheduler: Any = None,
               epoch_start: Callable[[], None] | None = None) -> list[float]:
    """The one classifier-fitting loop: ``epochs`` times, ``epoch_start()`` (e.g. train/eval modes),
    then for each batch of ``epoch_batches()`` (drawn at the epoch's start, so streamed images can
    be read ahead) one optimiser step on ``batch_loss(batch)`` and one ``scheduler`` step (per step,
    when given). Returns the mean loss of each epoch."""
    history = []
    for _ in range(epochs):
        if epoch_start is not None:
            epoch_start()
        total: Any = 0.0  # summed on the loss's device: no synchronisation per step
        steps = 0
        for batch in epoch_batches():
            loss = batch_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total, steps = total + loss.detach().float(), steps + 1
        history.append(float(total) / max(1, steps))
    return history


OptimiserFactory = Callable[[nn.Sequential, int], tuple[torch.optim.Optimizer, Any]]


def fit_classifier(net: nn.Module, feature_dim: int, images: Images, labels: Tensor, view: ViewAugment,
                   num_classes: int, epochs: int = 100, batch_size: int = 64, lr: float = 0.05,
                   weight_decay: float = 5e-4, seed: int = 0, device: torch.device | str = "cpu", *,
                   optimiser: OptimiserFactory | None = None, label_smoothing: float = 0.0) -> nn.Module:
    """``net`` and a new linear head trained together on uint8 ``images`` / ``labels``: ``view``'s
    augmentation drawn from a generator seeded by ``seed``, SGD (momentum 0.9), cosine learning rate
    over all steps. The head is initialised from torch's global RNG (seed it first for a repeatable
    run). ``images``: a tensor (moved to ``device`` whole) or ``tree_images.StreamedImages`` (each
    batch read from the files; the same draws, so the same classifier). ``optimiser(model, total_steps)
    -> (optimizer, per-step scheduler)`` replaces SGD + cosine (``lr`` and ``weight_decay`` are then
    its own; the ViT fine-tuning protocol's layer-wise decay). Returns the classifier (eval mode, on
    ``device``)."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(net, nn.Linear(feature_dim, num_classes)).to(device)
    if isinstance(images, Tensor):
        images = images.to(device)
    labels = labels.to(device)
    augment = BatchedViewAugment(view, generator=gen)
    steps_per_epoch = max(1, math.ceil(len(images) / batch_size))
    if optimiser is None:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    else:
        opt, sched = optimiser(model, epochs * steps_per_epoch)
    model.train()

    def epoch_batches() -> Iterable[tuple[Tensor, Tensor]]:
        # the epoch's batches (BatchNorm needs two samples), drawn before any augmentation of the epoch
        order = [idx for idx in torch.randperm(len(images), generator=gen).split(batch_size) if len(idx) >= 2]
        return zip(order, image_batches(images, order))

    fit_epochs(opt, epochs, epoch_batches, lambda b: F.cross_entropy(model(augment(b[1].to(device))), labels[b[0]],
                                                                label_smoothing=label_smoothing),
               sched)
    return model.eval()


def train_linear(train_x: Tensor, train_y: Tensor, num_classes: int, epochs: int = 100, batch_size: int = 256,
                 lr: float = 0.1, weight_decay: float = 0.0, seed: int = 0) -> nn.Linear:
    """Linear classifier on frozen, batch-normalised (no affine) features: SGD + Nesterov, cosine lr
    (the "frozen features" protocol of e.g. MoCo v3 / DINO, without augmentation)."""
    gen = torch.Generator().manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    with torch.random.fork_rng(devices=[]):  # the head's initial weights follow ``seed``, not the process's history
        torch.manual_seed(seed)
        head = nn.Linear(train_x.shape[1], num_classes).to(train_x.device)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(train_x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    x = (train_x - mean) / std
    fit_epochs(opt, epochs, lambda: torch.randperm(len(x), generator=gen).to(x.device).split(batch_size),
               lambda idx: F.cross_entropy(head(x[idx]), train_y[idx]), sched)
    head.feature_mean, head.feature_std = mean, std  # type: ignore[assignment]
    return head
