"""MSN and LeJEPA (issue #24): resume exactness on digits (weights, EMA target, prototypes, mask and
slice seeds, AdamW state), MSN's masked anchor and focal views, MSN as an ER objective, LeJEPA's
directions shared by the ranks and its CNN path. The 2-process checks are in test_msn_lejepa_ddp.py."""
from __future__ import annotations

from unittest import mock

import pytest
import torch

from ssl_bench.errors import ConfigError
from ssl_bench.methods import MSN, LeJEPA
from ssl_bench.methods.er import ERSettings
from helpers import digits_resume_is_exact, tiny_model

TINY_VIT = {"backbone": "vit", "backbone_kwargs": {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 1,
                                                   "num_heads": 2, "dynamic_img_size": True},
            "linear_probe": False, "knn": False, "collapse_monitor": False}
MSN_HEADS = {"proj_hidden_dim": 16, "proj_dim": 8, "num_prototypes": 12}


def _views(batch: int = 4, small: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, 3, 16, 16, generator=g) for _ in range(2)] + \
           [torch.randn(batch, 3, 8, 8, generator=g) for _ in range(small)]


@pytest.mark.parametrize("method", ["msn", "lejepa"])
def test_resume_continues_exactly(repo, tmp_path, method):
    """Save after epoch 1, restore, continue == an uninterrupted 2-epoch run (4 steps each)."""
    state, first = digits_resume_is_exact(method, tmp_path)
    moved = {k.split(".")[0] for k in state if state[k].is_floating_point() and not torch.equal(first[k], state[k])}
    assert {"backbone", "projector"} <= moved
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    if method == "msn":
        assert {"teacher_backbone", "teacher_projector", "prototypes"} <= moved and "mask_seed.seed" in state
    else:
        assert "slice_seed.seed" in state


def test_msn_anchor_is_masked_target_is_not():
    """The online encoder runs on [CLS] + the kept patches of the anchor (16 patches at ratio 0.5: 8)
    and on the focal views (4 patches each, batched); the EMA target encoder on the whole target view."""
    torch.manual_seed(0)
    model = MSN(mask_ratio=0.5, **MSN_HEADS, **TINY_VIT)
    online, target = [], []
    model.backbone.vit.blocks.register_forward_hook(lambda m, inp, out: online.append(tuple(inp[0].shape[:2])))
    model.teacher_backbone.vit.blocks.register_forward_hook(lambda m, inp, out: target.append(tuple(inp[0].shape[:2])))
    feats, out = model.compute_ssl_loss(_views())
    assert online == [(4, 1 + 8), (8, 1 + 4)] and target == [(4, 1 + 16)]
    assert len(feats) == 3 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.prototypes.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher_projector.parameters())


def test_msn_loss_is_the_er_objective_with_lambda_as_weight():
    """ER with the cross-entropy reconstruction and entropy weight w == MSN's own loss with ME-MAX
    weight w: ME-MAX is the ER entropy of the batch-mean anchor prediction (all anchors together)."""
    views = _views()
    for w in (1.0, 0.5):
        torch.manual_seed(0)
        plain = MSN(me_max_weight=w, **MSN_HEADS, **TINY_VIT)
        _, out = plain.compute_ssl_loss(views)
        er = ERSettings(entropy_weight=w)
        torch.testing.assert_close(er.apply(out, "MSN")["loss"], out["loss"], rtol=1e-5, atol=1e-6)


def test_lejepa_directions_are_shared_by_ranks_and_change_every_step():
    torch.manual_seed(0)
    model = LeJEPA(proj_hidden_dim=16, proj_dim=8, num_slices=4, **TINY_VIT)
    draw = model.slice_seed.generator
    dev = torch.device("cpu")
    rank0 = torch.randn(3, generator=draw(5, dev, per_rank=False))
    with mock.patch("ssl_bench.methods.vit_heads.rank", return_value=1):
        assert torch.equal(torch.randn(3, generator=draw(5, dev, per_rank=False)), rank0)
        assert not torch.equal(torch.randn(3, generator=draw(5, dev)), rank0)  # the masks' generator is per rank
    assert not torch.equal(torch.randn(3, generator=draw(6, dev, per_rank=False)), rank0)


def test_lejepa_runs_on_a_cnn_with_local_views():
    """No ViT needed: global and local views through a tiny CNN, gradients to the backbone."""
    torch.manual_seed(0)
    model = LeJEPA(proj_hidden_dim=16, proj_dim=8, num_slices=16, **tiny_model())
    feats, out = model.compute_ssl_loss(_views(batch=8))
    assert len(feats) == 4 and torch.isfinite(out["loss"]) and len(out["z"]) == 2
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_msn_needs_a_patch_token_backbone():
    with pytest.raises(ConfigError, match="set model.backbone to 'vit'"):
        MSN(**tiny_model())
