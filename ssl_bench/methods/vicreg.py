"""VICReg (Bardes, Ponce & LeCun, ICLR 2022)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from .. import losses
from .base import BaseMethod
from .heads import mlp


class VICReg(BaseMethod):
    """Variance-Invariance-Covariance Regularization (Bardes et al. 2022), Eq. 6:

        z, z' = expander(y), expander(y')                  # 3 layers, 8192 units on ImageNet
        loss = lambda s(z, z') + mu [v(z) + v(z')] / 2 + nu [c(z) + c(z')]

    with lambda = mu = 25, nu = 1 and the std epsilon 1e-4 (Sec. 4.3). The variance term averages the
    two views' hinges as the official code does (a peer sums them: twice the weight); see
    ``ssl_bench.losses.vicreg``. Statistics are over the global batch (embeddings gathered with
    gradients); each term is logged on its own (``vicreg_invariance``, ``vicreg_variance``,
    ``vicreg_covariance``, unweighted).
    """

    def __init__(self, proj_hidden_dim: int = 8192, proj_dim: int = 8192, sim_weight: float = 25.0,
                 var_weight: float = 25.0, cov_weight: float = 1.0, eps: float = 1e-4, **base: Any) -> None:
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=3)

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        hp = self.hparams
        z1, z2 = (self.projector(f) for f in feats[:2])
        g1, g2 = self.gather(z1), self.gather(z2)
        terms = {"invariance": losses.invariance_loss(g1, g2),
                 "variance": losses.variance_loss(g1, g2, eps=hp.eps),
                 "covariance": losses.covariance_loss(g1, g2)}
        loss = (hp.sim_weight * terms["invariance"] + hp.var_weight * terms["variance"]
                + hp.cov_weight * terms["covariance"])
        if self._trainer is not None:
            for name, value in terms.items():
                self.log(f"vicreg_{name}", value.detach(), on_step=False, on_epoch=True)
        return {"loss": loss, "z": [z1, z2]}
