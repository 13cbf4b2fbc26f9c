"""Projector / predictor heads: the MLPs the methods' papers describe."""
from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, batch_norm: bool = True,
        last_batch_norm: bool = False, last_bias: bool = True) -> nn.Sequential:
    """[Linear -> (BN) -> ReLU] x (num_layers - 1) -> Linear (-> BN without affine, as SimSiam's
    projector output). ``num_layers=1`` is a single Linear."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(dim, hidden_dim, bias=not batch_norm)]
        if batch_norm:
            layers += [nn.BatchNorm1d(hidden_dim)]
        layers += [nn.ReLU(inplace=True)]
        dim = hidden_dim
    layers += [nn.Linear(dim, out_dim, bias=last_bias and not last_batch_norm)]
    if last_batch_norm:
        layers += [nn.BatchNorm1d(out_dim, affine=False)]
    return nn.Sequential(*layers)
