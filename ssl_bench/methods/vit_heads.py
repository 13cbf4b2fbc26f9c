"""What the masked-image methods (MAE, I-JEPA) share: the patch-token backbone check, the per-step
mask generator, and narrow transformers that fill mask tokens in at given positions (MAE's decoder,
I-JEPA's predictor)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..backbones.vit import PatchViT
from ..distributed import rank
from ..errors import ConfigError
from ..masking import gather_tokens, step_generator


def patch_vit(backbone: nn.Module, method: str) -> PatchViT:
    """The method's backbone as a ``PatchViT``, or a one-line ConfigError."""
    if not isinstance(backbone, PatchViT):
        raise ConfigError(f"{method} needs patch tokens: set model.backbone to 'vit' "
                          f"(backbone_kwargs: arch, img_size, patch_size, ...), got {type(backbone).__name__}")
    return backbone


class MaskSeed(nn.Module):
    """A seed drawn from the global RNG when the method is built (``pretrain`` seeds it from
    ``run.seed``), kept in the checkpoint; ``generator(step, device)`` is the step's mask generator
    (``masking.step_generator``: per rank, so ranks draw different masks; a resumed run draws the
    masks an uninterrupted one would). ``per_rank=False``: the same generator on every rank (draws
    that must agree across ranks, e.g. LeJEPA's random projection directions)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("seed", torch.randint(0, 2**62, (), dtype=torch.long))

    def generator(self, step: int, device: torch.device, per_rank: bool = True) -> torch.Generator:
        return step_generator(int(self.seed), step, rank() if per_rank else 0, device)


class TokenTransformer(nn.Module):
    """Linear ``in_dim -> dim``, the given tokens at their patch positions among learnable mask
    tokens (fixed 2-D sin-cos positions for all, as MAE and I-JEPA), timm ViT blocks, LayerNorm,
    Linear ``dim -> out_dim``.

    ``forward(tokens, positions, query)``: ``tokens`` (B, n, in_dim) are the encoder outputs at patch
    indices ``positions`` (B, n); ``query`` (B, q) the patch indices to predict. Returns (B, q, out_dim).
    ``prefix`` (B, k, in_dim) tokens (MAE's [CLS]) join the sequence without a patch position.
    """

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int, out_dim: int,
                 grid: tuple[int, int], mlp_ratio: float = 4.0) -> None:
        super().__init__()
        from timm.layers import build_sincos2d_pos_embed
        from timm.models.vision_transformer import Block

        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("pos", build_sincos2d_pos_embed(list(grid), dim), persistent=False)
        self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, tokens: Tensor, positions: Tensor, query: Tensor, prefix: Tensor | None = None) -> Tensor:
        b = tokens.shape[0]
        pos = self.pos.to(tokens.dtype).expand(b, -1, -1)
        x = self.embed(tokens) + gather_tokens(pos, positions)
        q = self.mask_token.to(x.dtype) + gather_tokens(pos, query)
        seq = [x, q] if prefix is None else [self.embed(prefix), x, q]
        out = self.norm(self.blocks(torch.cat(seq, dim=1)))
        return self.head(out[:, -query.shape[1]:])

