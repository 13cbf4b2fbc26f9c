"""iBOT and DINOv2 (issue #24) with tiny ViTs: the masks, the mask token, what each method's teacher
targets are (EMA centres vs Sinkhorn-Knopp), heads shared or separate, the ER inputs, and resume
exactness on digits (weights, teacher, centres, mask seed, mask token, AdamW state). The 2-process
checks are in tests/distributed/test_ibot_dinov2_ddp.py."""
from __future__ import annotations

import pytest
import torch

from ssl_bench import losses, masking
from ssl_bench.errors import ConfigError
from ssl_bench.methods import METHODS, DINOv2, IBOT
from helpers import digits_resume_is_exact

TINY = {"backbone": "vit", "linear_probe": False, "knn": False, "collapse_monitor": False,
        "backbone_kwargs": {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2,
                            "dynamic_img_size": True},
        "proj_hidden_dim": 16, "bottleneck_dim": 8, "out_dim": 32, "mask_min_block": 1}


def _views(batch: int = 6, small: int = 2, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 16, 16, generator=g) for _ in range(2)] + \
        [torch.randn(batch, 3, 8, 8, generator=g) for _ in range(small)]


def _build(cls, **kw):
    torch.manual_seed(0)
    return cls(**{**TINY, **kw})


def test_registered():
    assert METHODS["ibot"] is IBOT and METHODS["dinov2"] is DINOv2 and issubclass(DINOv2, IBOT)


def test_ibot_masks_probability_ratio_and_blocks():
    """About half of the images masked; each masked image's ratio from U(0.1, 0.5) (block masks never
    exceed their target and seldom stop short of it); per-sample ratios; a function of the generator."""
    grid = (8, 8)
    m = masking.ibot_masks(2000, grid, torch.Generator().manual_seed(0), (0.1, 0.5), 0.5)
    counts = m.sum(1)
    assert abs(float((counts > 0).float().mean()) - 0.5) < 0.05
    assert int(counts.max()) <= round(0.5 * 64) and float((counts[counts > 0] >= round(0.1 * 64)).float().mean()) > 0.97
    assert counts[counts > 0].unique().numel() > 10
    assert torch.equal(m, masking.ibot_masks(2000, grid, torch.Generator().manual_seed(0)))
    assert not masking.ibot_masks(50, grid, torch.Generator().manual_seed(0), prob=0.0).any()


def test_block_masking_per_sample_ratios_reach_each_target():
    ratios = torch.tensor([0.0, 0.1, 0.3, 0.5] * 50)
    mask = masking.block_masking(200, (8, 8), ratios, torch.Generator().manual_seed(1))
    targets = torch.round(ratios * 64)
    assert (mask.sum(1) <= targets).all() and float((mask.sum(1) == targets).float().mean()) > 0.9
    assert not mask[ratios == 0].any()
    means = [float(mask[ratios == r].sum(1).float().mean()) for r in (0.1, 0.3, 0.5)]
    assert means == sorted(means) and means[0] < means[2]               # grows with the ratio


def test_mask_token_replaces_the_masked_patches():
    """With a mask, the content of the masked patches no longer matters (they are the mask token plus
    their position), the others still do; the token receives gradients."""
    model = _build(IBOT)
    vit, token = model.backbone, model.mask_token
    images = torch.randn(2, 3, 16, 16)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, 0] = True                                                   # the top-left 4x4 patch
    other = images.clone()
    other[:, :, :4, :4] += 5.0                                          # change only that patch
    a, b = vit.tokens(images, mask=mask, mask_token=token), vit.tokens(other, mask=mask, mask_token=token)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    assert not torch.allclose(vit.tokens(images)[0], vit.tokens(other)[0])
    a[1].sum().backward()
    assert token.grad is not None and token.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="both mask and mask_token"):
        vit.tokens(images, mask=mask)


def test_ibot_targets_use_ema_centres_and_shared_head():
    """iBOT: one head for [CLS] and patches; the centres move to m C + (1 - m) batch mean, the patch
    centre with the mean over every patch token; the loss is L_cls + L_mim recomputed by hand."""
    model = _build(IBOT)
    assert not hasattr(model, "patch_head") and model.patch_heads() == (model.head, model.teacher_head)
    model.center.fill_(0.1)
    model.patch_center.fill_(-0.2)
    views = _views()
    images = torch.cat(views[:2])
    mask = model.masks(images)
    with torch.no_grad():
        t_cls, t_patch = model.teacher_backbone.tokens(images)
        cls_logits, patch_logits = model.teacher_head(t_cls), model.teacher_head(t_patch)
        s_cls, s_patch = model.backbone.tokens(images, mask=mask, mask_token=model.mask_token)
        local = model.backbone.tokens(torch.cat(views[2:]))[0]
        student = [model.head(x) for x in [*s_cls.chunk(2), *local.chunk(2)]]
        targets = losses.centered_softmax(cls_logits, torch.full((1, 32), 0.1), model.teacher_temp).chunk(2)
        p_targets = losses.centered_softmax(patch_logits[mask], torch.full((1, 32), -0.2), model.teacher_patch_temp)
        expected = losses.self_distillation_loss(student, list(targets)) + \
            losses.ibot_patch_loss(model.head(s_patch[mask]), p_targets, mask)
    _, out = model.compute_ssl_loss(views)
    torch.testing.assert_close(out["loss"], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.center, 0.9 * 0.1 + 0.1 * cls_logits.mean(0, keepdim=True))
    torch.testing.assert_close(model.patch_center, 0.9 * -0.2 + 0.1 * patch_logits.mean((0, 1)).unsqueeze(0))
    assert 0 < int(mask.sum()) < mask.numel()


def test_dinov2_sinkhorn_targets_separate_heads_and_koleo():
    """DINOv2: separate DINO and iBOT heads (with teachers), Sinkhorn-Knopp teacher targets, no centre
    update, and loss = L_dino + L_ibot + 0.1 * sum over global views of KoLeo([CLS])."""
    model = _build(DINOv2, patch_out_dim=24)
    assert model.patch_head is not model.head and model.teacher_patch_head.last_layer.weight.shape[0] == 24
    views = _views()
    images = torch.cat(views[:2])
    mask = model.masks(images)
    with torch.no_grad():
        t_cls, t_patch = model.teacher_backbone.tokens(images)
        s_cls, s_patch = model.backbone.tokens(images, mask=mask, mask_token=model.mask_token)
        local = model.backbone.tokens(torch.cat(views[2:]))[0]
        student = [model.head(x) for x in [*s_cls.chunk(2), *local.chunk(2)]]
        targets = losses.sinkhorn(model.teacher_head(t_cls), model.teacher_temp, 3).chunk(2)
        p_targets = losses.sinkhorn(model.teacher_patch_head(t_patch[mask]), model.teacher_temp, 3)
        koleo = sum(losses.koleo_loss(c) for c in s_cls.chunk(2))
        expected = losses.self_distillation_loss(student, list(targets)) + \
            losses.ibot_patch_loss(model.patch_head(s_patch[mask]), p_targets, mask) + 0.1 * koleo
    _, out = model.compute_ssl_loss(views)
    torch.testing.assert_close(out["loss"], expected, rtol=1e-5, atol=1e-6)
    assert not model.center.any() and not model.patch_center.any()
    out["loss"].backward()
    assert model.patch_head.mlp[0].weight.grad.abs().sum() > 0 and model.mask_token.grad.abs().sum() > 0


def test_er_switch_runs_on_both():
    for cls in (IBOT, DINOv2):
        model = _build(cls, er_entropy_weight=1.0)
        _, out = model.compute_ssl_loss(_views())
        out = model.er_settings.apply(out, cls.__name__)
        assert torch.isfinite(out["loss"]) and "er_entropy" in out
        assert len(out["er"].pairs) == 2 * 3 + 1                         # [CLS] pairs + the masked patches


@pytest.mark.parametrize("cls", [IBOT, DINOv2])
def test_need_a_patch_token_backbone(cls):
    with pytest.raises(ConfigError, match="set model.backbone to 'vit'"):
        cls(backbone="tiny_cnn", backbone_kwargs={"width": 4}, linear_probe=False, knn=False, collapse_monitor=False)


@pytest.mark.parametrize("method", ["ibot", "dinov2"])
def test_resume_continues_exactly(repo, tmp_path, method):
    """Digits smoke config: save after epoch 1, restore, continue == an uninterrupted 2-epoch run (4
    steps each): weights, teacher (backbone and heads), centres, mask seed, mask token, AdamW moments."""
    state, first = digits_resume_is_exact(method, tmp_path)
    moved = {k for k in state if state[k].is_floating_point() and not torch.equal(first[k], state[k])}
    assert {"mask_token", "mask_seed.seed"} <= set(state) and "mask_token" in moved
    assert any(k.startswith("teacher_backbone.") for k in moved) and any(k.startswith("teacher_head.") for k in moved)
    if method == "ibot":
        assert {"center", "patch_center"} <= moved
    else:
        assert any(k.startswith("teacher_patch_head.") for k in moved)
