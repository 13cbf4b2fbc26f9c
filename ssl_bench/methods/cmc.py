"""CMC (Tian et al., ECCV 2020, "Contrastive Multiview Coding")."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_lab
from torch import Tensor, nn

from .. import losses
from ..backbones import build_backbone
from ..distributed import rank
from ..errors import ConfigError
from .base import BaseMethod, SSLOutput
from .heads import mlp
from .queue import FeatureQueue
from ..data.train_data import TrainData

#: Lab channels of each named view (Sec. 4.1: L and ab on ImageNet; "rgb" is the image itself)
VIEW_CHANNELS: dict[str, tuple[int, ...]] = {"L": (0,), "ab": (1, 2), "a": (1,), "b": (2,), "Lab": (0, 1, 2)}
#: Lab normalisation of the official CMC code (centre and half-range of L, a, b over sRGB)
LAB_MEAN = ((0 + 100) / 2, (-86.183 + 98.233) / 2, (-107.857 + 94.478) / 2)
LAB_STD = ((100 - 0) / 2, (86.183 + 98.233) / 2, (107.857 + 94.478) / 2)


def rgb_to_normalized_lab(rgb: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> Lab (kornia's sRGB -> CIE Lab, D65), each channel mapped to about
    [-1, 1] with the official CMC constants. Float32 under any autocast."""
    with torch.autocast(device_type=rgb.device.type, enabled=False):
        lab = rgb_to_lab(rgb.float().clamp(0, 1))
        mean, std = (torch.tensor(v, device=rgb.device).view(1, 3, 1, 1) for v in (LAB_MEAN, LAB_STD))
        return (lab - mean) / std


class LabViewEncoders(nn.Module):
    """One encoder per view, each seeing its channels of the Lab image (``in_chans`` = their number).
    ``forward`` returns the concatenated features of all encoders on the same image: CMC's
    representation for evaluation (Sec. 4.1: "concatenate the features of L and ab")."""

    def __init__(self, views: tuple[str, ...], backbone: str, backbone_kwargs: dict) -> None:
        super().__init__()
        self.views = tuple(views)
        built = [build_backbone(backbone, in_chans=len(VIEW_CHANNELS[v]), **backbone_kwargs) for v in self.views]
        self.encoders = nn.ModuleList([m for m, _ in built])
        self.dims = [d for _, d in built]
        # the normalisation of the incoming RGB images (set from the data at setup; in the checkpoint)
        self.register_buffer("rgb_mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.register_buffer("rgb_std", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))

    def split(self, images: Tensor) -> list[Tensor]:
        """Normalised RGB images -> each view's Lab channels."""
        lab = rgb_to_normalized_lab(images.float() * self.rgb_std + self.rgb_mean)
        return [lab[:, list(VIEW_CHANNELS[v])] for v in self.views]

    def encode(self, images: list[Tensor]) -> list[Tensor]:
        """Features of view v computed on ``images[v]`` (the same image for all, or one crop each)."""
        splits: dict[int, list[Tensor]] = {}  # each distinct image is converted to Lab once
        for img in images:
            splits.setdefault(id(img), self.split(img) if id(img) not in splits else [])
        return [enc(splits[id(img)][v]) for v, (enc, img) in enumerate(zip(self.encoders, images))]

    def forward(self, images: Tensor) -> Tensor:
        return torch.cat([enc(part) for enc, part in zip(self.encoders, self.split(images))], dim=1)


class CMC(BaseMethod):
    """Contrastive Multiview Coding (Tian et al. 2019): a separate encoder per view (Sec. 3.1; views
    are channel splits of the Lab image, L vs ab on ImageNet, 3+ views e.g. L, a, b), each followed
    by a linear projection to 128-d and l2 normalisation (a 2-layer MLP with ``proj_hidden_dim``);
    the contrastive loss over view pairs (Eq. 2-3) with the "core view" (Eq. 5) or "full graph"
    (Eq. 6) option, temperature 0.07, in-batch negatives of all ranks and optionally a queue of
    past embeddings per view as a memory of more negatives (the paper uses a memory bank of 16,384
    negatives, Sec. 3.2). ``same_crop`` (paper): all views are channels of the same augmented image;
    otherwise view v takes global crop ``v mod 2`` (different crops, as in the InfoMin follow-up).
    The online probe and k-NN evaluate the concatenation of all encoders' features."""

    evaluates_registry_backbone = False  # LabViewEncoders replaces the backbone

    def __init__(self, views: tuple[str, ...] = ("L", "ab"), proj_hidden_dim: int = 0, proj_dim: int = 128,
                 temperature: float = 0.07, graph: str = "full_graph", core_view: int = 0, same_crop: bool = True,
                 queue_size: int = 0, **base: Any) -> None:
        views = tuple(views)
        unknown = [v for v in views if v not in VIEW_CHANNELS]
        if len(views) < 2 or unknown:
            raise ConfigError(f"model.views must name >= 2 views from {', '.join(VIEW_CHANNELS)}, got {list(views)}")
        if graph not in losses.cmc.GRAPHS or not 0 <= core_view < len(views):
            raise ConfigError(f"model.graph must be one of {', '.join(losses.cmc.GRAPHS)} and model.core_view in "
                              f"0..{len(views) - 1}; got '{graph}', {core_view}")
        if queue_size < 0:
            raise ConfigError(f"model.queue_size must be >= 0, got {queue_size}")
        super().__init__(**base)
        hp = self.hparams
        # replaces the 3-channel backbone BaseMethod built (evaluation calls self.backbone)
        self.backbone = LabViewEncoders(views, hp.backbone, dict(hp.backbone_kwargs or {}))
        if hp.channels_last:
            self.backbone = self.backbone.to(memory_format=torch.channels_last)
        self.feature_dim = sum(self.backbone.dims)
        self.projectors = nn.ModuleList([
            mlp(d, proj_hidden_dim, proj_dim) if proj_hidden_dim else nn.Linear(d, proj_dim) for d in self.backbone.dims])
        self.queues = nn.ModuleList([FeatureQueue(queue_size, proj_dim) for _ in views] if queue_size else [])

    def attach_data(self, data: TrainData) -> None:
        """Un-normalise with the data's own mean and std (the colour-space split needs RGB in [0, 1])."""
        self.backbone.rgb_mean.copy_(torch.tensor(data.mean).view(1, 3, 1, 1))
        self.backbone.rgb_std.copy_(torch.tensor(data.std).view(1, 3, 1, 1))

    def compute_ssl_loss(self, views: list[Tensor]) -> tuple[list[Tensor], SSLOutput]:
        """Each CMC view from its crop; the features handed on (probe) are the concatenation."""
        n = len(self.backbone.views)
        images = [views[0] if self.hparams.same_crop else views[v % self.num_global_views] for v in range(n)]
        if self.hparams.channels_last:
            images = [img.contiguous(memory_format=torch.channels_last) for img in images]
        feats = self.backbone.encode(images)
        return [torch.cat(feats, dim=1)], self.ssl_loss(feats)

    def ssl_loss(self, feats: list[Tensor]) -> dict[str, Any]:
        z = [F.normalize(proj(f), dim=1) for proj, f in zip(self.projectors, feats)]
        memories = [q.contents() for q in self.queues] if self.queues else None
        hp = self.hparams
        loss = losses.cmc_loss(z, [self.gather(zi) for zi in z], hp.temperature, hp.graph, hp.core_view, rank(),
                               memories)
        for queue, zi in zip(self.queues, z):
            queue.enqueue(zi.detach().float())
        return {"loss": loss, "z": z[:2]}
