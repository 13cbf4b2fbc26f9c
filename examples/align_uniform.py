"""A new method in a few lines: optimise alignment + uniformity directly (Wang & Isola, ICML 2020,
Eq. 6: L = L_align(alpha=2) + lambda * (L_uniform(t=2) of each view) / 2).

Run it with:  PYTHONPATH=examples ssl-bench pretrain --config examples/align_uniform.yaml
(from the repository root). The probe, k-NN and collapse metrics come from BaseMethod.
"""
from typing import Any

from torch import Tensor

from ssl_bench.methods import BaseMethod
from ssl_bench.methods.heads import mlp
from ssl_bench.metrics import alignment, uniformity


class AlignUniform(BaseMethod):
    def __init__(self, proj_hidden_dim: int = 512, proj_dim: int = 128, lambd: float = 1.0,
                 **base: Any) -> None:
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        z1, z2 = (self.projector(f) for f in feats[:2])
        uniform = (uniformity(z1) + uniformity(z2)) / 2
        return {"loss": alignment(z1, z2) + self.hparams.lambd * uniform, "z": [z1, z2]}
