"""Method zoo part 1 in training: the opt-in sample-index batch contract, CMC with three views, SwAV's
frozen prototypes and late queue, DeepCluster v2's clustering, and one-line config errors."""
import copy

import pytest
import pytorch_lightning as pl
import torch

from ssl_bench.cli import main
from ssl_bench.data import SSLDataModule
from ssl_bench.methods import CMC, DeepClusterV2, SimCLR, SwAV
from ssl_bench.build import schedule_model
from helpers import digits_args, tiny_model

TINY = tiny_model(4, proj_hidden_dim=16, proj_dim=8, warmup_epochs=0)


class Batches(pl.Callback):
    """Keeps every training batch as the model received it."""

    def __init__(self) -> None:
        self.seen: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(batch)


def fit(model, steps: int = 2, pipeline: str = "batched", epochs: int = 1, augment=None, callbacks=()) -> SSLDataModule:
    dm = SSLDataModule("digits", batch_size=32, num_workers=0, pipeline=pipeline, train_subset=128,
                       augment=augment or {"name": "simclr", "crop_scale": [0.5, 1.0]})
    trainer = pl.Trainer(max_epochs=epochs, limit_train_batches=steps, limit_val_batches=0, accelerator="cpu",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, use_distributed_sampler=False, callbacks=list(callbacks))
    schedule_model(model, dm, trainer)
    trainer.fit(model, datamodule=dm)
    return dm


@pytest.mark.parametrize("pipeline", ["batched", "per_image"])
def test_sample_indices_only_for_methods_that_ask(pipeline):
    torch.manual_seed(0)
    asks, plain = Batches(), Batches()
    dm = fit(DeepClusterV2(num_prototypes=[4], **TINY), pipeline=pipeline, callbacks=[asks])
    fit(SimCLR(**TINY), pipeline=pipeline, callbacks=[plain])
    labels = dm.source.train.labels
    for views, y, idx in asks.seen:  # (views, labels, indices): the labels are those of the indexed samples
        assert idx.dtype == torch.long and len(views) == 2 and torch.equal(y, labels[idx])
    assert all(len(batch) == 2 for batch in plain.seen)


def test_cmc_trains_with_three_views():
    torch.manual_seed(0)
    model = CMC(views=["L", "a", "b"], graph="core_view", queue_size=128, **TINY)
    assert [enc[0][0].in_channels for enc in model.backbone.encoders] == [1, 1, 1]
    assert model.feature_dim == 3 * 16
    before = copy.deepcopy(model.backbone.state_dict())
    fit(model, steps=3)
    for v in range(3):  # every view's encoder learnt
        key = f"encoders.{v}.0.0.weight"
        assert not torch.equal(before[key], model.backbone.state_dict()[key])
    assert len(model.queues[2]) == 3 * 32
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 48)  # evaluation: all encoders, concatenated


def test_swav_prototypes_frozen_then_trained_and_queue_starts_late():
    torch.manual_seed(0)
    model = SwAV(num_prototypes=6, queue_size=64, queue_start_epoch=1, freeze_prototypes_steps=2, **TINY)
    model.normalize_prototypes()
    start = model.prototypes.weight.detach().clone()
    snapshots: list = []

    class Watch(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            snapshots.append((pl_module.prototypes.weight.detach().clone(), len(pl_module.queues[0])))

    fit(model, steps=2, epochs=2, callbacks=[Watch()],
        augment={"name": "simclr", "num_small_crops": 2, "small_crop_size": 8})
    # steps 0-1: no gradient step on the prototypes (only the per-step re-normalisation, last-bit changes)
    torch.testing.assert_close(snapshots[1][0], start, rtol=0, atol=1e-6)
    assert (snapshots[3][0] - start).abs().max() > 1e-3  # step 3: they learn
    assert [n for _, n in snapshots] == [0, 0, 32, 64]  # the queue fills from epoch 1 only


def test_deepcluster_prototypes_are_the_centroids_of_the_bank():
    torch.manual_seed(0)
    model = DeepClusterV2(num_prototypes=[5, 3], **TINY)
    fit(model, steps=4, epochs=1)
    bank = model.memory
    assert bank.filled.sum() == 4 * 32 and (bank.assignments == -1).all()  # epoch 0: the filling pass
    model.cluster_memory(seed=0)
    for h, k in enumerate((5, 3)):
        emb = bank.embeddings[h % 2, bank.filled]
        centroids = model.prototypes[h].weight
        torch.testing.assert_close(centroids.norm(dim=1), torch.ones(k))
        torch.testing.assert_close(bank.assignments[h, bank.filled], (emb @ centroids.T).argmax(1))
    assert (bank.assignments[:, ~bank.filled] == -1).all()


@pytest.mark.parametrize("method, extra, message", [
    ("cmc", ["--model.views", "[L, xyz]"], "model.views must name >= 2 views from L, ab, a, b, Lab"),
    ("cmc", ["--model.graph", "star"], "model.graph must be one of core_view, full_graph"),
    ("moco_v2plus", ["--model.queue_size", "0"], "model.queue_size must be >= 1"),
    ("deepcluster_v2", ["--model.num_prototypes", "[5000]"], "exceeds the"),
])
def test_bad_zoo_settings_are_one_line(repo, tmp_path, capsys, method, extra, message):
    args = digits_args(repo, tmp_path, method, *extra)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssl-bench: error:") and message in err and "\n" not in err
