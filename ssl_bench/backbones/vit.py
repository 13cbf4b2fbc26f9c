"""Patch-token ViT backbone (``vit``): a timm VisionTransformer that returns the [CLS] feature and,
on request, the patch tokens, optionally only those of chosen patches (masked-image methods drop
the masked tokens before the encoder, so its compute falls with the mask ratio).

    backbone: vit
    backbone_kwargs: {arch: vit_tiny_patch16_224, img_size: 32, patch_size: 4}   # 8 x 8 patches

``arch`` is any timm VisionTransformer name; the other options go to ``timm.create_model`` (sizes
for 32 px: patch 4; for 96 / 224 px: patch 8 / 16, as the papers). ``freeze_patch_embed`` freezes
the random patch projection (MoCo v3, Chen et al. 2021, Sec. 5.1: a frozen random patch
projection stabilises ViT training). ``feature: mean`` makes the feature the mean of the patch
tokens instead of [CLS] (I-JEPA has no [CLS] objective and evaluates average-pooled patch tokens).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..masking import gather_tokens
from .registry import register_backbone


class PatchViT(nn.Module):
    """A timm ``VisionTransformer`` (class token, no register tokens) with two entry points:

    - ``forward(images)`` -> (B, D) the final-norm [CLS] token: what BaseMethod's probe, k-NN and
      collapse monitor see (equal to timm's own ``model(images)`` with ``num_classes=0``), or with
      ``feature="mean"`` the mean of the patch tokens;
    - ``tokens(images, keep=None)`` -> ((B, D) [CLS], (B, n, D) patch tokens), where ``keep``
      (B, n) are the patch indices to encode (positions embedded first, then the others dropped);
      ``tokens(images, mask=m, mask_token=t)`` encodes every patch, the masked ones as the
      (caller's, learnable) token ``t`` (iBOT's masked image modelling).
    """

    def __init__(self, vit: nn.Module, freeze_patch_embed: bool = False, feature: str = "cls") -> None:
        super().__init__()
        if feature not in ("cls", "mean"):
            raise ValueError(f"backbone 'vit' option feature must be 'cls' or 'mean', got {feature!r}")
        if getattr(vit, "cls_token", None) is None or getattr(vit, "num_prefix_tokens", 1) != 1:
            raise ValueError("backbone 'vit' needs a timm VisionTransformer with a class token and no register tokens")
        if getattr(vit, "global_pool", "token") != "token":
            raise ValueError(f"backbone 'vit' returns the [CLS] token; got global_pool={vit.global_pool!r}")
        self.vit = vit
        self.feature = feature
        if freeze_patch_embed:
            vit.patch_embed.requires_grad_(False)

    @property
    def embed_dim(self) -> int:
        return int(self.vit.embed_dim)

    @property
    def patch_size(self) -> int:
        return int(self.vit.patch_embed.patch_size[0])

    def grid_size(self, images: Tensor) -> tuple[int, int]:
        """Patches per column and per row of ``images`` (B, C, H, W)."""
        return images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size

    def embed(self, images: Tensor, mask: Tensor | None = None, mask_token: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Patch embeddings with their positions added, (B, N, D), and the [CLS] token with its own, (B, 1, D).
        With ``mask`` (B, N) bool, the embeddings of the masked patches are replaced by ``mask_token`` (D,)
        before the positions are added (iBOT / BEiT / SimMIM: masked patches stay in the sequence)."""
        vit = self.vit
        x = vit.patch_embed(images)
        h, w = self.grid_size(images)
        x = x.reshape(x.shape[0], h * w, x.shape[-1])
        if (mask is None) != (mask_token is None):
            raise ValueError("PatchViT.embed: give both mask and mask_token, or neither")
        if mask is not None:
            x = torch.where(mask.unsqueeze(-1), mask_token.to(x.dtype).reshape(1, 1, -1), x)
        pos = vit.pos_embed
        if (h, w) != tuple(vit.patch_embed.grid_size):
            from timm.layers import resample_abs_pos_embed

            pos = resample_abs_pos_embed(pos, new_size=(h, w), old_size=vit.patch_embed.grid_size,
                                         num_prefix_tokens=0 if vit.no_embed_class else 1)
        cls = vit.cls_token
        if vit.no_embed_class:
            x = x + pos
        else:
            x, cls = x + pos[:, 1:], cls + pos[:, :1]
        return x, cls.expand(x.shape[0], -1, -1)

    def encode(self, patches: Tensor, cls: Tensor) -> tuple[Tensor, Tensor]:
        """The transformer on [CLS] + the given (position-embedded) patch tokens; final-norm outputs."""
        vit = self.vit
        x = vit.norm_pre(vit.pos_drop(torch.cat([cls, patches], dim=1)))
        x = vit.norm(vit.blocks(x))
        return x[:, 0], x[:, 1:]

    def tokens(self, images: Tensor, keep: Tensor | None = None, mask: Tensor | None = None,
               mask_token: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """[CLS] feature (B, D) and patch tokens (B, n, D) of the patches ``keep`` (B, n) (all if None);
        ``mask`` / ``mask_token``: see ``embed``."""
        patches, cls = self.embed(images, mask, mask_token)
        if keep is not None:
            patches = gather_tokens(patches, keep)
        return self.encode(patches, cls)

    def pool(self, cls: Tensor, patches: Tensor) -> Tensor:
        """The feature of ``tokens``' outputs: [CLS], or the mean of the patch tokens (``feature``)."""
        return cls if self.feature == "cls" else patches.mean(1)

    def forward(self, images: Tensor) -> Tensor:
        return self.pool(*self.tokens(images))


@register_backbone("vit")
def vit(arch: str = "vit_tiny_patch16_224", freeze_patch_embed: bool = False, feature: str = "cls",
        **timm_kwargs: Any) -> tuple[nn.Module, int]:
    """``PatchViT`` around timm's ``arch`` (random init) built with ``timm_kwargs``
    (``img_size``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``, ``drop_path_rate``, ...)."""
    import timm

    for key in ("pretrained", "num_classes"):
        if key in timm_kwargs:
            raise ValueError(f"backbone 'vit' got option '{key}'; backbones are built with pretrained=False, num_classes=0")
    if not timm.is_model(arch) or not arch.startswith(("vit_", "deit_")):
        raise ValueError(f"backbone 'vit' option arch must name a timm VisionTransformer (vit_*, deit_*), got {arch!r}")
    try:
        model = timm.create_model(arch, pretrained=False, num_classes=0, **timm_kwargs)
    except TypeError as err:
        raise ValueError(f"backbone 'vit' ({arch}): {err}") from None
    wrapped = PatchViT(model, freeze_patch_embed, feature)
    return wrapped, wrapped.embed_dim
