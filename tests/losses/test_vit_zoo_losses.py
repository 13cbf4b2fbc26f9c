"""ViT-era zoo losses (issue #23) against independent computations: naive per-sample loops of the
papers' formulas."""
from __future__ import annotations

import math

import torch

from ssl_bench import losses


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ctr_loop(q: torch.Tensor, k: torch.Tensor, t: float, offset: int = 0) -> torch.Tensor:
    """MoCo v3's ctr(q, k) (Algorithm 1) one query at a time: -log softmax over all keys of the own
    key, times 2t."""
    total = 0.0
    for i in range(len(q)):
        qi = q[i] / q[i].norm()
        sims = [float(qi @ (kj / kj.norm())) / t for kj in k]
        total += -(sims[offset + i] - math.log(sum(math.exp(s) for s in sims)))
    return torch.tensor(2 * t * total / len(q))


def test_mocov3_loss_matches_naive_loop():
    g = _gen()
    q1, q2, k1, k2 = (torch.randn(6, 5, generator=g) for _ in range(4))
    for t in (0.2, 1.0):
        expected = _ctr_loop(q1, k2, t) + _ctr_loop(q2, k1, t)
        torch.testing.assert_close(losses.mocov3_loss(q1, q2, k1, k2, t), expected.float(), rtol=1e-5, atol=1e-6)


def test_mocov3_loss_local_rows_against_gathered_keys():
    """Rank r's queries (rows r*B..) against the keys of all ranks: the positive is at r*B + i."""
    g = _gen(1)
    q1, q2, k1, k2 = (torch.randn(8, 4, generator=g) for _ in range(4))
    local = slice(4, 8)
    got = losses.mocov3_loss(q1[local], q2[local], k1, k2, 0.2, rank=1)
    expected = _ctr_loop(q1[local], k2, 0.2, offset=4) + _ctr_loop(q2[local], k1, 0.2, offset=4)
    torch.testing.assert_close(got, expected.float(), rtol=1e-5, atol=1e-6)


def test_mocov3_loss_perfect_alignment_limit_and_no_key_gradient():
    """Identical queries and keys with orthogonal rows: each ctr term tends to 0 as t -> 0 (the
    positive dominates); keys never receive gradients (momentum encoder)."""
    q = torch.eye(4, requires_grad=True)
    k = torch.eye(4, requires_grad=True)
    assert float(losses.mocov3_loss(q, q, k, k, 0.01)) < 1e-6
    losses.mocov3_loss(q, q, k, k, 0.2).backward()
    assert k.grad is None and q.grad is not None


def test_patchify_layout():
    """Patch j of row-major order holds pixels (r*p.., c*p..) in (p, p, C) order."""
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    patches = losses.patchify(x, 4)
    assert patches.shape == (2, 4, 48)
    for b in range(2):
        for j in range(4):
            r, c = divmod(j, 2)
            block = x[b, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4].permute(1, 2, 0).reshape(-1)
            assert torch.equal(patches[b, j], block)


def test_mae_loss_matches_naive_loop():
    g = _gen(2)
    pred, target = torch.randn(3, 5, 12, generator=g), torch.randn(3, 5, 12, generator=g) * 3 + 1
    mask = torch.rand(3, 5, generator=g) > 0.4
    for norm_pix in (False, True):
        errs = []
        for b in range(3):
            for j in range(5):
                if not mask[b, j]:
                    continue
                t = target[b, j].tolist()
                if norm_pix:   # per-patch mean and unbiased variance, as the paper's official code
                    mean = sum(t) / len(t)
                    var = sum((v - mean) ** 2 for v in t) / (len(t) - 1)
                    t = [(v - mean) / math.sqrt(var + 1e-6) for v in t]
                errs.append(sum((p - v) ** 2 for p, v in zip(pred[b, j].tolist(), t)) / len(t))
        expected = torch.tensor(sum(errs) / len(errs))
        torch.testing.assert_close(losses.mae_loss(pred, target, mask, norm_pix), expected, rtol=1e-5, atol=1e-6)


def test_mae_loss_ignores_visible_patches():
    pred, target = torch.zeros(1, 4, 3), torch.ones(1, 4, 3)
    mask = torch.tensor([[True, False, False, False]])
    pred[0, 1:] = 100.0                                              # visible patches: any prediction
    assert float(losses.mae_loss(pred, target, mask, norm_pix=False)) == 1.0


def test_ijepa_loss_matches_naive_loop():
    g = _gen(3)
    pred, target = torch.randn(2, 4, 3, 5, generator=g), torch.randn(2, 4, 3, 5, generator=g)
    sq = [float(((pred[b, m, j] - target[b, m, j]) ** 2).sum()) for b in range(2) for m in range(4) for j in range(3)]
    torch.testing.assert_close(losses.ijepa_loss(pred, target), torch.tensor(sum(sq) / (len(sq) * 5)))
