"""PAWS: sharpening, soft-NN classifier and me-max against hand computations; the support sampler;
the labelled subset; 1-process vs 2-process equality of the method's loss; bad input."""
import math

import pytest
import torch

from ddp_harness import run_on_ranks
from ssl_bench import distributed, losses
from ssl_bench.data.labelled import SupportSampler, labelled_indices
from ssl_bench.data.sources import stratified_subset
from ssl_bench.errors import ConfigError
from ssl_bench.data.label_subset import balanced_label_subset
from ssl_bench.methods import PAWS


def test_sharpen_by_hand():
    p = torch.tensor([[0.5, 0.3, 0.2]])
    # T = 0.25: p^4 = 0.0625, 0.0081, 0.0016; sum 0.0722
    expected = torch.tensor([[0.0625, 0.0081, 0.0016]]) / 0.0722
    torch.testing.assert_close(losses.sharpen(p, 0.25), expected)
    torch.testing.assert_close(losses.sharpen(p, 1.0), p)
    with pytest.raises(ValueError, match="temperature"):
        losses.sharpen(p, 0.0)


def test_soft_nearest_neighbour_by_hand():
    z = torch.tensor([[1.0, 0.0]])
    support = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])   # cosines 1, 0, -1
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    tau = 0.5
    w = [math.exp(1 / tau), math.exp(0.0), math.exp(-1 / tau)]
    expected = torch.tensor([[w[0] / sum(w), (w[1] + w[2]) / sum(w)]])
    torch.testing.assert_close(losses.snn_predict(z, support, labels, tau), expected)
    torch.testing.assert_close(losses.smooth_one_hot(torch.tensor([1]), 4, 0.1), torch.tensor([[0.025, 0.925, 0.025, 0.025]]))


def test_me_max_by_hand():
    p = torch.tensor([0.5, 0.25, 0.25])
    assert float(losses.me_max(p)) == pytest.approx(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert float(losses.me_max(torch.full((4,), 0.25))) == pytest.approx(-math.log(4))  # the minimum


def test_paws_loss_by_hand():
    p1 = torch.tensor([[0.7, 0.3]])
    p2 = torch.tensor([[0.4, 0.6]])
    small = torch.tensor([[0.5, 0.5]])
    t1, t2 = losses.sharpen(p1, 0.25), losses.sharpen(p2, 0.25)
    ce = lambda t, p: -float((t * p.log()).sum())  # noqa: E731
    expected = (ce(t2, p1) + ce(t1, p2) + ce((t1 + t2) / 2, small)) / 3
    assert float(losses.paws_loss([p1, p2, small], 0.25)) == pytest.approx(expected, rel=1e-5)
    mean = torch.tensor([0.6, 0.4])
    assert float(losses.paws_loss([p1, p2], 0.25, mean)) == pytest.approx(
        (ce(t2, p1) + ce(t1, p2)) / 2 + 0.6 * math.log(0.6) + 0.4 * math.log(0.4), rel=1e-5)


def test_support_sampler_is_class_balanced_and_stays_in_the_labelled_subset():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(1000) % 10
    subset = labelled_indices(labels, fraction=0.1, seed=3)
    assert len(subset) == 100 and torch.bincount(labels[subset]).tolist() == [10] * 10
    torch.testing.assert_close(subset, labelled_indices(labels, fraction=0.1, seed=3))
    sampler = SupportSampler(labels[subset], per_class=4, generator=gen)
    seen = set()
    for _ in range(50):
        pos = sampler()
        assert torch.bincount(labels[subset][pos], minlength=10).tolist() == [4] * 10
        assert len(pos.unique()) == len(pos)
        seen |= set(subset[pos].tolist())
    assert seen <= set(subset.tolist()) and len(seen) == 100   # only labelled images, all of them in time
    with pytest.raises(ConfigError, match="support_per_class"):
        SupportSampler(labels[subset], per_class=11, generator=gen)


def test_labelled_subset_is_the_few_label_evaluation_subset():
    """PAWS's labelled images are those ``ssl-bench eval --label-fraction`` takes (same fraction and
    seed): equal counts per class even on imbalanced labels; on balanced labels they are also the
    class-stratified subset of the same size that PAWS drew before the two were one function (so
    the measured PAWS numbers in benchmarks/RESULTS.md still hold)."""
    gen = torch.Generator().manual_seed(0)
    imbalanced = torch.cat([torch.full((n,), c) for c, n in enumerate([50, 60, 70, 80])])[torch.randperm(260, generator=gen)]
    balanced = (torch.arange(4000) % 10)[torch.randperm(4000, generator=gen)]
    for labels in (imbalanced, balanced):
        for seed in range(3):
            assert torch.equal(labelled_indices(labels, fraction=0.1, seed=seed), balanced_label_subset(labels, 0.1, seed))
    assert torch.bincount(imbalanced[labelled_indices(imbalanced, fraction=0.1)]).tolist() == [6, 6, 6, 6]
    for seed in range(3):
        assert torch.equal(labelled_indices(balanced, fraction=0.1, seed=seed), stratified_subset(balanced, 400, seed))


def test_label_index_file(tmp_path):
    labels = torch.arange(20) % 2
    f = tmp_path / "idx.txt"
    f.write_text("3, 1\n7 8\n")
    assert labelled_indices(labels, index_file=str(f)).tolist() == [1, 3, 7, 8]
    f.write_text("[8, 3, 1]")
    assert labelled_indices(labels, index_file=str(f)).tolist() == [1, 3, 8]
    f.write_text("1 3 1")
    with pytest.raises(ConfigError, match="model.label_indices: .* repeats indices"):
        labelled_indices(labels, index_file=str(f))
    f.write_text("1 x")
    with pytest.raises(ConfigError, match="JSON list or integers"):
        labelled_indices(labels, index_file=str(f))
    f.write_text("1 25")
    with pytest.raises(ConfigError, match="0..19"):
        labelled_indices(labels, index_file=str(f))
    with pytest.raises(ConfigError, match="not found"):
        labelled_indices(labels, index_file=str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match="exactly one"):
        labelled_indices(labels)
    with pytest.raises(ConfigError, match="label_fraction"):
        labelled_indices(labels, fraction=1.5)


def _model(**kw) -> PAWS:
    torch.manual_seed(0)
    args = dict(backbone="tiny_cnn", backbone_kwargs={"width": 4}, proj_hidden_dim=16, proj_dim=8, proj_layers=2,
                num_classes=3, label_fraction=0.5, support_per_class=2)
    return PAWS(**{**args, **kw})


def _paws_loss_on_rank(feats, support_feats, support_labels):
    """Rank r holds its half of the unlabelled batch and its half of the support batch."""
    model = _model().eval()  # BN on running statistics: per-rank BN batches are not what is tested here
    r, w = distributed.rank(), distributed.world_size()
    local = [f.chunk(w)[r] for f in feats]
    local_support = [f.chunk(w)[r] for f in support_feats]
    loss = model.ssl_loss(local, local_support, support_labels.chunk(w)[r])["loss"]
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.projector.parameters()])
    return {"loss": loss.detach(), "grad": grad}


def test_two_ranks_give_the_single_process_loss():
    gen = torch.Generator().manual_seed(1)
    feats = [torch.randn(8, 16, generator=gen) for _ in range(3)]            # 2 global views + 1 small crop
    support_feats = [torch.randn(6, 16, generator=gen) for _ in range(2)]    # 2 support views
    support_labels = torch.tensor([0, 1, 2, 0, 1, 2])
    # one process: rank-major order of the support matches the gathered one
    single = _paws_loss_on_rank(feats, support_feats, support_labels)
    per_rank = run_on_ranks(_paws_loss_on_rank, 2, feats, support_feats, support_labels)
    # DDP averages the ranks' losses and gradients
    torch.testing.assert_close((per_rank[0]["loss"] + per_rank[1]["loss"]) / 2, single["loss"])
    torch.testing.assert_close((per_rank[0]["grad"] + per_rank[1]["grad"]) / 2, single["grad"], rtol=1e-4, atol=1e-6)


def test_support_batch_and_generator_state_round_trip():
    from ssl_bench.data.recipes import build_recipe

    images = torch.randint(0, 255, (12, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(12) % 3
    recipe = build_recipe({"name": "simclr"}, 8, (0.5,) * 3, (0.25,) * 3)
    model = _model()
    model.set_labelled(images, labels, recipe.views, lambda x: x.float() / 255)
    views, y = model.support_batch(torch.device("cpu"))
    assert len(views) == 2 and views[0].shape == (6, 3, 8, 8) and torch.bincount(y).tolist() == [2, 2, 2]
    ckpt: dict = {}
    model.on_save_checkpoint(ckpt)
    expected = model.sampler()
    resumed = _model()
    resumed.on_load_checkpoint(ckpt)
    resumed.set_labelled(images, labels, recipe.views, lambda x: x.float() / 255)
    torch.testing.assert_close(resumed.sampler(), expected)


def test_bad_paws_config():
    with pytest.raises(ConfigError, match="exactly one of model.label_fraction"):
        _model(label_fraction=None)
    with pytest.raises(ConfigError, match="support_views"):
        _model(support_views=3)
