"""MAE (He et al., CVPR 2022)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from .. import losses
from ..masking import gather_tokens, indices_of, random_masking
from .base import BaseMethod
from .vit_heads import MaskSeed, TokenTransformer, patch_vit


class MAE(BaseMethod):
    """Masked Autoencoders Are Scalable Vision Learners (He et al. 2022), Sec. 3:

        keep, mask = random_masking(N patches, ratio 0.75)          # per sample
        cls, visible = encoder(patches[keep])                        # encoder on visible tokens only
        pred = decoder(visible at keep, mask tokens at masked)        # lightweight, own positions
        loss = MSE(pred, normalised pixels) over masked patches      # norm_pix_loss

    Paper settings (Sec. 3 and Appendix A.1): mask ratio 0.75, decoder 8 blocks of width 512 (16
    heads), per-patch normalised pixel targets, AdamW (betas 0.9, 0.95), base lr 1.5e-4 x B / 256,
    weight decay 0.05, 40 warm-up epochs, cosine decay, augmentation: random resized crop and flip
    only. One view per image (the first view of the batch). The feature the probe, k-NN and
    monitor see during training is that of the visible tokens; validation uses whole images.
    Fixed 2-D sin-cos positions in the decoder; the encoder keeps timm's (learnable) ones.
    """

    def __init__(self, mask_ratio: float = 0.75, decoder_dim: int = 512, decoder_depth: int = 8,
                 decoder_heads: int = 16, norm_pix_loss: bool = True, **base: Any) -> None:
        super().__init__(**base)
        vit = patch_vit(self.backbone, "MAE")
        grid = tuple(vit.vit.patch_embed.grid_size)
        self.num_patches = grid[0] * grid[1]
        self.decoder = TokenTransformer(vit.embed_dim, decoder_dim, decoder_depth, decoder_heads,
                                        vit.patch_size ** 2 * 3, grid)
        self.mask_seed = MaskSeed()

    def compute_ssl_loss(self, views: list[Tensor]) -> tuple[list[Tensor], dict[str, Any]]:
        images = views[0]
        hp, b = self.hparams, images.shape[0]
        m = random_masking(b, self.num_patches, hp.mask_ratio, self.mask_seed.generator(self.global_step, images.device))
        masked = indices_of(m.mask, self.num_patches - m.keep.shape[1])
        cls, visible = self.backbone.tokens(images, keep=m.keep)
        pred = self.decoder(visible, m.keep, masked, prefix=cls[:, None])
        target = gather_tokens(losses.patchify(images, self.backbone.patch_size), masked)
        loss = losses.mae_loss(pred, target, m.mask.new_ones(masked.shape), hp.norm_pix_loss)
        feats = self.backbone.pool(cls, visible)
        return [feats], {"loss": loss, "z": [feats]}
