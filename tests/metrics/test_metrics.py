"""Tests of ssl_bench.metrics against independent computations (loops, closed forms, scipy/mpmath)."""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ssl_bench.metrics import (
    DEFAULT_KAPPA,
    alignment,
    knn_accuracy,
    log_sphere_area,
    log_vmf_normalizer,
    rankme,
    softmax_entropy,
    uniformity,
    vmf_kde_entropy,
    vmf_reconstruction,
    weighted_knn_predict,
    z_std,
)


def _normalise_rows(z: torch.Tensor) -> list[list[float]]:
    rows = z.double().tolist()
    return [[x / math.sqrt(sum(v * v for v in r)) for x in r] for r in rows]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


# ----------------------------------------------------------------------------- z_std


def test_z_std_matches_loop():
    z = torch.randn(12, 5, dtype=torch.float64)
    rows = _normalise_rows(z)
    stds = []
    for k in range(5):
        col = [r[k] for r in rows]
        mean = sum(col) / len(col)
        stds.append(math.sqrt(sum((c - mean) ** 2 for c in col) / (len(col) - 1)))
    assert z_std(z).item() == pytest.approx(sum(stds) / 5, rel=1e-12)


def test_z_std_collapsed_and_isotropic():
    torch.manual_seed(0)
    d = 64
    collapsed = torch.randn(1, d) + 1e-4 * torch.randn(2048, d)
    isotropic = torch.randn(4096, d)
    assert z_std(collapsed).dim() == 0
    assert z_std(collapsed).item() < 1e-3
    # each coordinate of a uniform point on S^{d-1} has variance exactly 1/d
    assert z_std(isotropic).item() == pytest.approx(1 / math.sqrt(d), rel=0.03)
    assert z_std(isotropic * 7.0).item() == pytest.approx(z_std(isotropic).item(), rel=1e-5)


# ----------------------------------------------------------------------------- RankMe


def test_rankme_matches_numpy():
    z = torch.randn(40, 9, dtype=torch.float64)
    s = np.linalg.svd(z.numpy(), compute_uv=False)
    p = s / s.sum() + 1e-7
    assert rankme(z).item() == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-10)


def test_rankme_equal_singular_values_hand_value():
    d, eps = 16, 1e-7
    p = 1 / d + eps  # all singular values equal
    expected = math.exp(-d * p * math.log(p))
    assert rankme(torch.eye(d)).item() == pytest.approx(expected, rel=1e-5)
    assert rankme(torch.eye(d)).item() == pytest.approx(d, rel=1e-4)
    assert rankme(torch.ones(8, 4)).item() == pytest.approx(1.0, abs=1e-4)  # rank one


@pytest.mark.parametrize("k", [4, 8, 16, 32])
def test_rankme_of_rank_k_data(k):
    # RankMe of a product of Gaussians is somewhat below k (the singular values spread out);
    # measured ratios are 0.91-0.99, so [0.7k, k] is far from both k/2 and 2k.
    torch.manual_seed(k)
    z = torch.randn(512, k) @ torch.randn(k, 64)
    r = rankme(z).item()
    assert 0.7 * k <= r <= k * (1 + 1e-4)


def test_rankme_low_precision_and_full_rank():
    torch.manual_seed(0)
    z = torch.randn(1024, 32)
    assert rankme(z).item() > 0.9 * 32
    assert rankme(z.half()).item() == pytest.approx(rankme(z).item(), rel=1e-2)


# ----------------------------------------------------------------------------- alignment / uniformity


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_alignment_matches_loop(alpha):
    z1, z2 = torch.randn(10, 6, dtype=torch.float64), torch.randn(10, 6, dtype=torch.float64)
    a, b = _normalise_rows(z1), _normalise_rows(z2)
    naive = sum(math.dist(x, y) ** alpha for x, y in zip(a, b)) / 10
    assert alignment(z1, z2, alpha).item() == pytest.approx(naive, rel=1e-12)


def test_alignment_hand_values():
    z = torch.randn(5, 3)
    assert alignment(z, 2.0 * z).item() == pytest.approx(0.0, abs=1e-6)
    assert alignment(z, -z).item() == pytest.approx(4.0, rel=1e-6)  # ||2u||^2
    assert alignment(z, -z, alpha=1).item() == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("t", [0.5, 2.0])
def test_uniformity_matches_loop(t):
    z = torch.randn(9, 4, dtype=torch.float64)
    rows = _normalise_rows(z)
    pairs = [math.exp(-t * math.dist(rows[i], rows[j]) ** 2) for i in range(9) for j in range(9) if i != j]
    assert uniformity(z, t).item() == pytest.approx(math.log(sum(pairs) / len(pairs)), rel=1e-12)
    assert uniformity(3.0 * z, t).item() == pytest.approx(uniformity(z, t).item(), rel=1e-12)


def test_uniformity_hand_values_and_circle_limit():
    u = torch.tensor([[1.0, 0.0]])
    assert uniformity(u.repeat(6, 1)).item() == pytest.approx(0.0, abs=1e-6)
    assert uniformity(torch.cat([u, -u]), t=2).item() == pytest.approx(-8.0, rel=1e-6)
    # uniform on S^1: E exp(-t |x - y|^2) = exp(-2t) I_0(2t)
    theta = torch.arange(2000, dtype=torch.float64) * (2 * math.pi / 2000)
    circle = torch.stack([theta.cos(), theta.sin()], dim=1)
    t = 2.0
    limit = -2 * t + math.log(torch.special.i0(torch.tensor(2 * t, dtype=torch.float64)).item())
    assert uniformity(circle, t).item() == pytest.approx(limit, abs=2e-3)
    with pytest.raises(ValueError):
        uniformity(u)


# ----------------------------------------------------------------------------- vMF normaliser


def _kappa_grid() -> list[float]:
    return [1e-3, 1e-2, 0.1, 0.5, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4]


@pytest.mark.parametrize("d", [3, 16, 128, 256])
def test_log_vmf_normalizer_matches_scipy(d):
    ive = pytest.importorskip("scipy.special").ive
    nu = d / 2 - 1
    for kappa in _kappa_grid():
        # scipy.special.ive(nu, k) = I_nu(k) exp(-k); skip where it under/overflows
        scaled = float(ive(nu, kappa))
        if not (0.0 < scaled < math.inf) or scaled < 1e-290:
            continue
        log_i = math.log(scaled) + kappa
        ref = nu * math.log(kappa) - d / 2 * math.log(2 * math.pi) - log_i
        ours = log_vmf_normalizer(d, kappa).item()
        assert ours == pytest.approx(ref, rel=1e-6, abs=1e-9), (d, kappa)


def test_log_vmf_normalizer_d3_closed_form():
    for kappa in _kappa_grid():
        log_sinh = kappa - math.log(2) + math.log1p(-math.exp(-2 * kappa))
        closed = math.log(kappa) - math.log(4 * math.pi) - log_sinh  # C_3 = k / (4 pi sinh k)
        assert log_vmf_normalizer(3, kappa).item() == pytest.approx(closed, rel=1e-10), kappa


def test_log_vmf_normalizer_d1_closed_form():
    # S^0 = {-1, 1}: C_1(k) = 1 / (2 cosh k)
    for kappa in [0.0, 0.3, 5.0, 200.0]:
        log_cosh = kappa - math.log(2) + math.log1p(math.exp(-2 * kappa))
        assert log_vmf_normalizer(1, kappa).item() == pytest.approx(-math.log(2) - log_cosh, rel=1e-12)


def test_log_sphere_area_known_values():
    assert math.exp(log_sphere_area(2)) == pytest.approx(2 * math.pi)
    assert math.exp(log_sphere_area(3)) == pytest.approx(4 * math.pi)
    assert math.exp(log_sphere_area(4)) == pytest.approx(2 * math.pi**2)


@pytest.mark.parametrize("d", [2, 3, 16, 512, 2048])
def test_log_vmf_normalizer_small_kappa_limit(d):
    assert log_vmf_normalizer(d, 0.0).item() == pytest.approx(-log_sphere_area(d), rel=1e-14)
    assert log_vmf_normalizer(d, 1e-6).item() == pytest.approx(-log_sphere_area(d), rel=1e-9, abs=1e-9)


def test_log_vmf_normalizer_d2048_mpmath_and_monotone():
    mpmath = pytest.importorskip("mpmath")
    d = 2048
    kappas = torch.logspace(-3, 4, 300, dtype=torch.float64)
    values = log_vmf_normalizer(d, kappas)
    assert values.shape == kappas.shape and torch.isfinite(values).all()
    # d/dk log C_d(k) = -I_{d/2}(k) / I_{d/2-1}(k) < 0, and the mode density C_d(k) e^k grows
    assert (values.diff() < 0).all()
    assert ((values + kappas).diff() > 0).all()
    with mpmath.workdps(40):
        nu = mpmath.mpf(d) / 2 - 1
        for kappa in [1e-3, 1.0, 100.0, 1e3, 1e4]:
            k = mpmath.mpf(kappa)
            log_i = mpmath.log(mpmath.besseli(nu, k))
            ref = nu * mpmath.log(k) - mpmath.mpf(d) / 2 * mpmath.log(2 * mpmath.pi) - log_i
            assert log_vmf_normalizer(d, kappa).item() == pytest.approx(float(ref), rel=1e-10)


def test_log_vmf_normalizer_tensor_kappa_and_gradient():
    ive = pytest.importorskip("scipy.special").ive
    d = 16
    kappa = torch.tensor([0.5, 4.0, 40.0], dtype=torch.float64, requires_grad=True)
    values = log_vmf_normalizer(d, kappa)
    for i, k in enumerate(kappa.tolist()):
        assert values[i].item() == pytest.approx(log_vmf_normalizer(d, k).item(), rel=1e-12)
    (grad,) = torch.autograd.grad(values.sum(), kappa)
    # d/dk log C_d(k) = -A_d(k) = -I_{d/2}(k) / I_{d/2-1}(k)
    ref = [-ive(d / 2, k) / ive(d / 2 - 1, k) for k in kappa.tolist()]
    assert grad.tolist() == pytest.approx(ref, rel=1e-9)
    as32 = log_vmf_normalizer(d, kappa.detach().float())
    assert as32.dtype == torch.float32
    with pytest.raises(ValueError):
        log_vmf_normalizer(d, -1.0)


# ----------------------------------------------------------------------------- vMF entropy / reconstruction


def test_vmf_kde_entropy_matches_loop_d3():
    kappa = 4.0
    z = torch.randn(15, 3, dtype=torch.float64)
    rows = _normalise_rows(z)
    c3 = kappa / (4 * math.pi * math.sinh(kappa))  # closed form, independent of the series
    naive = -sum(
        math.log(sum(c3 * math.exp(kappa * _dot(a, b)) for b in rows) / len(rows)) for a in rows
    ) / len(rows)
    assert vmf_kde_entropy(z, kappa).item() == pytest.approx(naive, rel=1e-12)
    assert vmf_kde_entropy(z.float(), kappa).item() == pytest.approx(naive, rel=1e-5)


def test_vmf_kde_entropy_collapsed_far_below_uniform():
    torch.manual_seed(0)
    n, d, kappa = 256, 128, DEFAULT_KAPPA
    uniform = torch.randn(n, d)
    collapsed = torch.randn(1, d) + 1e-3 * torch.randn(n, d)
    h_u, h_c = vmf_kde_entropy(uniform, kappa).item(), vmf_kde_entropy(collapsed, kappa).item()
    lower = -log_vmf_normalizer(d, kappa).item() - kappa  # every row identical
    assert h_c == pytest.approx(lower, abs=1e-2)
    assert lower - 1e-3 <= h_u <= lower + math.log(n) + 1e-3  # resubstitution bounds
    assert h_u - h_c > 0.9 * math.log(n)
    exact = torch.randn(1, d).repeat(n, 1)
    assert vmf_kde_entropy(exact, kappa).item() == pytest.approx(lower, rel=1e-5)


def test_vmf_kde_entropy_uniform_approaches_log_area():
    torch.manual_seed(0)
    # small kappa: the kernel is nearly flat, any batch gives ~ log |S^{d-1}|
    z = torch.randn(256, 128, dtype=torch.float64)
    assert vmf_kde_entropy(z, 1e-2).item() == pytest.approx(log_sphere_area(128), abs=1e-3)
    # fixed kappa, growing N on S^2: the KDE converges to the uniform density
    target = math.log(4 * math.pi)
    samples = [torch.randn(n, 3, dtype=torch.float64) for n in (50, 2000)]
    errors = [target - vmf_kde_entropy(z, 10.0).item() for z in samples]
    assert errors[1] < errors[0]
    assert errors[1] == pytest.approx(0.0, abs=0.03)


def test_vmf_kde_entropy_differentiable_and_scale_invariant():
    z = torch.randn(32, 2048, requires_grad=True)
    h = vmf_kde_entropy(z, DEFAULT_KAPPA)
    assert h.dim() == 0 and torch.isfinite(h)
    (g,) = torch.autograd.grad(h, z)
    assert torch.isfinite(g).all()
    assert vmf_kde_entropy(5.0 * z.detach(), 10.0).item() == pytest.approx(h.item(), rel=1e-6)


def test_vmf_reconstruction_matches_loop_and_limits():
    kappa, d = 7.0, 3
    z1, z2 = torch.randn(11, d, dtype=torch.float64), torch.randn(11, d, dtype=torch.float64)
    a, b = _normalise_rows(z1), _normalise_rows(z2)
    log_c3 = math.log(kappa / (4 * math.pi * math.sinh(kappa)))
    naive = sum(-(log_c3 + kappa * _dot(x, y)) for x, y in zip(a, b)) / 11
    assert vmf_reconstruction(z1, z2, kappa).item() == pytest.approx(naive, rel=1e-12)
    # perfect reconstruction: -log of the mode density; kappa -> 0: log |S^{d-1}|
    assert vmf_reconstruction(z1, 3 * z1, kappa).item() == pytest.approx(-log_c3 - kappa, rel=1e-12)
    assert vmf_reconstruction(z1, z2, 1e-8).item() == pytest.approx(log_sphere_area(d), rel=1e-7)
    big = torch.randn(8, 2048)
    assert torch.isfinite(vmf_reconstruction(big, big.roll(1, 0), DEFAULT_KAPPA))


# ----------------------------------------------------------------------------- softmax entropy


def test_softmax_entropy():
    probs = torch.softmax(torch.randn(7, 5, dtype=torch.float64), dim=1)
    p_bar = [sum(probs[i, k].item() for i in range(7)) / 7 for k in range(5)]
    assert softmax_entropy(probs).item() == pytest.approx(-sum(p * math.log(p) for p in p_bar), rel=1e-12)
    assert softmax_entropy(torch.eye(6)).item() == pytest.approx(math.log(6), rel=1e-6)  # max
    one_hot = torch.zeros(4, 6)
    one_hot[:, 2] = 1
    assert softmax_entropy(one_hot).item() == 0.0  # collapse, and no nan from 0 log 0


# ----------------------------------------------------------------------------- weighted k-NN


def _naive_knn(train, labels, test, num_classes, k, temperature):
    train_rows, test_rows = _normalise_rows(train), _normalise_rows(test)
    out = []
    for q in test_rows:
        sims = sorted(((_dot(q, t), int(y)) for t, y in zip(train_rows, labels.tolist())), reverse=True)
        scores = [0.0] * num_classes
        for s, y in sims[:k]:
            scores[y] += math.exp(s / temperature)
        out.append(scores)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("k,temperature", [(1, 0.07), (5, 0.07), (20, 0.5)])
def test_weighted_knn_matches_loop(k, temperature):
    torch.manual_seed(k)
    train, test = torch.randn(60, 8, dtype=torch.float64), torch.randn(13, 8, dtype=torch.float64)
    labels = torch.randint(0, 4, (60,))
    scores = weighted_knn_predict(train, labels, test, 4, k=k, temperature=temperature, chunk_size=5)
    assert scores.shape == (13, 4)
    assert torch.allclose(scores, _naive_knn(train, labels, test, 4, k, temperature), rtol=1e-10)


def test_weighted_knn_chunked_equals_unchunked_and_clamps_k():
    torch.manual_seed(0)
    train, test, labels = torch.randn(30, 16), torch.randn(21, 16), torch.randint(0, 3, (30,))
    full = weighted_knn_predict(train, labels, test, 3, chunk_size=10_000)
    for chunk in (1, 4, 21):
        assert torch.allclose(weighted_knn_predict(train, labels, test, 3, chunk_size=chunk), full)
    clamped = weighted_knn_predict(train, labels, test, 3, k=500)
    assert torch.allclose(clamped, weighted_knn_predict(train, labels, test, 3, k=30))
    naive = _naive_knn(train, labels, test, 3, 30, 0.07)
    assert torch.allclose(clamped.double(), naive, rtol=1e-4)
    assert weighted_knn_predict(train.half(), labels, test.half(), 3).dtype == torch.float32


def test_knn_accuracy_and_separable_clusters():
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = torch.tensor([2, 0, 2, 1])
    # top-1 hits: rows 1, 2 -> 50%; top-2 hits: all rows -> 100%; top-5 clamps to 3 classes
    assert knn_accuracy(scores, labels, top_k=(1, 2, 5)) == {1: 50.0, 2: 100.0, 5: 100.0}
    torch.manual_seed(0)
    centres = 10 * torch.randn(5, 32)
    y_train, y_test = torch.arange(200) % 5, torch.arange(50) % 5
    train = centres[y_train] + torch.randn(200, 32)
    test = centres[y_test] + torch.randn(50, 32)
    acc = knn_accuracy(weighted_knn_predict(train, y_train, test, 5), y_test)
    assert acc == {1: 100.0, 5: 100.0}


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import torch
    from ssl_bench.metrics import weighted_knn_predict

    def status_mib(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024

    train, test = torch.randn(50_000, 64), torch.randn(4_000, 64)
    labels = torch.randint(0, 10, (50_000,))
    weighted_knn_predict(train[:100], labels[:100], test[:10], 10)
    for chunk_size in (256, 4_000):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak resident set size (VmHWM) to the current one
        before = status_mib("VmRSS:")
        weighted_knn_predict(train, labels, test, 10, chunk_size=chunk_size)
        print(status_mib("VmHWM:") - before)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc (Linux)")
def test_weighted_knn_peak_memory_is_one_chunk():
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True)
    if out.returncode != 0 and "clear_refs" in out.stderr:
        pytest.skip("cannot reset the peak RSS here")
    assert out.returncode == 0, out.stderr
    chunked, unchunked = (float(x) for x in out.stdout.split())
    # the full 4,000 x 50,000 float32 similarity matrix is 763 MiB; a 256-row chunk is 49 MiB
    assert chunked < 200, (chunked, unchunked)
    assert unchunked > 600, (chunked, unchunked)  # control: the measurement does see a full matrix
