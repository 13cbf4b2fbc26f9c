"""Zoo part 2 losses against independent computations: DINO (naive loop, centre closed form), ReSSL
(naive loop, sharp-teacher limit), VICReg (hand-computed terms, the variance convention pinned),
W-MSE (whitened covariance is the identity; loss against a float64 NumPy loop with explicit inverses)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_bench import losses
from ssl_bench.losses.wmse import sub_batches


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


# ----------------------------------------------------------------------------- DINO
def test_dino_loss_matches_naive_loop():
    torch.manual_seed(0)
    b, k, st, tt = 3, 5, 0.1, 0.04
    student = [torch.randn(b, k, dtype=torch.float64) for _ in range(4)]  # 2 global + 2 small crops
    teacher = [torch.randn(b, k, dtype=torch.float64) for _ in range(2)]
    center = torch.randn(1, k, dtype=torch.float64)
    total, n = 0.0, 0
    for i in range(2):
        for j in range(4):
            if i == j:
                continue
            for r in range(b):
                p = _softmax((teacher[i][r] - center[0]).numpy() / tt)
                q = _softmax(student[j][r].numpy() / st)
                total += -(p * np.log(q)).sum() / b
            n += 1
    assert n == 6
    got = losses.dino_loss(student, teacher, center, st, tt)
    assert got.item() == pytest.approx(total / n, rel=1e-10)


def test_dino_loss_gradient_only_to_student():
    s = [torch.randn(4, 6, requires_grad=True) for _ in range(2)]
    t = [torch.randn(4, 6, requires_grad=True) for _ in range(2)]
    losses.dino_loss(s, t, torch.zeros(6)).backward()
    assert all(x.grad is not None for x in s) and all(x.grad is None for x in t)


def test_dino_center_update_equals_closed_form():
    """C_k = m^k C_0 + (1 - m) sum_i m^(k - i) c_i with c_i the batch means (Eq. 4 unrolled)."""
    torch.manual_seed(1)
    m, k = 0.9, 5
    c0 = torch.randn(1, 8, dtype=torch.float64)
    batches = [[torch.randn(6, 8, dtype=torch.float64) for _ in range(2)] for _ in range(k)]
    c = c0.clone()
    for teacher in batches:
        c = losses.ema_center(c, losses.batch_center(teacher), m)
    means = [torch.cat(t).mean(dim=0, keepdim=True) for t in batches]
    closed = m ** k * c0 + (1 - m) * sum(m ** (k - 1 - i) * mu for i, mu in enumerate(means))
    torch.testing.assert_close(c, closed, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- ReSSL
def test_ressl_loss_matches_naive_loop():
    torch.manual_seed(2)
    s, t, q = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    total = 0.0
    for i in range(4):
        sim_s = np.array([unit(s[i].numpy()) @ unit(q[j].numpy()) for j in range(7)])
        sim_t = np.array([unit(t[i].numpy()) @ unit(q[j].numpy()) for j in range(7)])
        total += -(_softmax(sim_t / 0.04) * np.log(_softmax(sim_s / 0.1))).sum()
    assert losses.ressl_loss(s, t, q, 0.1, 0.04).item() == pytest.approx(total / 4, rel=1e-10)


def test_ressl_sharp_teacher_limit_is_cross_entropy_on_nearest_key():
    torch.manual_seed(3)
    s, t, q = torch.randn(5, 4), torch.randn(5, 4), torch.randn(9, 4)
    nearest = (F.normalize(t, dim=1) @ F.normalize(q, dim=1).T).argmax(dim=1)
    logits = F.normalize(s, dim=1) @ F.normalize(q, dim=1).T / 0.1
    expected = F.cross_entropy(logits, nearest)
    torch.testing.assert_close(losses.ressl_loss(s, t, q, 0.1, 1e-6), expected)


# ----------------------------------------------------------------------------- VICReg
Z1 = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
Z2 = torch.tensor([[0.5, 0.0], [-0.5, 0.0]], dtype=torch.float64)


def test_vicreg_terms_on_a_hand_computed_case():
    """Z1: unbiased variances (2, 2), covariance [[2, 2], [2, 2]]; Z2: variances (0.5, 0), no covariance."""
    assert losses.invariance_loss(Z1, Z2).item() == pytest.approx((0.25 + 1 + 0.25 + 1) / 4)
    # Z1's stds exceed 1 (no hinge); Z2: (1 - sqrt(0.5 + 1e-4)) and (1 - sqrt(0 + 1e-4)) = 0.99
    v2 = ((1 - math.sqrt(0.5001)) + 0.99) / 2
    # official convention: the two views' hinges are AVERAGED (a summing peer would give v2, not v2 / 2)
    assert losses.variance_loss(Z1, Z2).item() == pytest.approx(v2 / 2, rel=1e-12)
    # (off-diagonal 2^2 + 2^2) / d for Z1, 0 for Z2, summed over views
    assert losses.covariance_loss(Z1, Z2).item() == pytest.approx(4.0)
    total = 25 * 0.625 + 25 * v2 / 2 + 1 * 4.0
    assert losses.vicreg_loss(Z1, Z2).item() == pytest.approx(total, rel=1e-12)
    assert losses.vicreg_loss(Z1, Z2, 1.0, 0.0, 0.0).item() == pytest.approx(0.625)


def test_vicreg_variance_is_symmetric_and_zero_above_gamma():
    assert losses.variance_loss(Z2, Z1).item() == pytest.approx(losses.variance_loss(Z1, Z2).item())
    assert losses.variance_loss(Z1, 3 * Z1).item() == 0.0


# ----------------------------------------------------------------------------- W-MSE
def _correlated(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g) + 3.0


def test_whitened_covariance_is_identity():
    w = losses.whiten(_correlated(256, 16))
    torch.testing.assert_close(torch.cov(w.T), torch.eye(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(w.mean(dim=0), torch.zeros(16), atol=1e-5, rtol=0)


def test_whitening_is_float32_under_autocast_and_lower_triangular():
    x = _correlated(128, 8).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = losses.whiten(x)
    assert w.dtype == torch.float32
    torch.testing.assert_close(torch.cov(w.T), torch.eye(8), atol=1e-4, rtol=0)
    # W = L^-1 is lower triangular: output 0 is input 0 standardised
    x0 = x.float()[:, 0]
    torch.testing.assert_close(w[:, 0], (x0 - x0.mean()) / x0.std(), atol=1e-5, rtol=0)


def _naive_wmse(views, perms, size):
    """Float64 NumPy: explicit inverse of the Cholesky factor, loops over sub-batches and pairs."""
    total, terms = 0.0, 0
    for perm in perms.numpy():
        groups = [perm[i:i + size] for i in range(0, len(perm), size)]
        if len(groups) > 1 and len(groups[-1]) < size:
            groups[-2:] = [np.concatenate(groups[-2:])]
        white = []
        for v in views:
            v = v.double().numpy()
            out = np.zeros_like(v)
            for idx in groups:
                xc = v[idx] - v[idx].mean(axis=0)
                inv = np.linalg.inv(np.linalg.cholesky(np.cov(xc.T)))
                out[idx] = xc @ inv.T
            white.append(out / np.linalg.norm(out, axis=1, keepdims=True))
        for a in range(len(white)):
            for b in range(a + 1, len(white)):
                total += np.mean(np.sum((white[a] - white[b]) ** 2, axis=1))
                terms += 1
    return total / terms


@pytest.mark.parametrize("num_views, iters, n", [(2, 1, 40), (4, 2, 44)])
def test_wmse_loss_matches_naive(num_views, iters, n):
    torch.manual_seed(4)
    views = [_correlated(n, 4, seed=i) + 0.5 * torch.randn(n, 4) for i in range(num_views)]
    perms = torch.stack([torch.randperm(n) for _ in range(iters)])
    got = losses.wmse_loss(views, perms, whiten_size=10)
    assert got.item() == pytest.approx(_naive_wmse(views, perms, 10), rel=1e-4)


def test_sub_batches_fold_the_remainder_into_the_last():
    sizes = [p.numel() for p in sub_batches(torch.arange(23), 8)]
    assert sizes == [8, 15]
    with pytest.raises(ValueError, match="smaller than the whitening size"):
        sub_batches(torch.arange(5), 8)
