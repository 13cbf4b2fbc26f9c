"""Projector / predictor heads: the MLPs the methods' papers describe."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, batch_norm: bool = True,
        last_batch_norm: bool = False, last_bias: bool = True,
        activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """[Linear -> (BN) -> activation] x (num_layers - 1) -> Linear (-> BN without affine, as SimSiam's
    projector output). ``num_layers=1`` is a single Linear; ``activation`` ReLU, or GELU for the ViT
    methods' heads (MSN)."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(dim, hidden_dim, bias=not batch_norm)]
        if batch_norm:
            layers += [nn.BatchNorm1d(hidden_dim)]
        layers += [nn.ReLU(inplace=True) if activation is nn.ReLU else activation()]
        dim = hidden_dim
    layers += [nn.Linear(dim, out_dim, bias=last_bias and not last_batch_norm)]
    if last_batch_norm:
        layers += [nn.BatchNorm1d(out_dim, affine=False)]
    return nn.Sequential(*layers)


class DINOHead(nn.Module):
    """DINO's projection head (Caron et al. 2021, Sec. 3.1 and Appendix): an MLP
    (``num_layers`` Linear layers, GELU, hidden 2048, optional BN) to a ``bottleneck_dim`` output,
    l2 normalisation, then a weight-normalised Linear without bias to ``out_dim`` (K = 65536 on
    ImageNet). With ``norm_last_layer`` the weight-norm gain is fixed to 1 (the official default)."""

    def __init__(self, in_dim: int, out_dim: int = 65536, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 num_layers: int = 3, batch_norm: bool = False, norm_last_layer: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(max(1, num_layers) - 1):
            layers += [nn.Linear(dim, hidden_dim)]
            if batch_norm:
                layers += [nn.BatchNorm1d(hidden_dim)]
            layers += [nn.GELU()]
            dim = hidden_dim
        layers += [nn.Linear(dim, bottleneck_dim)]
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # torch's weight-norm parametrisation: original0 = gain g (out_dim, 1), original1 = direction v
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        gain = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            gain.fill_(1.0)
        gain.requires_grad_(not norm_last_layer)

    def bottleneck(self, x: Tensor) -> Tensor:
        """The l2-normalised bottleneck embedding (what the last layer sees)."""
        return F.normalize(self.mlp(x), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.last_layer(self.bottleneck(x))
