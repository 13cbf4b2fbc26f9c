"""MSN and LeJEPA losses (issue #24) against independent computations: per-sample loops of the papers'
formulas and the closed form of the Epps-Pulley statistic with a Gaussian weight."""
from __future__ import annotations

import cmath
import math

import torch

from ssl_bench import losses


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------- MSN
def _cosine_logits_loop(z: torch.Tensor, q: torch.Tensor, tau: float) -> torch.Tensor:
    rows = [[float(zi @ qk) / (float(zi.norm()) * float(qk.norm())) / tau for qk in q] for zi in z]
    return torch.tensor(rows)


def _softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


def test_prototype_logits_and_sharpened_targets():
    """Cosine similarity / tau; sharpening softmax(s / 0.1) with T = 0.25 is softmax(s / 0.025)."""
    g = _gen()
    z, q = torch.randn(5, 6, generator=g), torch.randn(7, 6, generator=g)
    logits = losses.prototype_logits(z, q, 0.1)
    torch.testing.assert_close(logits, _cosine_logits_loop(z, q, 0.1), rtol=1e-5, atol=1e-5)
    targets = losses.msn_targets(logits, 0.25)
    torch.testing.assert_close(targets, torch.softmax(losses.prototype_logits(z, q, 0.025), -1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(targets.sum(-1), torch.ones(5))


def _sinkhorn_loop(p: list[list[float]], iterations: int = 3) -> list[list[float]]:
    """The official ``distributed_sinkhorn`` on one process, element by element: Q = p^T normalised
    to total 1; per iteration each prototype's row to 1/K, each sample's column to 1/B; times B."""
    b, k = len(p), len(p[0])
    total = sum(sum(r) for r in p)
    q = [[p[i][j] / total for i in range(b)] for j in range(k)]  # (K, B)
    for _ in range(iterations):
        q = [[v / sum(row) / k for v in row] for row in q]
        cols = [sum(q[j][i] for j in range(k)) for i in range(b)]
        q = [[q[j][i] / cols[i] / b for i in range(b)] for j in range(k)]
    return [[q[j][i] * b for j in range(k)] for i in range(b)]


def test_msn_sinkhorn_targets_match_loop_and_balance_prototypes():
    """use_sinkhorn: the sharpened targets, then Sinkhorn-Knopp (3 iterations) as the official code:
    equal to an element-wise loop, each target sums to 1, and the prototypes' total mass (B / K each)
    is far more even than without it."""
    g = _gen(3)
    logits = torch.randn(16, 6, generator=g) * 0.5
    logits[:, 0] += 0.5  # most target mass on prototype 0
    plain = losses.msn_targets(logits, 0.25)
    balanced = losses.msn_targets(logits, 0.25, use_sinkhorn=True)
    torch.testing.assert_close(balanced, torch.tensor(_sinkhorn_loop(plain.tolist())), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(balanced.sum(-1), torch.ones(16))
    target_mass = torch.full((6,), 16 / 6)
    assert (balanced.sum(0) - target_mass).abs().max() < 0.2 * (plain.sum(0) - target_mass).abs().max()
    torch.testing.assert_close(losses.msn_targets(logits, 0.25, use_sinkhorn=True, sinkhorn_iterations=50).sum(0),
                               target_mass, rtol=1e-3, atol=1e-3)


def test_msn_loss_matches_naive_loop():
    """Mean over anchors and views of -sum_k p+_k log p_k, plus lambda * sum_k pbar_k log pbar_k with
    pbar the mean anchor prediction over images and views (ME-MAX, minus the entropy)."""
    g = _gen(1)
    anchors = [torch.randn(4, 5, generator=g) * 3 for _ in range(3)]
    targets = torch.softmax(torch.randn(4, 5, generator=g) * 5, -1)
    ce, n = 0.0, 0
    pbar = [0.0] * 5
    for a in anchors:
        for i in range(4):
            p = _softmax(a[i].tolist())
            ce += -sum(float(targets[i, k]) * math.log(p[k]) for k in range(5))
            pbar = [s + v / 12 for s, v in zip(pbar, p)]
            n += 1
    neg_entropy = sum(v * math.log(v) for v in pbar)
    mean_probs = torch.cat([a.softmax(-1) for a in anchors]).mean(0)
    for lam in (0.0, 1.0, 2.5):
        expected = torch.tensor(ce / n + lam * neg_entropy)
        torch.testing.assert_close(losses.msn_loss(anchors, targets, mean_probs, lam), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses.msn_loss(anchors, targets), torch.tensor(ce / n), rtol=1e-5, atol=1e-6)


def test_msn_loss_targets_get_no_gradient_and_me_max_spreads_predictions():
    """Targets are detached; the ME-MAX term alone pushes a collapsed mean prediction towards uniform."""
    logits = torch.zeros(3, 4)
    logits[:, 0] = 5.0
    logits.requires_grad_(True)
    targets = torch.full((3, 4), 0.25, requires_grad=True)
    loss = losses.msn_loss([logits], targets, logits.softmax(-1).mean(0), me_max_weight=1.0)
    loss.backward()
    assert targets.grad is None
    assert (logits.grad[:, 0] > 0).all()  # descending lowers the over-used prototype


# ------------------------------------------------------------------------------------------ LeJEPA
def _epps_pulley_closed_form(x: list[float]) -> float:
    """N * integral over R of |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt, from
    integral cos(a t) exp(-b t^2) dt = sqrt(pi / b) exp(-a^2 / (4 b))."""
    n = len(x)
    pairs = sum(math.sqrt(2 * math.pi) * math.exp(-((a - b) ** 2) / 2) for a in x for b in x) / n**2
    cross = 2 * sum(math.sqrt(math.pi) * math.exp(-(a**2) / 4) for a in x) / n
    return n * (pairs - cross + math.sqrt(2 * math.pi / 3))


def _epps_pulley_loop(x: list[float], t: list[float]) -> float:
    """The trapezoidal rule on grid t of N |phi_N(t) - phi(t)|^2 w(t), one t at a time, complex arithmetic."""
    vals = []
    for ti in t:
        ecf = sum(cmath.exp(1j * ti * xj) for xj in x) / len(x)
        vals.append(abs(ecf - math.exp(-ti**2 / 2)) ** 2 * math.exp(-ti**2 / 2))
    return len(x) * sum((t[i + 1] - t[i]) * (vals[i] + vals[i + 1]) / 2 for i in range(len(t) - 1))


def test_epps_pulley_matches_quadrature_loop_and_closed_form():
    g = _gen(2)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.3], dtype=torch.float64)
    grid = losses.quadrature_grid()  # the paper's 17 points on [-5, 5]
    got = losses.epps_pulley(x, grid)
    assert got.shape == (3,)
    for m in range(3):
        col = x[:, m].tolist()
        assert math.isclose(float(got[m]), _epps_pulley_loop(col, grid.tolist()), rel_tol=1e-6, abs_tol=1e-9)
        fine = losses.epps_pulley(x[:, m:m + 1], losses.quadrature_grid(12.0, 4001))
        assert math.isclose(float(fine), _epps_pulley_closed_form(col), rel_tol=1e-6, abs_tol=1e-9)
        # the 17-point rule is a fair approximation of the integral for these scales
        assert math.isclose(float(got[m]), _epps_pulley_closed_form(col), rel_tol=0.05, abs_tol=1e-3)


def test_epps_pulley_small_for_gaussian_large_for_other_laws():
    g = _gen(3)
    grid = losses.quadrature_grid()
    gaussian = losses.epps_pulley(torch.randn(4000, 1, generator=g), grid)
    collapsed = losses.epps_pulley(torch.zeros(4000, 1), grid)
    wide = losses.epps_pulley(3 * torch.randn(4000, 1, generator=g), grid)
    assert float(gaussian) < 1.0 < 50 * float(gaussian) < min(float(collapsed), float(wide))


def test_random_directions_unit_and_reproducible():
    a = losses.random_directions(6, 9, _gen(4))
    torch.testing.assert_close(a.norm(dim=0), torch.ones(9))
    assert torch.equal(a, losses.random_directions(6, 9, _gen(4)))


def test_lejepa_loss_matches_naive_loop():
    """Prediction: mean over views, images and coordinates of (centre - z)^2, the centre the mean of
    the global views; SIGReg: mean over views and directions of the statistic of z a."""
    g = _gen(5)
    views = [torch.randn(6, 4, generator=g) for _ in range(4)]  # 2 global, 2 local
    directions = losses.random_directions(4, 5, _gen(6))
    grid = losses.quadrature_grid()
    pred = 0.0
    for z in views:
        for i in range(6):
            centre = [(views[0][i, k] + views[1][i, k]) / 2 for k in range(4)]
            pred += sum(float(centre[k] - z[i, k]) ** 2 for k in range(4)) / (4 * 6 * 4)
    reg = 0.0
    for z in views:
        for m in range(5):
            reg += _epps_pulley_loop((z @ directions[:, m]).tolist(), grid.tolist()) / (4 * 5)
    torch.testing.assert_close(losses.lejepa_prediction_loss(views[:2], views), torch.tensor(pred), rtol=1e-5, atol=1e-6)
    for lam in (0.0, 0.05, 1.0):
        torch.testing.assert_close(losses.lejepa_loss(views[:2], views, directions, lam),
                                   torch.tensor((1 - lam) * pred + lam * reg), rtol=1e-5, atol=1e-5)


def test_sigreg_and_prototype_logits_are_float32_under_autocast():
    """bfloat16 autocast (CPU here) does not reach the statistic's matmul or the prototype similarities."""
    g = _gen(7)
    z, q = torch.randn(16, 8, generator=g), torch.randn(5, 8, generator=g)
    directions = losses.random_directions(8, 4, _gen(8))
    grid = losses.quadrature_grid()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        reg, logits = losses.sigreg(z, directions, grid), losses.prototype_logits(z, q)
    assert reg.dtype == logits.dtype == torch.float32
    torch.testing.assert_close(reg, losses.sigreg(z, directions, grid))
    torch.testing.assert_close(logits, losses.prototype_logits(z, q))
