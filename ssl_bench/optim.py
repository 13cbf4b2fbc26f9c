"""Optimiser construction: parameter groups, SGD / LARS / AdamW, batch-size LR scaling, warmup+cosine.

LARS is timm's (You et al. 2017); AdamW and SGD are torch's (fused/foreach where torch has them).
The schedule is a plain function handed to torch's LambdaLR so it is stepped per optimiser step.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial
from typing import Iterable

import torch
from torch import nn

OPTIMIZERS = ("sgd", "lars", "adamw")
RAMPS = ("cosine", "linear")
LR_SCALING = ("linear", "sqrt", "none")
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


@dataclass(frozen=True)
class TrainingSchedule:
    """The optimisation values derived from the whole config (``build.derive_schedule``), computed once
    and handed to the method, which uses them as they are: the global batch size (per-rank batch x
    ranks x gradient accumulation), the peak learning rate after batch-size scaling, and the
    optimiser steps of warm-up, of one epoch and of the whole run."""

    global_batch_size: int
    lr: float
    warmup_steps: int
    steps_per_epoch: int
    total_steps: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def scaled_lr(base_lr: float, global_batch_size: int, reference_batch_size: int = 256,
              rule: str = "linear") -> float:
    """lr = base_lr * B / B_ref (Goyal et al. 2017) or base_lr * sqrt(B / B_ref) (Krizhevsky 2014)."""
    if rule not in LR_SCALING:
        raise ValueError(f"unknown lr_scaling '{rule}'; allowed: {', '.join(LR_SCALING)}")
    ratio = global_batch_size / reference_batch_size
    return base_lr * {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[rule]


def no_decay_parameter_names(modules: Iterable[nn.Module]) -> set[str]:
    """Names of biases and normalisation parameters (excluded from weight decay and LARS adaptation)."""
    names: set[str] = set()
    for root in modules:
        for mod_name, module in root.named_modules():
            for p_name, p in module.named_parameters(recurse=False):
                if isinstance(module, _NORM_TYPES) or p.ndim <= 1:
                    names.add(f"{mod_name}.{p_name}" if mod_name else p_name)
    return names


def parameter_groups(model: nn.Module, weight_decay: float, exclude_bias_n_norm: bool = True) -> list[dict]:
    """Two groups: decayed weights, and (if excluded) biases/norm parameters with weight_decay=0."""
    skip = no_decay_parameter_names([model]) if exclude_bias_n_norm else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:  # marked, so a weight-decay schedule leaves it at 0 (WarmupCosineSchedule)
        groups.append({"params": no_decay, "weight_decay": 0.0, "no_decay": True})
    return groups


def build_optimizer(name: str, groups: list[dict], lr: float, momentum: float = 0.9,
                    lars_trust_coeff: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                    fused: bool = False) -> torch.optim.Optimizer:
    """SGD (momentum), LARS (timm; groups with weight_decay=0 skip the trust ratio), or AdamW."""
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, fused=fused or None)
    if name == "lars":
        from timm.optim import Lars
        return Lars(groups, lr=lr, momentum=momentum, trust_coeff=lars_trust_coeff)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)
    raise ValueError(f"unknown optimizer '{name}'; allowed: {', '.join(OPTIMIZERS)}")


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, final_factor: float = 0.0,
                         start_factor: float = 0.0) -> float:
    """Multiplier of the peak lr: linear warmup from ``start_factor`` (~0 by default; I-JEPA starts at
    0.1: 1e-4 -> 1e-3), then half-cosine to ``final_factor`` (SGDR without restarts, Loshchilov &
    Hutter 2017; warmup as in Goyal et al. 2017)."""
    if step < warmup_steps:
        return start_factor + (1 - start_factor) * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def ramp(step: int, total_steps: int, start: float, end: float, shape: str = "cosine") -> float:
    """A value going from ``start`` at step 0 to ``end`` at ``total_steps`` (held after): by a
    half-cosine (BYOL's EMA coefficient, Grill et al. 2020, Sec. 3.2: tau = 1 - (1 - tau_base)
    (cos(pi k / K) + 1) / 2; DINO's weight decay 0.04 -> 0.4) or linearly (I-JEPA's EMA, 0.996 -> 1)."""
    if shape not in RAMPS:
        raise ValueError(f"unknown schedule shape '{shape}'; allowed: {', '.join(RAMPS)}")
    progress = min(1.0, step / max(1, total_steps))
    weight = progress if shape == "linear" else (1 - math.cos(math.pi * progress)) / 2
    return start + (end - start) * weight


def cosine_momentum(step: int, total_steps: int, base: float = 0.99, final: float = 1.0) -> float:
    """BYOL's EMA coefficient schedule: ``ramp`` from ``base`` to ``final`` by a half-cosine."""
    return ramp(step, total_steps, base, final, "cosine")


class WarmupCosineSchedule(torch.optim.lr_scheduler.LambdaLR):
    """The per-optimiser-step schedule: the lr multiplier ``warmup_cosine_factor`` and, with
    ``final_weight_decay``, every decayed group's weight decay ramped by a half-cosine from its own
    value to ``final_weight_decay`` over the run (DINO, iBOT, I-JEPA, MSN: 0.04 -> 0.4); groups
    marked ``no_decay`` (biases, norms) stay at 0. Optimiser step k runs with the values of step k
    (set by the ``step()`` after step k - 1, or at construction for k = 0); ``last_epoch`` in the
    state dict, and the optimiser's own groups, carry both across a resume."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                 final_factor: float = 0.0, start_factor: float = 0.0,
                 final_weight_decay: float | None = None) -> None:
        self.total_steps = total_steps
        self.final_weight_decay = final_weight_decay
        for group in optimizer.param_groups:
            group.setdefault("initial_weight_decay", group["weight_decay"])
        super().__init__(optimizer, partial(warmup_cosine_factor, warmup_steps=warmup_steps, total_steps=total_steps,
                                            final_factor=final_factor, start_factor=start_factor))

    def step(self, epoch: int | None = None) -> None:
        super().step(epoch)
        if self.final_weight_decay is None:
            return
        for group in self.optimizer.param_groups:
            if not group.get("no_decay", False):
                group["weight_decay"] = ramp(self.last_epoch, self.total_steps, group["initial_weight_decay"],
                                             self.final_weight_decay)


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                            final_factor: float = 0.0, start_factor: float = 0.0,
                            final_weight_decay: float | None = None) -> WarmupCosineSchedule:
    return WarmupCosineSchedule(optimizer, warmup_steps, total_steps, final_factor, start_factor, final_weight_decay)
