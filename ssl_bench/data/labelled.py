"""The labelled subset of a semi-supervised run and class-balanced support batches drawn from it.

Used by PAWS (Assran et al., 2021): a fixed labelled subset of the train split (a fraction, drawn
class-stratified and seeded, or a file of indices), and every step a support batch with the same
number of images of every class, drawn only from that subset.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..errors import ConfigError
from .sources import stratified_subset


def read_index_file(path: str | Path, num_samples: int) -> Tensor:
    """Train-split indices from a text file (integers separated by whitespace or commas)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"label index file not found: {path}")
    try:
        values = [int(tok) for tok in path.read_text().replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"label index file {path} must hold integers separated by spaces, commas or newlines") from None
    idx = torch.tensor(values, dtype=torch.long)
    if len(idx) == 0:
        raise ConfigError(f"label index file {path} is empty")
    if int(idx.min()) < 0 or int(idx.max()) >= num_samples:
        raise ConfigError(f"label index file {path}: indices must be in 0..{num_samples - 1}")
    if len(idx.unique()) != len(idx):
        raise ConfigError(f"label index file {path} repeats indices")
    return idx.sort().values


def labelled_indices(labels: Tensor, fraction: float | None = None, index_file: str | None = None,
                     seed: int = 0) -> Tensor:
    """Indices of the labelled subset: ``index_file`` if given, else a seeded class-stratified
    ``fraction`` of the samples (``round(fraction * N)`` in all, split over the classes in
    proportion to their size: equal counts on a balanced dataset)."""
    if (fraction is None) == (index_file is None):
        raise ConfigError("give exactly one of model.label_fraction and model.label_indices")
    if index_file is not None:
        return read_index_file(index_file, len(labels))
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ConfigError(f"model.label_fraction must be in (0, 1], got {fraction!r}")
    return stratified_subset(labels, max(1, round(fraction * len(labels))), seed)


class SupportSampler:
    """Class-balanced support batches from a labelled subset: each draw has ``per_class`` distinct
    images of every class (positions into the labelled subset), drawn with ``generator``.

    The generator (CPU) is the sampler's only state: save ``generator.get_state()`` to continue
    the same sequence after a resume."""

    def __init__(self, labels: Tensor, per_class: int, generator: torch.Generator) -> None:
        labels = labels.cpu()
        self.classes = labels.unique()
        self.members = [torch.nonzero(labels == c).flatten() for c in self.classes]
        smallest = min(len(m) for m in self.members)
        if isinstance(per_class, bool) or not isinstance(per_class, int) or not 0 < per_class <= smallest:
            raise ConfigError(f"model.support_per_class must be an int in 1..{smallest} (the smallest class "
                              f"of the labelled subset has {smallest} images), got {per_class!r}")
        self.per_class = per_class
        self.generator = generator

    def __call__(self) -> Tensor:
        picks = [m[torch.randperm(len(m), generator=self.generator)[: self.per_class]] for m in self.members]
        return torch.cat(picks)
