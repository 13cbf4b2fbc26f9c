"""iBOT and DINOv2 losses (issue #24) against independent computations: naive per-sample loops of
the papers' formulas, DINO's loss, and a closed form for KoLeo."""
from __future__ import annotations

import math

import torch

from ssl_bench import losses


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ce(target: list[float], logits: list[float], tau: float) -> float:
    """-sum_k t_k log softmax(s / tau)_k, one row, in Python floats."""
    z = [s / tau for s in logits]
    m = max(z)
    log_norm = m + math.log(sum(math.exp(v - m) for v in z))
    return -sum(t * (v - log_norm) for t, v in zip(target, z))


def _probs(rows: torch.Tensor) -> torch.Tensor:
    return torch.softmax(rows, dim=-1)


def test_self_distillation_matches_naive_loop_and_dino_loss():
    g = _gen()
    student = [torch.randn(5, 7, generator=g) for _ in range(4)]           # 2 global views + 2 small crops
    teacher = [torch.randn(5, 7, generator=g) for _ in range(2)]
    center = torch.randn(1, 7, generator=g) * 0.1
    targets = [losses.centered_softmax(t, center, 0.04) for t in teacher]
    terms = [sum(_ce(targets[i][b].tolist(), student[j][b].tolist(), 0.1) for b in range(5)) / 5
             for i in range(2) for j in range(4) if j != i]
    got = losses.self_distillation_loss(student, targets, 0.1)
    torch.testing.assert_close(got, torch.tensor(sum(terms) / len(terms)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, losses.dino_loss(student, teacher, center, 0.1, 0.04), rtol=1e-5, atol=1e-6)


def test_self_distillation_gradients_reach_the_student_only():
    s = [torch.randn(3, 4, requires_grad=True) for _ in range(2)]
    t = [_probs(torch.randn(3, 4)).requires_grad_() for _ in range(2)]
    losses.self_distillation_loss(s, t).backward()
    assert all(x.grad is not None for x in s) and all(x.grad is None for x in t)


def test_ibot_patch_loss_matches_naive_loop():
    """Per image: the mean over its masked patches; then the sum over images / B (unmasked images count)."""
    g = _gen(1)
    b, n, k = 4, 6, 5
    student_all = torch.randn(b, n, k, generator=g)
    target_all = _probs(torch.randn(b, n, k, generator=g) / 0.3)
    mask = torch.rand(b, n, generator=g) > 0.5
    mask[2] = False                                                           # an image without masked patches
    mask[0, 0] = True
    expected = 0.0
    for i in range(b):
        idx = [j for j in range(n) if mask[i, j]]
        if idx:
            expected += sum(_ce(target_all[i, j].tolist(), student_all[i, j].tolist(), 0.1) for j in idx) / len(idx)
    expected /= b
    got = losses.ibot_patch_loss(student_all[mask], target_all[mask], mask, 0.1)
    torch.testing.assert_close(got, torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_ibot_patch_loss_two_views_is_the_mean_of_the_per_view_losses():
    g = _gen(2)
    s, t = torch.randn(6, 4, 3, generator=g), _probs(torch.randn(6, 4, 3, generator=g))
    mask = torch.rand(6, 4, generator=g) > 0.4
    per_view = [losses.ibot_patch_loss(s[v][mask[v]], t[v][mask[v]], mask[v]) for v in (slice(0, 3), slice(3, 6))]
    torch.testing.assert_close(losses.ibot_patch_loss(s[mask], t[mask], mask), sum(per_view) / 2)


def test_ibot_patch_loss_perfect_prediction_is_the_target_entropy():
    """Student logits = tau * log(targets): the cross-entropy is the targets' entropy (Gibbs' equality)."""
    t = _probs(torch.randn(1, 3, 4, generator=_gen(3)))
    mask = torch.tensor([[True, False, True]])
    got = losses.ibot_patch_loss(0.1 * t[mask].log(), t[mask], mask, 0.1)
    entropy = -(t[mask] * t[mask].log()).sum(-1).mean()
    torch.testing.assert_close(got, entropy)


def _koleo_loop(x: torch.Tensor, eps: float = 1e-8) -> float:
    z = [row / row.norm() for row in x]
    total = 0.0
    for i, zi in enumerate(z):
        d = min(float((zi - zj).norm()) for j, zj in enumerate(z) if j != i)
        total += -math.log(d + eps)
    return total / len(z)


def test_koleo_matches_naive_loop():
    x = torch.randn(9, 5, generator=_gen(4)) * 3.0
    torch.testing.assert_close(losses.koleo_loss(x), torch.tensor(_koleo_loop(x)), rtol=1e-5, atol=1e-6)


def test_koleo_closed_form_on_a_regular_polygon():
    """n points evenly on a circle (any radius): every nearest-neighbour distance is 2 sin(pi / n)."""
    n = 12
    angles = torch.arange(n) * 2 * math.pi / n
    x = 5.0 * torch.stack([angles.cos(), angles.sin(), torch.zeros(n)], 1).double()
    torch.testing.assert_close(losses.koleo_loss(x), torch.tensor(-math.log(2 * math.sin(math.pi / n)), dtype=torch.float64))


def test_koleo_spreads_points_and_stays_finite_on_duplicates():
    x = torch.randn(6, 4, generator=_gen(5))
    x[1] = x[0]                                                               # a duplicate: distance 0
    x.requires_grad_()
    loss = losses.koleo_loss(x)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    y = torch.randn(6, 4, generator=_gen(6), requires_grad=True)
    losses.koleo_loss(y).backward()
    with torch.no_grad():                                                     # a small step down the gradient spreads them
        assert float(losses.koleo_loss(y - 1e-2 * y.grad)) < float(losses.koleo_loss(y))


def test_sinkhorn_teacher_targets_are_balanced():
    """DINOv2's teacher centring is SwAV's Sinkhorn-Knopp with epsilon = teacher temperature: each
    row a distribution, the prototypes used about equally over the batch (3 iterations)."""
    logits = torch.randn(64, 8, generator=_gen(7)).clamp(-1, 1) + torch.linspace(0, 1, 8)   # a biased teacher
    q = losses.sinkhorn(logits, 0.04, 3)
    torch.testing.assert_close(q.sum(1), torch.ones(64))
    more_iterations = losses.sinkhorn(logits, 0.04, 50)
    assert (more_iterations.sum(0) / 8 - 1).abs().max() < 1e-3                # the fixed point: balanced
    assert (q.sum(0) / 8 - 1).abs().max() < 0.3                               # 3 iterations: nearly
    assert losses.centered_softmax(logits, torch.zeros(8), 0.04).sum(0).std() > 3 * q.sum(0).std()
