"""SimSiam (Chen & He, CVPR 2021)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from .. import losses
from .base import BaseMethod
from .er import ERInputs
from .heads import mlp


class SimSiam(BaseMethod):
    """Exploring Simple Siamese Representation Learning (Chen & He 2021). Projector: 3-layer MLP
    with BN on every layer including the output (Sec. 3, "Projection MLP"; 2 layers on CIFAR,
    Appendix A); predictor: bottleneck MLP d -> d/4 -> d. Eq. 3: symmetrised negative cosine
    with stop-gradient on the projections, L = D(p1, sg(z2))/2 + D(p2, sg(z1))/2.

    ER inputs (Rodriguez-Galvez et al. 2023, SimSiam-ER): reconstruction pairs (p1, sg(z2)) and
    (p2, sg(z1)), the pairs of Eq. 3 (the negative cosine is an affine function of the vMF
    log-likelihood); entropy on the projections z1, z2 with gradients: they are the reconstructed
    variable Z2 of the bound (only the reconstruction target is stop-gradiented)."""

    def __init__(self, proj_hidden_dim: int = 2048, proj_dim: int = 2048, pred_hidden_dim: int = 512,
                 proj_layers: int = 2, **base: Any) -> None:
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=proj_layers,
                             last_batch_norm=True)
        self.predictor = mlp(proj_dim, pred_hidden_dim, proj_dim)

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        z1, z2 = (self.projector(f) for f in feats[:2])
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = 0.5 * (losses.simsiam_loss(p1, z2) + losses.simsiam_loss(p2, z1))
        er = ERInputs.sphere(entropy=[z1, z2], pairs=[(p1, z2.detach()), (p2, z1.detach())])
        return {"loss": loss, "z": [z1, z2], "er": er}
