"""Masked-image losses: MAE's pixel reconstruction and I-JEPA's latent prediction."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) -> (B, N, p * p * C): row-major patches, each flattened as (p, p, C) (MAE's order)."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"patchify: image size {h}x{w} is not a multiple of the patch size {p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def mae_loss(pred: Tensor, target: Tensor, mask: Tensor, norm_pix: bool = True, eps: float = 1e-6) -> Tensor:
    """MAE's loss (He et al. 2022, Sec. 3 "Reconstruction target"): mean squared error between the
    predicted and the true pixels of the masked patches only, averaged over all masked patches of the
    batch; with ``norm_pix`` the target is each patch normalised by its own pixels' mean and
    (unbiased) variance (``(t - mean) / sqrt(var + 1e-6)``, the paper's better-performing target).

    Args:
        pred, target: (B, N, P) predicted and true patches (``patchify``); target is not differentiated.
        mask: (B, N) bool, True where a patch was masked.
    """
    if pred.shape != target.shape or mask.shape != pred.shape[:2]:
        raise ValueError(f"mae_loss: need pred, target (B, N, P) and mask (B, N); got {tuple(pred.shape)}, "
                         f"{tuple(target.shape)}, {tuple(mask.shape)}")
    target = target.detach().float()
    if norm_pix:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + eps).sqrt()
    per_patch = (pred.float() - target).pow(2).mean(-1)
    m = mask.float()
    return (per_patch * m).sum() / m.sum().clamp_min(1.0)


def ijepa_loss(pred: Tensor, target: Tensor) -> Tensor:
    """I-JEPA's loss (Assran et al. 2023, Eq. 1 / Sec. 3 "Loss"): the average squared L2 distance
    between predicted and target patch representations, ``1/M sum_i sum_{j in B_i} ||s_hat_y(j) -
    s_y(j)||^2`` averaged over patches and dimensions (the mean-squared error; the official code
    uses a smooth-L1 variant). Targets are the target encoder's layer-normalised outputs (no gradient).

    Args:
        pred, target: (B, M, n, D) predictions and targets of the M target blocks of n patches.
    """
    if pred.shape != target.shape:
        raise ValueError(f"ijepa_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return F.mse_loss(pred.float(), target.detach().float())
