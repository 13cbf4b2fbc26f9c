"""The ``vit_finetune`` protocol: end-to-end fine-tuning of a ViT backbone with layer-wise learning-rate
decay, MAE's evaluation (He et al. 2022, Appendix A.1, Table 9; from BEiT, Bao et al. 2022).

Recipe (MAE, ViT-B): AdamW (0.9, 0.999), base lr 5e-4 per 256 images (here ``blr x 64 / 256`` at the
fine-tuning batch of 64), weight decay 0.05, layer-wise lr decay 0.65 (0.75 for ViT-L/H), 5 warm-up
epochs then cosine, label smoothing 0.1, 100 epochs. The parameters of block i of a depth-L ViT
train at ``lr x decay^(L + 1 - i)`` (blocks counted from 1), the patch embedding, positions and
[CLS] at ``lr x decay^(L + 1)``, the final norm and the new linear head at ``lr`` (MAE's grouping;
timm's ``param_groups_layer_decay`` puts the last block at ``lr``, one layer off). Not implemented: mixup 0.8, cutmix 1.0, RandAugment (9, 0.5),
drop path 0.1 and random erasing 0.25; the augmentation is the ``finetune`` protocol's strong view.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..optim import warmup_cosine_scheduler
from .finetune import FINETUNE_RECIPE, finetune_scores
from .registry import EvalProtocol, accuracy_metrics, positive, register_protocol, setting


def _vit_of(net: nn.Module) -> nn.Module:
    """The timm VisionTransformer of a backbone (``vit``'s PatchViT wraps one; a timm name is one)."""
    vit = getattr(net, "vit", net)
    if not (hasattr(vit, "group_matcher") and hasattr(vit, "blocks") and hasattr(vit, "patch_embed")):
        raise ConfigError(f"protocol vit_finetune needs a ViT backbone (model.backbone: vit, or a timm vit_*), "
                          f"got {type(net).__name__}")
    return vit


def layer_id(name: str, depth: int) -> int:
    """MAE's (BEiT's) layer of a ViT parameter: 0 for the patch embedding, positions and [CLS],
    i + 1 for block i, depth + 1 for the rest (final norm)."""
    if name.startswith(("cls_token", "pos_embed", "patch_embed", "reg_token")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def layer_decay_groups(classifier: nn.Sequential, lr: float, weight_decay: float, layer_decay: float) -> list[dict]:
    """Optimiser groups of ``classifier`` = Sequential(backbone, head): the parameters of layer
    ``layer_id`` at ``lr x layer_decay^(depth + 1 - layer_id)``, the head at ``lr``; no weight decay on
    1-d parameters, positions and [CLS] (MAE's ``param_groups_lrd``)."""
    backbone, head = classifier[0], classifier[1]
    vit = _vit_of(backbone)
    depth = len(vit.blocks)
    skip = set(vit.no_weight_decay())
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in vit.named_parameters():
        if not p.requires_grad:
            continue
        layer, decay = layer_id(name, depth), not (p.ndim <= 1 or name in skip)
        group = groups.setdefault((layer, decay), {"params": [], "weight_decay": weight_decay if decay else 0.0,
                                                   "lr": lr * layer_decay ** (depth + 1 - layer)})
        group["params"].append(p)
    return [*groups.values(), {"params": [head.weight], "weight_decay": weight_decay, "lr": lr},
            {"params": [head.bias], "weight_decay": 0.0, "lr": lr}]


@register_protocol
class ViTFinetune(EvalProtocol):
    """A ViT backbone and a new linear head fine-tuned together with layer-wise lr decay (MAE's protocol)."""

    name = "vit_finetune"
    help = "ViT fine-tuning with layer-wise lr decay, AdamW, warm-up + cosine, label smoothing (MAE's protocol)"
    needs_features = False

    @dataclass
    class Settings:
        epochs: int = setting(100, "training epochs", positive, "must be a positive integer")
        blr: float = setting(5e-4, "base learning rate per 256 images", positive, "must be positive")
        layer_decay: float = setting(0.65, "layer-wise lr decay", lambda v: 0 < v <= 1, "must be in (0, 1]")
        weight_decay: float = setting(0.05, "AdamW weight decay", lambda v: v >= 0, "must be >= 0")
        warmup_epochs: int = setting(5, "linear warm-up epochs", lambda v: v >= 0, "must be >= 0")
        label_smoothing: float = setting(0.1, "label smoothing", lambda v: 0 <= v < 1, "must be in [0, 1)")

    grid = ("epochs",)

    def check(self, target: Any, settings: Any, labelled: Tensor | None) -> None:
        _vit_of(target.model().backbone)

    def run(self, target: Any, settings: Any, labelled: Tensor | None) -> dict[str, float]:
        lr = settings.blr * FINETUNE_RECIPE["batch_size"] / 256

        def optimiser(classifier: nn.Sequential, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
            groups = layer_decay_groups(classifier, lr, settings.weight_decay, settings.layer_decay)
            opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))
            warmup = round(total_steps * settings.warmup_epochs / settings.epochs)
            return opt, warmup_cosine_scheduler(opt, warmup, total_steps)

        return accuracy_metrics(finetune_scores(target, settings.epochs, target.seed, labelled,
                                                optimiser=optimiser, label_smoothing=settings.label_smoothing))
