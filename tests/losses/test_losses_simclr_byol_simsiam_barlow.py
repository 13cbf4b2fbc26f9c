"""Losses vs independent naive computations (per-row loops, hand-derived identities)."""
from __future__ import annotations

import math

import pytest
import torch

from ssl_bench.losses import barlow_twins_loss, byol_loss, nt_xent, simsiam_loss



@pytest.fixture(autouse=True)
def _float64():
    """Compare in float64 so tolerances are tight; restore the default for other test files."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# ----------------------------------------------------------------------------- NT-Xent
def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum() / (a.norm() * b.norm())


def naive_nt_xent(z1, z2, tau, z1_all=None, z2_all=None, rank=0):
    """SimCLR Eq. 1 written out with Python loops over anchors and candidates."""
    if z1_all is None:
        z1_all, z2_all = z1, z2
    b, n = z1.shape[0], z1_all.shape[0]
    cands = [z1_all[k] for k in range(n)] + [z2_all[k] for k in range(n)]
    terms = []
    for view, (mine, other_all) in enumerate([(z1, z2_all), (z2, z1_all)]):
        for i in range(b):
            anchor = mine[i]
            self_k = view * n + rank * b + i
            pos = other_all[rank * b + i]
            denom = sum(torch.exp(_cos(anchor, c) / tau) for k, c in enumerate(cands) if k != self_k)
            terms.append(-torch.log(torch.exp(_cos(anchor, pos) / tau) / denom))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_matches_naive_single_process(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    torch.testing.assert_close(nt_xent(z1, z2, tau), naive_nt_xent(z1, z2, tau))


def test_nt_xent_multi_rank_simulated():
    """W=2: rank 1 sees its local batch plus both ranks' gathered embeddings."""
    g = torch.Generator().manual_seed(1)
    b = 4
    z1_all, z2_all = torch.randn(2 * b, 6, generator=g), torch.randn(2 * b, 6, generator=g)
    for rank in (0, 1):
        z1, z2 = z1_all[rank * b:(rank + 1) * b], z2_all[rank * b:(rank + 1) * b]
        got = nt_xent(z1, z2, 0.2, z1_all=z1_all, z2_all=z2_all, rank=rank)
        want = naive_nt_xent(z1, z2, 0.2, z1_all, z2_all, rank)
        torch.testing.assert_close(got, want)
    # the mean of the per-rank losses is the loss of the full batch in one process
    full = nt_xent(z1_all, z2_all, 0.2)
    per_rank = [nt_xent(z1_all[r * b:(r + 1) * b], z2_all[r * b:(r + 1) * b], 0.2, z1_all, z2_all, r) for r in (0, 1)]
    torch.testing.assert_close(full, sum(per_rank) / 2)
    # and differs from ignoring the other rank's negatives
    assert not torch.allclose(per_rank[1], nt_xent(z1_all[b:], z2_all[b:], 0.2))


def test_nt_xent_gradients_match_naive():
    g = torch.Generator().manual_seed(2)
    b = 3
    base1, base2 = torch.randn(2 * b, 4, generator=g), torch.randn(2 * b, 4, generator=g)
    grads = []
    for fn in (nt_xent, naive_nt_xent):
        a1, a2 = base1.clone().requires_grad_(), base2.clone().requires_grad_()
        fn(a1[b:], a2[b:], 0.1, a1, a2, 1).backward()
        grads.append((a1.grad, a2.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
    assert grads[0][0][:b].abs().sum() > 0  # the other rank's rows get gradient as negatives


def test_nt_xent_limits():
    # perfectly aligned, mutually orthogonal pairs: positives have cos 1, all negatives cos 0
    z = torch.eye(4)
    tau = 0.5
    want = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 6 * math.exp(0.0)))
    torch.testing.assert_close(nt_xent(z, 3 * z, tau), torch.tensor(want))
    # scale invariance (the function normalises)
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    torch.testing.assert_close(nt_xent(z1, z2), nt_xent(10 * z1, 0.1 * z2))


def test_nt_xent_half_precision_and_errors():
    g = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    out = nt_xent(z1.to(torch.bfloat16), z2.to(torch.bfloat16))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), nt_xent(z1, z2), atol=0.05, rtol=0.02)
    with pytest.raises(ValueError, match="rank"):
        nt_xent(z1, z2, z1_all=torch.cat([z1, z1]), z2_all=torch.cat([z2, z2]), rank=2)
    with pytest.raises(ValueError, match="both"):
        nt_xent(z1, z2, z1_all=z1)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, z2, temperature=0.0)


# ----------------------------------------------------------------------------- BYOL / SimSiam
def _leaf_pair(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 5, generator=g).requires_grad_(), torch.randn(6, 5, generator=g).requires_grad_()


def test_byol_matches_row_loop_and_stops_gradient():
    p, z = _leaf_pair(5)
    want = sum(((p[i] / p[i].norm() - z[i] / z[i].norm()) ** 2).sum() for i in range(6)) / 6
    got = byol_loss(p, z)
    torch.testing.assert_close(got, want.detach())
    got.backward()
    assert z.grad is None and p.grad is not None and p.grad.abs().sum() > 0


def test_simsiam_matches_row_loop_and_stops_gradient():
    p, z = _leaf_pair(6)
    want = -sum(_cos(p[i], z[i]) for i in range(6)) / 6
    got = simsiam_loss(p, z)
    torch.testing.assert_close(got, want.detach())
    got.backward()
    assert z.grad is None and p.grad is not None and p.grad.abs().sum() > 0


def test_cosine_identities():
    p, _ = _leaf_pair(7)
    p = p.detach()
    torch.testing.assert_close(byol_loss(p, p), torch.tensor(0.0))
    torch.testing.assert_close(byol_loss(p, -2 * p), torch.tensor(4.0))
    torch.testing.assert_close(simsiam_loss(p, p), torch.tensor(-1.0))
    torch.testing.assert_close(simsiam_loss(p, -p), torch.tensor(1.0))
    with pytest.raises(ValueError, match="byol_loss"):
        byol_loss(p, p[:3])


# ----------------------------------------------------------------------------- Barlow Twins
def naive_barlow(z1, z2, lambd, eps):
    n, d = z1.shape

    def standardise(z):
        out = torch.empty_like(z)
        for j in range(d):
            col = z[:, j]
            mean = sum(col) / n
            var = sum((x - mean) ** 2 for x in col) / n  # biased, as BatchNorm
            out[:, j] = (col - mean) / torch.sqrt(var + eps)
        return out

    a, b = standardise(z1), standardise(z2)
    c = [[sum(a[k, i] * b[k, j] for k in range(n)) / n for j in range(d)] for i in range(d)]
    on = sum((1 - c[i][i]) ** 2 for i in range(d))
    off = sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    return on + lambd * off


@pytest.mark.parametrize("lambd", [0.0051, 0.5])
def test_barlow_matches_naive(lambd):
    g = torch.Generator().manual_seed(8)
    z1 = torch.randn(9, 4, generator=g) * 3 + 1
    z2 = z1 + 0.5 * torch.randn(9, 4, generator=g)
    torch.testing.assert_close(barlow_twins_loss(z1, z2, lambd), naive_barlow(z1, z2, lambd, 1e-5))


def test_barlow_matches_batchnorm_module():
    g = torch.Generator().manual_seed(9)
    z1, z2 = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    bn = torch.nn.BatchNorm1d(3, affine=False).train()
    c = bn(z1).T @ bn(z2) / 8
    want = ((1 - c.diagonal()) ** 2).sum() + 0.0051 * (c.pow(2).sum() - c.diagonal().pow(2).sum())
    torch.testing.assert_close(barlow_twins_loss(z1, z2), want)


def test_barlow_identity_decorrelated_columns():
    """z1 == z2 with centred, orthogonal columns of variance 1: C = I / (1 + eps), loss ~ 0."""
    g = torch.Generator().manual_seed(10)
    n, d = 16, 5
    x = torch.randn(n, d, generator=g)
    q, _ = torch.linalg.qr(x - x.mean(0))
    z = q * math.sqrt(n) * torch.tensor([1.0, 2.0, 0.5, 3.0, 7.0])  # any per-column scale
    assert barlow_twins_loss(z, z).item() < 1e-8
    # and a collapsed representation (all columns equal) pays the off-diagonal price
    collapsed = z[:, :1].repeat(1, d)
    torch.testing.assert_close(barlow_twins_loss(collapsed, collapsed, lambd=1.0), torch.tensor(d * (d - 1.0)), atol=1e-3, rtol=1e-3)


def test_barlow_errors():
    with pytest.raises(ValueError, match="at least 2"):
        barlow_twins_loss(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        barlow_twins_loss(torch.randn(4, 3), torch.randn(4, 2))
