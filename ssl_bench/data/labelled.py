"""The labelled subset of a semi-supervised run and class-balanced support batches drawn from it.

Used by PAWS (Assran et al., 2021): a fixed labelled subset of the train split (a fraction, drawn
class-balanced and seeded, or a file of indices; ``data/label_subset.py``, shared with few-label
evaluation), and every step a support batch with the same number of images of every class, drawn
only from that subset.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from .label_subset import balanced_label_subset, read_label_indices


def labelled_indices(labels: Tensor, fraction: float | None = None, index_file: str | None = None,
                     seed: int = 0) -> Tensor:
    """Sorted indices of the labelled subset: ``index_file`` if given, else ``fraction`` of the
    labels, class-balanced and seeded (``balanced_label_subset``: the images that
    ``ssl-bench eval --label-fraction`` takes for the same fraction and seed)."""
    if (fraction is None) == (index_file is None):
        raise ConfigError("give exactly one of model.label_fraction and model.label_indices")
    if index_file is not None:
        return read_label_indices(index_file, len(labels), "model.label_indices")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ConfigError(f"model.label_fraction must be in (0, 1], got {fraction!r}")
    return balanced_label_subset(labels, float(fraction), seed)


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
