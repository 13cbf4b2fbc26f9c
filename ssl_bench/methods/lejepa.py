"""LeJEPA (Balestriero and LeCun, 2025)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import losses
from .base import BaseMethod
from .er import ERInputs
from .heads import mlp
from .vit_heads import MaskSeed


class LeJEPA(BaseMethod):
    """LeJEPA: Provable and Scalable Self-Supervised Learning Without the Heuristics (Balestriero and
    LeCun 2025), the paper's pseudo-code:

        z_v = projector(backbone(view v))              # V views: global, then local (small crops)
        centre = mean of z_v over the global views     # per image, with gradients
        pred = mean_v ||centre - z_v||^2                # every view, the global ones included
        A = M random unit directions                   # new every step, the same on every rank
        loss = (1 - lambda) pred + lambda mean_v SIGReg(z_v A)   # Epps-Pulley vs N(0, 1), global batch

    No EMA teacher, no predictor, no stop-gradient; any backbone (ResNet or ViT). The directions
    come from ``self.slice_seed`` (a seed in the checkpoint, mixed with the optimiser step), so a
    resumed run draws what an uninterrupted one would. The Epps-Pulley integral uses 17 points on
    [-5, 5] with the weight exp(-t^2/2) (the paper's listing; ``sigreg_points``, ``sigreg_t_max``).

    Paper settings (as we recall them; check against the paper before quoting): lambda = 0.05,
    2 global views of 224 px and 6 local views of 96 px, a 3-layer MLP projector with BatchNorm
    (hidden 2048) to a small embedding, M = 1024 directions (fewer work), AdamW with weight decay
    0.05, lr 5e-4 and warm-up then cosine.

    ER switch: SIGReg is the entropy-like part (among laws of a given covariance the Gaussian has
    the most entropy) and the prediction loss the reconstruction-like one, so the method declares
    sphere ER inputs: the entropy of the global views' embeddings and the reconstruction of each
    image's centre from every view (no stop-gradient, as LeJEPA). The ER terms see l2-normalised
    embeddings, so ``er_reconstruction: auto`` (vMF) is a direction-only variant of LeJEPA without
    SIGReg; ``native`` keeps the whole LeJEPA loss (SIGReg included) and subtracts the ER entropy.
    """

    def __init__(self, proj_hidden_dim: int = 2048, proj_dim: int = 128, proj_layers: int = 3,
                 lambd: float = 0.05, num_slices: int = 1024, sigreg_points: int = 17, sigreg_t_max: float = 5.0,
                 **base: Any) -> None:
        super().__init__(**base)
        if not 0.0 <= lambd <= 1.0:
            raise ValueError(f"LeJEPA: lambd must be in [0, 1], got {lambd}")
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=proj_layers)
        self.slice_seed = MaskSeed()

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        hp = self.hparams
        z = [self.projector(f) for f in feats]
        gen = self.slice_seed.generator(self.global_step, z[0].device, per_rank=False)
        directions = losses.random_directions(z[0].shape[1], hp.num_slices, gen)
        grid = losses.quadrature_grid(hp.sigreg_t_max, hp.sigreg_points)
        loss = losses.lejepa_loss(z[: self.num_global_views], z, directions, hp.lambd, grid)
        glob = z[: self.num_global_views]
        centre = torch.stack(glob).mean(0)
        er = ERInputs.sphere(entropy=glob, pairs=[(zv, centre) for zv in z])
        return {"loss": loss, "z": glob, "er": er}
