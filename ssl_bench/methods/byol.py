"""BYOL (Grill et al., NeurIPS 2020)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from .. import losses
from .er import ERInputs
from .heads import mlp
from .momentum import BaseMomentumMethod


class BYOL(BaseMomentumMethod):
    """Bootstrap Your Own Latent (Grill et al. 2020). Online projector + predictor (Sec. 3.3:
    MLP 4096-256 with BN), EMA target network (tau 0.99 -> 1, cosine). Eq. 2: normalised MSE between
    the online prediction of one view and the target projection of the other, symmetrised (Eq. 4).

    ER inputs (Rodriguez-Galvez et al. 2023, BYOL-ER): reconstruction pairs (online prediction of
    one view, target projection of the other), the pairs of Eq. 2 (BYOL's normalised MSE is
    ``2 - 2 cos``, an affine function of the vMF log-likelihood, so it maximises this reconstruction
    term); entropy on the online projections z1, z2. The ER bound's H(Z2) is that of the
    reconstructed variable, the target projection, but the target gets no gradient (EMA only): the
    online projector is the same head, and its entropy is the one the loss can raise (the target
    follows it through the EMA)."""

    def __init__(self, proj_hidden_dim: int = 4096, proj_dim: int = 256, pred_hidden_dim: int = 4096,
                 **base: Any) -> None:
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)
        self.predictor = mlp(proj_dim, pred_hidden_dim, proj_dim)
        self.teacher_projector = self.make_teacher(self.projector)

    def ssl_loss(self, feats: list[Tensor], teacher_feats: list[Tensor]) -> dict[str, Any]:
        z1, z2 = (self.projector(f) for f in feats[:2])
        p1, p2 = self.predictor(z1), self.predictor(z2)
        t1, t2 = (self.teacher_projector(t) for t in teacher_feats)
        loss = losses.byol_loss(p1, t2) + losses.byol_loss(p2, t1)
        er = ERInputs.sphere(entropy=[z1, z2], pairs=[(p1, t2), (p2, t1)])
        return {"loss": loss, "z": [z1, z2], "er": er}
