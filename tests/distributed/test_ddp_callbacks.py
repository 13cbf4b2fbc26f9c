"""1 process vs 2 processes (gloo, CPU) for what every method reports: the online linear probe (its
weights after several steps and its val accuracy) and the collapse monitor's statistics must not
depend on the number of processes. Each rank gets its share of the global batch (training) or its
padded contiguous block of the val split (``ContiguousEvalSampler``), as in a DDP run."""
from types import SimpleNamespace

import torch

from ddp_harness import run_on_ranks
from ssl_bench import distributed
from ssl_bench.callbacks import CollapseMonitor, OnlineLinearProbe
from ssl_bench.data.samplers import ContiguousEvalSampler

DIM, CLASSES, BATCH, STEPS, VAL = 16, 5, 12, 6, 37  # VAL is odd: the last rank's block is padded


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"feats": torch.randn(STEPS, BATCH, DIM, generator=g),
            "labels": torch.randint(0, CLASSES, (STEPS, BATCH), generator=g),
            "val_feats": torch.randn(VAL, DIM, generator=g),
            "val_labels": torch.randint(0, CLASSES, (VAL,), generator=g),
            "z1": torch.randn(STEPS, BATCH, DIM, generator=g), "z2": torch.randn(STEPS, BATCH, DIM, generator=g)}


def _module(logged: dict[str, float]) -> SimpleNamespace:
    return SimpleNamespace(device=torch.device("cpu"),
                           log=lambda name, value, **kw: logged.__setitem__(name, float(value)))


def _report(data: dict[str, torch.Tensor]) -> dict[str, object]:
    """This rank's probe weights and everything the probe and the monitor log."""
    w, r = distributed.world_size(), distributed.rank()
    torch.manual_seed(0)  # the probe starts from the same weights on every rank
    probe = OnlineLinearProbe(DIM, CLASSES, lr=0.5, total_steps=STEPS)
    monitor = CollapseMonitor(every_n_steps=STEPS, buffer_size=64)
    logged: dict[str, float] = {}
    module = _module(logged)
    for step in range(STEPS):
        trainer = SimpleNamespace(global_step=step, log_every_n_steps=1000)
        share = slice(r * BATCH // w, (r + 1) * BATCH // w)
        probe.on_train_batch_end(trainer, module, {"feats": data["feats"][step, share],
                                                   "labels": data["labels"][step, share]}, None, step)
        monitor.on_train_batch_end(SimpleNamespace(global_step=step + 1), module,
                                   {"z": [data["z1"][step, share], data["z2"][step, share]], "er": None}, None, step)
    block = list(ContiguousEvalSampler(VAL, w, r))
    val_trainer = SimpleNamespace(sanity_checking=False, val_dataloaders=[SimpleNamespace(dataset=range(VAL))])
    probe.on_validation_epoch_start(val_trainer, module)
    for lo in range(0, len(block), 8):  # a few validation batches
        idx = block[lo:lo + 8]
        probe.on_validation_batch_end(val_trainer, module, {"feats": data["val_feats"][idx],
                                                            "labels": data["val_labels"][idx]}, None, lo)
    probe.on_validation_epoch_end(val_trainer, module)
    return {"weight": probe.probe.weight.detach().clone(), "logged": logged}


def test_probe_and_monitor_equal_on_one_and_two_processes():
    data = _data()
    single = _report(data)
    expected = {"val_linear_top1", "val_linear_top5", "rankme", "z_std", "entropy", "reconstruction"}
    assert expected <= set(single["logged"])
    for rank_report in run_on_ranks(_report, 2, data):
        torch.testing.assert_close(rank_report["weight"], single["weight"], rtol=1e-5, atol=1e-6)
        assert rank_report["logged"].keys() == single["logged"].keys()
        for name, value in single["logged"].items():
            assert abs(rank_report["logged"][name] - value) <= 1e-4 * max(1.0, abs(value)), name
