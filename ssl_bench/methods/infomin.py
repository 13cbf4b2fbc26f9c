"""InfoMin (Tian et al. 2020, "What Makes for Good Views for Contrastive Learning?")."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import losses
from ..errors import ConfigError
from .base import SSLOutput
from .jigsaw import JigsawHead, cut_patches, default_patch_size, sample_puzzles
from .moco import MoCoV2Plus


class InfoMin(MoCoV2Plus):
    """InfoMin (Tian et al. 2020), its recipe of Sec. 5: the MoCo v2 engine, the InfoMin augmentation
    (``data.augment: {name: infomin}``: views that share less information) and a JigSaw branch (PIRL's).

    Per step, for views x1, x2: puzzles P(x1), P(x2) (``grid x grid`` patches, ``jigsaw.py``) go
    through the backbone with the views; q_i = g(f(x_i)), j_i = h(f(P(x_i))), k_i = g_m(f_m(x_i))
    (no gradient);
        L = 1/2 [ (1 - beta) L_NCE(q1, k2) + beta L_NCE(j1, k2) + (the same with 1 and 2 swapped) ]
    with the queue as negatives (``losses.infomin_loss``, beta = 0.5); then both views' keys are
    enqueued. The official code contrasts one query view with one key view; the symmetric form is
    this project's MoCo v2+ engine's."""

    def __init__(self, jigsaw_beta: float = 0.5, jigsaw_grid: int = 3, jigsaw_patch: int | None = None,
                 **moco: Any) -> None:
        if not 0.0 <= jigsaw_beta <= 1.0:
            raise ConfigError(f"model.jigsaw_beta must be in [0, 1], got {jigsaw_beta}")
        if jigsaw_grid < 1 or (jigsaw_patch is not None and jigsaw_patch < 1):
            raise ConfigError(f"model.jigsaw_grid and model.jigsaw_patch must be >= 1, got {jigsaw_grid}, {jigsaw_patch}")
        super().__init__(**moco)
        self.jigsaw_head = JigsawHead(self.feature_dim, self.hparams.proj_dim, jigsaw_grid ** 2)
        # The puzzles' generator: seeded from the run's seed (pl.seed_everything) and the number of
        # puzzles drawn so far, both in the checkpoint, so a resumed run draws the same puzzles.
        self.register_buffer("jigsaw_seed", torch.tensor(torch.initial_seed() % 2 ** 62))
        self.register_buffer("jigsaw_draws", torch.zeros((), dtype=torch.long))

    def puzzles(self, views: list[Tensor]) -> list[Tensor]:
        """Each view's jigsaw patches ``(B * grid^2, 3, p, p)``, cut on the views' device."""
        hp = self.hparams
        size = views[0].shape[-1]
        patch = hp.jigsaw_patch or default_patch_size(size, hp.jigsaw_grid)
        seed = (int(self.jigsaw_seed) * 1_000_003 + int(self.jigsaw_draws)) % 2 ** 63
        self.jigsaw_draws += 1
        gen = torch.Generator().manual_seed(seed)
        out = []
        for x in views:
            p = sample_puzzles(len(x), size, hp.jigsaw_grid, patch, gen)
            out.append(cut_patches(x, p["top"], p["left"], patch))
        return out

    def compute_ssl_loss(self, views: list[Tensor]) -> tuple[list[Tensor], SSLOutput]:
        """The puzzles ride along as extra views: encoded by the online backbone only."""
        x1, x2 = views[:2]
        return super().compute_ssl_loss([x1, x2, *self.puzzles([x1, x2])])

    def ssl_loss(self, feats: list[Tensor], teacher_feats: list[Tensor]) -> dict[str, Any]:
        q1, q2 = (self.projector(f) for f in feats[:2])
        j1, j2 = (self.jigsaw_head(f) for f in feats[2:4])
        with torch.no_grad():
            k1, k2 = (self.teacher_projector(t) for t in teacher_feats[:2])
        negatives = self.queue.contents()
        t, beta = self.hparams.temperature, self.hparams.jigsaw_beta
        loss = 0.5 * (losses.infomin_loss(q1, j1, k2, negatives, t, beta)
                      + losses.infomin_loss(q2, j2, k1, negatives, t, beta))
        self.queue.enqueue(F.normalize(torch.cat([k1, k2]).float(), dim=1))
        return {"loss": loss, "z": [q1, q2]}
