"""Clustering metrics (Hungarian accuracy, NMI, ARI) and SCAN's losses against independent computations."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from ssl_bench import losses
from ssl_bench.metrics.clustering import cluster_accuracy, cluster_to_class_map, clustering_metrics


def brute_force_accuracy(pred: np.ndarray, target: np.ndarray, k: int) -> float:
    """Best accuracy over every one-to-one relabelling of k clusters onto k classes."""
    return max(float((np.array(perm)[pred] == target).mean()) for perm in itertools.permutations(range(k)))


def test_permuted_perfect_clustering_has_accuracy_one():
    target = np.random.default_rng(0).integers(0, 6, size=200)
    perm = np.array([3, 5, 0, 1, 4, 2])
    assert cluster_accuracy(perm[target], target) == 1.0
    assert cluster_to_class_map(perm[target], target) == {int(perm[c]): c for c in range(6)}
    metrics = clustering_metrics(perm[target], target)
    assert metrics["acc"] == pytest.approx(100.0) and metrics["nmi"] == pytest.approx(100.0)
    assert metrics["ari"] == pytest.approx(100.0)


@pytest.mark.parametrize("seed", range(8))
def test_hungarian_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    target = rng.integers(0, k, size=40)
    pred = np.where(rng.random(40) < 0.5, target, rng.integers(0, k, size=40))  # partly right, partly noise
    pred = rng.permutation(k)[pred]
    assert cluster_accuracy(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(
        brute_force_accuracy(pred, target, k))


def test_nmi_and_ari_agree_with_scikit_learn_and_a_hand_case():
    rng = np.random.default_rng(1)
    target, pred = rng.integers(0, 5, 300), rng.integers(0, 7, 300)
    m = clustering_metrics(pred, target)
    assert m["nmi"] == pytest.approx(100 * normalized_mutual_info_score(target, pred))
    assert m["ari"] == pytest.approx(100 * adjusted_rand_score(target, pred))
    # hand case: classes {0,0,1,1}, clusters {0,0,0,1}. Contingency [[2,0],[1,1]]:
    # sum C(n_ij,2) = 1, rows C(2,2)+C(2,2) = 2, cols C(3,2)+C(1,2) = 3, C(4,2) = 6, expected = 2*3/6 = 1,
    # max = (2+3)/2 = 2.5 -> ARI = (1 - 1) / (2.5 - 1) = 0
    assert clustering_metrics([0, 0, 0, 1], [0, 0, 1, 1])["ari"] == pytest.approx(0.0, abs=1e-12)
    # NMI (arithmetic mean): H(Y) = log 2, H(C) = H(3/4, 1/4), I = H(Y) - H(Y|C) = log2 - 3/4 H(2/3, 1/3)
    h = lambda *p: -sum(x * math.log(x) for x in p)  # noqa: E731
    mi = math.log(2) - 0.75 * h(2 / 3, 1 / 3)
    nmi = mi / ((math.log(2) + h(0.75, 0.25)) / 2)
    assert clustering_metrics([0, 0, 0, 1], [0, 0, 1, 1])["nmi"] == pytest.approx(100 * nmi)


def test_scan_entropy_term_is_largest_for_uniform_cluster_use():
    c = 5
    uniform = torch.full((8, c), 1 / c)
    assert float(losses.mean_assignment_entropy(uniform)) == pytest.approx(math.log(c))
    one_hot_balanced = F.one_hot(torch.arange(10) % c, c).float()   # every cluster used equally
    assert float(losses.mean_assignment_entropy(one_hot_balanced)) == pytest.approx(math.log(c))
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        probs = torch.rand(8, c, generator=gen).pow(3).softmax(1) if _ % 2 else torch.rand(8, c, generator=gen)
        probs = probs / probs.sum(1, keepdim=True)
        assert float(losses.mean_assignment_entropy(probs)) < math.log(c) + 1e-6
    collapsed = F.one_hot(torch.zeros(8, dtype=torch.long), c).float()
    assert float(losses.mean_assignment_entropy(collapsed)) == pytest.approx(0.0, abs=1e-6)
    # so the SCAN loss (which subtracts it) prefers balanced clusters at equal consistency
    logits_bal = 20 * F.one_hot(torch.arange(10) % c, c).float()
    logits_col = 20 * F.one_hot(torch.zeros(10, dtype=torch.long), c).float()
    assert float(losses.scan_loss(logits_bal, logits_bal)) < float(losses.scan_loss(logits_col, logits_col))


def test_scan_consistency_equals_a_naive_loop():
    gen = torch.Generator().manual_seed(0)
    a, n = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    total = 0.0
    for i in range(6):
        pa = [math.exp(v) for v in a[i].tolist()]
        pn = [math.exp(v) for v in n[i].tolist()]
        dot = sum(x / sum(pa) * y / sum(pn) for x, y in zip(pa, pn))
        total += -math.log(dot)
    assert float(losses.scan_consistency(a, n)) == pytest.approx(total / 6, rel=1e-5)
    mean = a.softmax(1).mean(0)
    entropy = -float((mean * mean.log()).sum())
    assert float(losses.scan_loss(a, n, entropy_weight=5.0)) == pytest.approx(total / 6 - 5.0 * entropy, rel=1e-5)


def test_self_label_loss_uses_only_confident_samples_with_class_weights():
    weak = torch.tensor([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [10.0, 0.0, 0.0], [1.0, 0.9, 0.8]])
    strong = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    # confident: rows 0, 1, 2 (p > 0.99); pseudo-labels 0, 1, 0; weights 1/2, 1/1, 1/2
    ce = [-float(strong.detach()[i].log_softmax(0)[t]) for i, t in zip((0, 1, 2), (0, 1, 0))]
    w = [0.5, 1.0, 0.5]
    expected = sum(wi * ci for wi, ci in zip(w, ce)) / sum(w)
    assert float(losses.self_label_loss(weak, strong, 0.99)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.self_label_loss(weak, strong, 0.99, class_balance=False)) == pytest.approx(sum(ce) / 3, rel=1e-5)
    none = losses.self_label_loss(torch.zeros(4, 3), strong, 0.99)
    none.backward()
    assert float(none) == 0.0
