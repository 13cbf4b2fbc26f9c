"""InfoMin's learned views: the pixel-wise flow is invertible (reconstruction error) and pixel-wise,
and the adversarial step moves the InfoNCE bound in opposite directions for the critic (up) and
the generator (down), with the semi-supervised term lowering the label loss."""
from __future__ import annotations

import copy

import torch
from torch import nn

from ssl_bench.methods.view_generator import PixelFlow, adversarial_step, critic_nce


def _flow(seed: int = 0) -> PixelFlow:
    torch.manual_seed(seed)
    flow = PixelFlow(blocks=2, hidden=8, seed=seed)
    with torch.no_grad():                         # leave the identity init: a generic invertible map
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow


def test_flow_is_invertible_and_pixel_wise():
    flow = _flow()
    x = torch.randn(4, 3, 10, 9)
    y = flow(x)
    assert (y - x).abs().max() > 0.1                                   # not the identity
    assert (flow.inverse(y) - x).abs().max() < 1e-4                    # reconstruction error
    assert (flow(flow.inverse(x)) - x).abs().max() < 1e-4
    v1, v2 = flow.views(x)
    assert v1.shape == (4, 1, 10, 9) and v2.shape == (4, 2, 10, 9)
    assert torch.allclose(flow(x[:, :, 3:4, 5:6]), y[:, :, 3:4, 5:6], atol=1e-6)   # one pixel alone: same


def _encoder(c: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 8))


def _setting(seed: int):
    flow = _flow(seed)
    torch.manual_seed(seed)
    encoders = nn.ModuleList([_encoder(1), _encoder(2)])
    classifiers = nn.ModuleList([_encoder(1), _encoder(2)])   # 8 "classes"
    return flow, encoders, classifiers


def _nce(flow, encoders, x) -> float:
    with torch.no_grad():
        return float(critic_nce(encoders, *flow.views(x)))


def test_adversarial_step_signs_critic_raises_the_bound_generator_lowers_it():
    x = torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(8, (32,), generator=torch.Generator().manual_seed(2))
    for semi in (False, True):
        flow, encoders, classifiers = _setting(0)
        old_flow, old_encoders = copy.deepcopy(flow), copy.deepcopy(encoders)
        critic_opt = torch.optim.SGD(encoders.parameters(), lr=0.05)
        gen_params = list(flow.parameters()) + (list(classifiers.parameters()) if semi else [])
        gen_opt = torch.optim.SGD(gen_params, lr=0.05)
        ce_before = None
        if semi:
            with torch.no_grad():
                v1, v2 = flow.views(x)
                ce_before = float(nn.functional.cross_entropy(classifiers[0](v1), labels)
                                  + nn.functional.cross_entropy(classifiers[1](v2), labels))
        out = adversarial_step(flow, encoders, x, critic_opt, gen_opt, labels=labels if semi else None,
                               classifiers=classifiers if semi else None, label_weight=1.0)
        start = _nce(old_flow, old_encoders, x)
        assert abs(out["critic_nce"] - start) < 1e-5
        after_critic = _nce(old_flow, encoders, x)           # new critic, old views: L_NCE down, bound up
        after_generator = _nce(flow, encoders, x)            # new views, new critic: L_NCE up, bound down
        assert after_critic < start - 1e-4, semi
        assert after_generator > after_critic + 1e-4, semi
        if semi:
            with torch.no_grad():
                v1, v2 = flow.views(x)
                ce_after = float(nn.functional.cross_entropy(classifiers[0](v1), labels)
                                 + nn.functional.cross_entropy(classifiers[1](v2), labels))
            assert ce_after < ce_before
