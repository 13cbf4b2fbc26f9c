"""Few-label evaluation: a seeded, class-balanced subset of the training labels.

The usual semi-supervised protocol (1% / 10% of ImageNet labels, 4,000 CIFAR-10 labels = 400 per
class) takes the same number of labelled images from every class. ``balanced_label_subset`` does
that: ``round(fraction * N / C)`` images per class (at least one), drawn from each class with a
generator seeded by ``seed``, so the same seed always gives the same indices. It is the one
definition of a labelled subset: ``ssl-bench eval --label-fraction F`` and PAWS's
``model.label_fraction F`` with the same seed take the same images (and read index files alike).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ConfigError


def per_class_count(num_labels: int, num_classes: int, fraction: float) -> int:
    """Images per class for ``fraction`` of ``num_labels`` labels spread evenly over the classes."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"label fraction must be in (0, 1], got {fraction}")
    return max(1, round(fraction * num_labels / num_classes))


def balanced_label_subset(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Sorted indices of ``per_class_count`` images of every class present in ``labels``."""
    if fraction == 1.0:
        return torch.arange(len(labels))
    classes, counts = torch.unique(labels, return_counts=True)
    take = per_class_count(len(labels), len(classes), fraction)
    if take > int(counts.min()):
        smallest = int(classes[counts.argmin()])
        raise ConfigError(f"label fraction {fraction}: {take} labels per class, but class {smallest} "
                          f"has only {int(counts.min())} training images")
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes.tolist():
        members = torch.nonzero(labels == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=gen)[:take]])
    return torch.cat(chosen).sort().values


def read_label_indices(path: str | Path, num_train: int, what: str = "--label-indices") -> torch.Tensor:
    """Sorted indices into the train split from a file: a JSON list, or integers separated by
    white space or commas. ``what`` names the option in the one-line errors (a missing or empty
    file, a non-integer, an index out of range, a repeated index)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}: file not found: {path}")
    text = path.read_text().strip()
    try:
        values = json.loads(text) if text.startswith("[") else [int(v) for v in text.replace(",", " ").split()]
        idx = torch.as_tensor(values, dtype=torch.long)
    except (ValueError, TypeError):
        raise ConfigError(f"{what}: {path} must hold a JSON list or integers separated by spaces, commas "
                          "or newlines") from None
    if idx.ndim != 1 or idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= num_train:
        raise ConfigError(f"{what}: {path} must hold indices in 0..{num_train - 1}")
    if len(idx.unique()) != len(idx):
        raise ConfigError(f"{what}: {path} repeats indices")
    return idx.sort().values
