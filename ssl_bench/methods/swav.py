"""SwAV (Caron et al., NeurIPS 2020, "Unsupervised Learning of Visual Features by Contrasting
Cluster Assignments")."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..distributed import rank, world_size
from ..errors import ConfigError
from .base import BaseMethod
from .er import ERInputs
from .heads import mlp
from .queue import FeatureQueue


class SwAV(BaseMethod):
    """SwAV (Caron et al. 2020), Algorithm 1:

    - z = l2-normalised projection of every view (2 global views + the pipeline's small crops,
      Sec. 3.2 multi-crop), scores = z . C with l2-normalised prototypes C (K = 3000);
    - codes q of each global view by distributed Sinkhorn-Knopp (Eq. 3; 3 iterations,
      epsilon 0.05, float32), computed on the view's scores with the queue's scores prepended once
      the queue is full (Sec. 4 / Appendix: small batches "use a queue" of 3,840 embeddings, from
      epoch 15 on ImageNet);
    - swapped prediction (Eq. 1): every global view's code is predicted from every other view
      (temperature 0.1);
    - the prototypes get no gradient during the first ``freeze_prototypes_steps`` iterations
      (official code: ``freeze_prototypes_niters``, 313 = one ImageNet epoch at batch 4096).

    The queue (one per global view) is the shared FeatureQueue and so identical on every rank; for
    the distributed Sinkhorn each rank contributes one shard of it, so the global problem holds
    each queued embedding exactly once, as on one process.
    """

    def __init__(self, proj_hidden_dim: int = 2048, proj_dim: int = 128, num_prototypes: int = 3000,
                 temperature: float = 0.1, sk_epsilon: float = 0.05, sk_iterations: int = 3,
                 queue_size: int = 3840, queue_start_epoch: int = 15, freeze_prototypes_steps: int = 313,
                 **base: Any) -> None:
        if queue_size < 0 or num_prototypes < 1:
            raise ConfigError(f"model.queue_size must be >= 0 and model.num_prototypes >= 1, got "
                              f"{queue_size} and {num_prototypes}")
        super().__init__(**base)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)
        self.prototypes = nn.Linear(proj_dim, num_prototypes, bias=False)
        self.queues = nn.ModuleList([FeatureQueue(queue_size, proj_dim) for _ in range(self.num_global_views)]
                                    if queue_size else [])

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    @torch.no_grad()
    def codes(self, view: int, z: Tensor, scores: Tensor) -> Tensor:
        """Sinkhorn codes of one global view; with the (full) queue's scores prepended, this rank's
        shard of the queue only (the shards of all ranks make up the queue once)."""
        if self.queues and self.queues[view].is_full:
            shard = torch.tensor_split(self.queues[view].contents(), world_size())[rank()]
            scores = torch.cat([self.prototypes(shard.to(z.dtype)), scores])
        q = losses.sinkhorn(scores.detach(), self.hparams.sk_epsilon, self.hparams.sk_iterations)
        return q[-z.shape[0]:]

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        self.normalize_prototypes()
        z = [F.normalize(self.projector(f), dim=1) for f in feats]
        scores = [self.prototypes(zi) for zi in z]
        codes = [self.codes(i, z[i], scores[i]) for i in range(self.num_global_views)]
        loss = losses.swav_loss(scores, codes, self.hparams.temperature)
        if self.queues and self.current_epoch >= self.hparams.queue_start_epoch:
            for queue, zi in zip(self.queues, z):
                queue.enqueue(zi.detach().float())
        return {"loss": loss, "z": z[: self.num_global_views], "er": self.er_inputs(scores, codes)}

    def er_inputs(self, scores: list[Tensor], codes: list[Tensor]) -> ERInputs:
        """The ER objective's inputs (Rodriguez-Galvez et al. 2023, Sec. 5): entropy of the batch-mean
        prototype softmax of the global views (what Sinkhorn's equipartition keeps high), and
        reconstruction of each global view's code from every other view's scores (the swapped
        prediction pairs of ``swav_loss``)."""
        logits = [s / self.hparams.temperature for s in scores]
        pairs = [(logits[v], q) for i, q in enumerate(codes) for v in range(len(logits)) if v != i]
        return ERInputs.softmax(entropy_logits=logits[: self.num_global_views], pairs=pairs)

    def on_after_backward(self) -> None:
        """Prototypes frozen for the first iterations (their gradient dropped before the step)."""
        if self.global_step < self.hparams.freeze_prototypes_steps:
            self.prototypes.weight.grad = None
