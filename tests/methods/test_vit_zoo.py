"""ViT-era zoo (issue #23): MoCo v3, MAE and I-JEPA on digits with a tiny ViT: resume exactness (weights,
momentum encoder, mask seed, AdamW state), the masked methods' compute falling with the mask, and
the one-line error without a patch-token backbone. The 2-process checks are in test_vit_zoo_ddp.py."""
from __future__ import annotations

import pytest
import torch

from ssl_bench.errors import ConfigError
from ssl_bench.methods import MAE, IJEPA, MoCoV3
from helpers import digits_resume_is_exact

VIT_METHODS = ["mocov3", "mae", "ijepa"]
TINY_VIT = {"backbone": "vit", "backbone_kwargs": {"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 1,
                                                   "num_heads": 2}, "linear_probe": False, "knn": False,
            "collapse_monitor": False}


@pytest.mark.parametrize("method", VIT_METHODS)
def test_resume_continues_exactly(repo, tmp_path, method):
    """Save after epoch 1, restore, continue == an uninterrupted 2-epoch run (4 steps each)."""
    state, first = digits_resume_is_exact(method, tmp_path)
    moved = [k for k in state if state[k].is_floating_point() and not torch.equal(first[k], state[k])]
    assert any(k.startswith("backbone.") for k in moved) and all(torch.isfinite(v).all() for v in state.values()
                                                                  if v.is_floating_point())
    if method != "mae":  # the momentum encoder moved too
        assert any(k.startswith("teacher_backbone.") for k in moved)
    else:
        assert "mask_seed.seed" in state


def test_mocov3_frozen_patch_projection_stays_random(repo, tmp_path):
    """MoCo v3's stability trick (Sec. 5.1): the patch projection keeps its random init while the rest trains."""
    torch.manual_seed(0)
    model = MoCoV3(proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, **{
        **TINY_VIT, "backbone_kwargs": {**TINY_VIT["backbone_kwargs"], "freeze_patch_embed": True}})
    before = model.backbone.vit.patch_embed.proj.weight.clone()
    views = [torch.randn(4, 3, 16, 16) for _ in range(2)]
    _, out = model.compute_ssl_loss(views)
    out["loss"].backward()
    assert model.backbone.vit.patch_embed.proj.weight.grad is None
    assert model.backbone.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert torch.equal(model.backbone.vit.patch_embed.proj.weight, before)


@pytest.mark.parametrize("cls, extra", [(MAE, {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}),
                                        (IJEPA, {"pred_dim": 16, "pred_depth": 1, "pred_heads": 2})])
def test_masked_encoder_sees_only_kept_tokens(cls, extra):
    """The (online) encoder's blocks run on [CLS] + the kept tokens only: 1 + 4 of 16 for MAE at 0.75;
    I-JEPA's context block less its targets (an 8x8 grid: 2x2 patches)."""
    torch.manual_seed(0)
    kwargs = dict(TINY_VIT, backbone_kwargs={**TINY_VIT["backbone_kwargs"], "patch_size": 2}) if cls is IJEPA else TINY_VIT
    model = cls(**extra, **kwargs)
    seen = []
    model.backbone.vit.blocks.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[1]))
    _, out = model.compute_ssl_loss([torch.randn(4, 3, 16, 16)] * 2)
    assert torch.isfinite(out["loss"])
    if cls is MAE:
        assert seen == [1 + 4]
    else:  # the step's context (same seed, same step), smaller than the grid less one target block
        context, targets = model.masks(4, torch.device("cpu"))
        assert seen == [1 + context.shape[1]] and context.shape[1] <= 64 - targets.shape[2]


@pytest.mark.parametrize("cls", [MAE, IJEPA])
def test_masked_methods_need_a_patch_token_backbone(cls):
    with pytest.raises(ConfigError, match="set model.backbone to 'vit'"):
        cls(backbone="tiny_cnn", backbone_kwargs={"width": 4}, linear_probe=False, knn=False, collapse_monitor=False)
