"""Method zoo part 1, pure pieces: each loss against a naive loop or hand-derived values (and where
gradients must not flow), Sinkhorn's marginals, k-means against scikit-learn, the NN lookup, the Lab
split, the memory bank's state, backbones' input channels."""
import math

import pytest
import torch
import torch.nn.functional as F

from ssl_bench.backbones import build_backbone
from ssl_bench.losses import (batch_infonce, cmc_loss, cmc_view_pairs, deepcluster_loss, infonce, sinkhorn,
                              swav_loss)
from ssl_bench.methods.cmc import LAB_MEAN, LAB_STD, VIEW_CHANNELS, rgb_to_normalized_lab
from ssl_bench.methods.deepcluster import MemoryBank
from ssl_bench.methods.kmeans import spherical_kmeans
from ssl_bench.methods.nnclr import nearest_neighbours


def _cos(a, b):
    return float(F.cosine_similarity(a.detach(), b.detach(), dim=0))


def test_infonce_matches_a_loop_and_keys_get_no_gradient():
    torch.manual_seed(0)
    q = torch.randn(4, 5, requires_grad=True)
    k, neg = torch.randn(4, 5, requires_grad=True), torch.randn(7, 5, requires_grad=True)
    t = 0.2
    expected = 0.0
    for i in range(4):
        logits = [_cos(q[i], k[i]) / t] + [_cos(q[i], n) / t for n in neg]
        expected += -(logits[0] - math.log(sum(math.exp(x) for x in logits)))
    loss = infonce(q, k, neg, t)
    assert loss.item() == pytest.approx(expected / 4, rel=1e-5)
    loss.backward()
    assert q.grad.abs().sum() > 0 and k.grad is None and neg.grad is None


def test_batch_infonce_matches_a_loop_with_rank_offset_and_memory():
    torch.manual_seed(1)
    b, w, r, t = 3, 2, 1, 0.5
    anchors = torch.randn(b, 4, requires_grad=True)
    keys_all = torch.randn(w * b, 4, requires_grad=True)
    memory = torch.randn(5, 4, requires_grad=True)
    expected = 0.0
    for i in range(b):
        logits = [_cos(anchors[i], key) / t for key in torch.cat([keys_all, memory])]
        expected += -(logits[r * b + i] - math.log(sum(math.exp(x) for x in logits)))
    loss = batch_infonce(anchors, keys_all, t, rank=r, negatives=memory)
    assert loss.item() == pytest.approx(expected / b, rel=1e-5)
    loss.backward()
    assert anchors.grad.abs().sum() > 0 and keys_all.grad.abs().sum() > 0 and memory.grad is None


def test_cmc_graphs_and_loss_match_a_loop():
    assert cmc_view_pairs(3, "full_graph") == [(0, 1), (0, 2), (1, 2)]
    assert cmc_view_pairs(4, "core_view", core=2) == [(2, 0), (2, 1), (2, 3)]
    with pytest.raises(ValueError, match="graph must be one of"):
        cmc_view_pairs(3, "star")
    torch.manual_seed(2)
    z = [torch.randn(4, 6) for _ in range(3)]
    for graph, pairs in (("full_graph", [(0, 1), (0, 2), (1, 2)]), ("core_view", [(0, 1), (0, 2)])):
        expected = sum(batch_infonce(z[i], z[j], 0.1) + batch_infonce(z[j], z[i], 0.1) for i, j in pairs)
        got = cmc_loss(z, z, 0.1, graph)
        torch.testing.assert_close(got, expected / (2 * len(pairs)))
    # with a memory of negatives per view: the key view's memory is added to its negatives
    mem = [torch.randn(5, 6) for _ in range(3)]
    expected = (batch_infonce(z[0], z[1], 0.1, negatives=mem[1]) + batch_infonce(z[1], z[0], 0.1, negatives=mem[0])) / 2
    torch.testing.assert_close(cmc_loss(z[:2], z[:2], 0.1, memories=mem[:2]), expected)


def _scores(b, k, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, d, generator=g), dim=1) @ F.normalize(torch.randn(k, d, generator=g), dim=1).T


def test_sinkhorn_marginals_and_scaling_form():
    b, k = 24, 6
    s = _scores(b, k)
    q = sinkhorn(s, 0.05, 3)
    # each sample's code sums to 1 exactly (the last scaling is over samples), all positive
    torch.testing.assert_close(q.sum(1), torch.ones(b))
    assert (q > 0).all()
    # converged: equipartition, every prototype gets B/K of the mass
    q_conv = sinkhorn(s, 0.05, 500)
    torch.testing.assert_close(q_conv.sum(0), torch.full((k,), b / k), rtol=1e-4, atol=1e-4)
    # Q is a diagonal scaling of exp(S / eps): log Q - S/eps = u_b + v_k (double-centred residual 0)
    resid = torch.log(q.double()) - s.double() / 0.05
    resid = resid - resid.mean(0, keepdim=True) - resid.mean(1, keepdim=True) + resid.mean()
    assert resid.abs().max() < 1e-3


def test_sinkhorn_runs_in_float32_under_bf16_autocast():
    s = _scores(16, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = sinkhorn(s.bfloat16(), 0.05, 3)
    assert q.dtype == torch.float32
    torch.testing.assert_close(q, sinkhorn(s.bfloat16().float(), 0.05, 3))


def test_swav_loss_matches_a_loop_and_codes_get_no_gradient():
    torch.manual_seed(3)
    scores = [torch.randn(4, 5, requires_grad=True) for _ in range(4)]  # 2 global views + 2 small crops
    codes = [torch.softmax(torch.randn(4, 5), 1).requires_grad_() for _ in range(2)]
    t = 0.1
    expected = 0.0
    for i in range(2):
        for v in range(4):
            if v == i:
                continue
            for n in range(4):
                logp = scores[v][n] / t - torch.logsumexp(scores[v][n] / t, 0)
                expected += -(codes[i][n] * logp).sum().item() / 4 / 3 / 2
    loss = swav_loss(scores, codes, t)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert all(c.grad is None for c in codes) and all(s.grad.abs().sum() > 0 for s in scores)


def test_deepcluster_loss_hand_values_and_missing_targets():
    # two samples, K = 2, scores chosen so that softmax(s / t) is known: logits (log 3, 0) -> p = (3/4, 1/4)
    t = 0.5
    s = torch.tensor([[math.log(3) * t, 0.0], [math.log(3) * t, 0.0]], requires_grad=True)
    a = torch.tensor([0, 1])
    expected = (-math.log(3 / 4) - math.log(1 / 4)) / 2
    assert deepcluster_loss([s, s], a, t).item() == pytest.approx(expected, rel=1e-6)
    # a sample without an assignment (-1) is left out
    assert deepcluster_loss([s], torch.tensor([0, -1]), t).item() == pytest.approx(-math.log(3 / 4), rel=1e-6)
    none = deepcluster_loss([s], torch.tensor([-1, -1]), t)
    assert none.item() == 0.0 and none.requires_grad
    none.backward()
    assert s.grad.abs().sum() == 0


def test_spherical_kmeans_agrees_with_sklearn_on_separable_data():
    """Same data, same k, same initial centroids: the same partition as scikit-learn's (Euclidean)
    KMeans on the normalised points, both from one sample per true cluster (both recover the truth)
    and from random samples (where both may settle in the same local optimum); and from our own
    random initialisation, a partition of 5 non-empty clusters of unit-norm centroids."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(5, 16, generator=g), dim=1)
    truth = torch.arange(200) % 5
    x = F.normalize(centres[truth] + 0.05 * torch.randn(200, 16, generator=g), dim=1) * (1 + torch.rand(200, 1, generator=g))
    xn = F.normalize(x, dim=1)
    for init in (xn[:5], xn[torch.randperm(200, generator=g)[:5]]):
        _, ours = spherical_kmeans(x, 5, 10, init=init)
        theirs = KMeans(5, init=init.numpy(), n_init=1, max_iter=10).fit_predict(xn.numpy())
        assert adjusted_rand_score(theirs, ours.numpy()) == 1.0
    _, ours = spherical_kmeans(x, 5, 10, init=xn[:5])
    assert adjusted_rand_score(truth.numpy(), ours.numpy()) == 1.0
    centroids, ours = spherical_kmeans(x, 5, 10, torch.Generator().manual_seed(1))
    assert ours.unique().numel() == 5
    torch.testing.assert_close(centroids.norm(dim=1), torch.ones(5))


def test_nearest_neighbour_is_the_true_one():
    torch.manual_seed(4)
    z, support = torch.randn(6, 8), torch.randn(50, 8) * torch.rand(50, 1) * 10  # norms must not matter
    nn = nearest_neighbours(z, support)
    for i in range(6):
        best = max(range(50), key=lambda j: _cos(z[i], support[j]))
        torch.testing.assert_close(nn[i], F.normalize(support[best], dim=0))


def test_lab_channel_split_reconstructs_the_image():
    from kornia.color import lab_to_rgb

    rgb = torch.rand(2, 3, 8, 8)
    lab = rgb_to_normalized_lab(rgb)
    l_view, ab_view = lab[:, list(VIEW_CHANNELS["L"])], lab[:, list(VIEW_CHANNELS["ab"])]
    assert l_view.shape[1] == 1 and ab_view.shape[1] == 2
    joined = torch.cat([l_view, ab_view], 1)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (LAB_MEAN, LAB_STD))
    torch.testing.assert_close(lab_to_rgb(joined * std + mean), rgb, atol=1e-4, rtol=0)
    assert lab.abs().max() <= 1.01  # the normalisation maps Lab to about [-1, 1]


def test_memory_bank_resizes_to_what_it_loads():
    bank = MemoryBank(num_views=2, dim=3, num_heads=2)
    bank.resize_(10)
    bank.update(torch.tensor([1, 7]), [torch.ones(2, 3), 2 * torch.ones(2, 3)])
    bank.assignments[1, 7] = 4
    fresh = MemoryBank(num_views=2, dim=3, num_heads=2)  # size 0, as a model built before setup
    fresh.load_state_dict(bank.state_dict())
    assert fresh.filled.nonzero().flatten().tolist() == [1, 7]
    torch.testing.assert_close(fresh.embeddings[1, 7], 2 * torch.ones(3))
    assert fresh.assignments[1, 7] == 4 and fresh.assignments[0, 7] == -1


@pytest.mark.parametrize("name, kwargs", [("tiny_cnn", {"width": 4}), ("resnet18", {"cifar_stem": True}),
                                          ("resnet18", {})])
def test_backbones_take_the_number_of_input_channels(name, kwargs):
    default, _ = build_backbone(name, **kwargs)
    first = next(m for m in default.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 3
    for c in (1, 2):
        model, dim = build_backbone(name, in_chans=c, **kwargs)
        assert model.eval()(torch.randn(1, c, 32, 32)).shape == (1, dim)
    with pytest.raises(ValueError, match="in_chans must be a positive int"):
        build_backbone(name, in_chans=0, **kwargs)
