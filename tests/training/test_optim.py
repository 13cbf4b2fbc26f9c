"""Optimiser pieces: LR scaling rules, warmup+cosine, weight-decay exclusion, EMA schedule/update."""
import pytest
import torch
from torch import nn

from ssl_bench.methods.momentum import ema_update_
from ssl_bench.optim import (build_optimizer, cosine_momentum, parameter_groups, scaled_lr,
                             warmup_cosine_factor)


def test_scaled_lr_rules():
    assert scaled_lr(0.3, 1024, 256, "linear") == pytest.approx(1.2)
    assert scaled_lr(0.3, 1024, 256, "sqrt") == pytest.approx(0.6)
    assert scaled_lr(0.3, 1024, 256, "none") == pytest.approx(0.3)
    with pytest.raises(ValueError, match="allowed: linear, sqrt, none"):
        scaled_lr(0.3, 256, 256, "cubic")


def test_warmup_cosine_shape():
    f = [warmup_cosine_factor(s, warmup_steps=10, total_steps=110) for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)   # linear warmup
    assert all(a < b for a, b in zip(f[:9], f[1:10]))
    assert f[10] == pytest.approx(1.0)
    assert f[60] == pytest.approx(0.5)                                  # half-way through the cosine
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert warmup_cosine_factor(110, 10, 110, final_factor=0.1) == pytest.approx(0.1)


def test_cosine_momentum_endpoints():
    assert cosine_momentum(0, 100, 0.99, 1.0) == pytest.approx(0.99)
    assert cosine_momentum(50, 100, 0.99, 1.0) == pytest.approx(0.995)
    assert cosine_momentum(100, 100, 0.99, 1.0) == pytest.approx(1.0)


def test_parameter_groups_exclude_bias_and_norm():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    decay, no_decay = parameter_groups(model, weight_decay=1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    ids = lambda g: {id(p) for p in g["params"]}
    assert ids(decay) == {id(model[0].weight), id(model[3].weight)}
    assert ids(no_decay) == {id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[3].bias)}
    (only,) = parameter_groups(model, 1e-4, exclude_bias_n_norm=False)
    assert len(only["params"]) == 6


@pytest.mark.parametrize("name", ["sgd", "lars", "adamw"])
def test_build_optimizer_steps(name):
    w = nn.Parameter(torch.ones(3))
    opt = build_optimizer(name, [{"params": [w], "weight_decay": 0.0}], lr=0.1)
    w.sum().backward()
    opt.step()
    assert (w < 1).all()


def test_build_optimizer_unknown():
    with pytest.raises(ValueError, match="unknown optimizer 'adam'; allowed: sgd, lars, adamw"):
        build_optimizer("adam", [{"params": [nn.Parameter(torch.ones(1))]}], lr=0.1)


def test_ema_update_matches_formula():
    torch.manual_seed(0)
    student, teacher = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    student(torch.randn(8, 3))  # changes BN running stats and num_batches_tracked
    before = [t.clone() for t in teacher.state_dict().values()]
    ema_update_(teacher, student, tau=0.9)
    for (name, t), s, b in zip(teacher.state_dict().items(), student.state_dict().values(), before):
        expected = s if not t.is_floating_point() else 0.9 * b + 0.1 * s
        torch.testing.assert_close(t, expected, msg=name)
