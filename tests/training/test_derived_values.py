"""Values derived from more than one config section (the build layer, ``ssl_bench/build.py``): the
learning rate the optimiser actually uses follows the global batch, ``run.seed`` varies the training
order while data-defining subsets stay fixed, and the derived values are recorded with the run."""
import json
import math
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch

from ssl_bench.cli import main
from ssl_bench.config import apply_overrides, load_config
from ssl_bench.methods import SimCLR
from ssl_bench.pretrain import pretrain
from helpers import QUIET

BASE_LR = 0.1  # configs/digits/simclr.yaml, at the reference batch of 256


class FirstStep(pl.Callback):
    """Records what the first optimiser step uses: the optimiser's lr and the batch's sample indices."""

    def __init__(self) -> None:
        self.lr: float | None = None
        self.indices: list[int] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.lr is None:
            self.lr = trainer.optimizers[0].param_groups[0]["lr"]
            self.indices = batch[2].tolist()


class IndexedSimCLR(SimCLR):
    """SimCLR that asks for the sample indices of its batches (so a test can read the order)."""

    needs_sample_indices = True


def _run(repo, tmp_path, name, *extra) -> tuple[FirstStep, dict]:
    cfg = apply_overrides(load_config(repo / "configs/digits/simclr.yaml"),
                          ["--model", "test_derived_values.IndexedSimCLR", "--model.warmup_epochs", "0",
                           "--trainer.max_steps", "1", "--run.dir", str(tmp_path), "--run.name", name, *QUIET, *extra])
    probe = FirstStep()
    cfg["trainer"]["callbacks"] = [probe]
    return probe, pretrain(cfg)


@pytest.mark.parametrize("rule, batch, factor", [("linear", 64, 0.25), ("linear", 512, 2.0),
                                                 ("sqrt", 64, 0.5), ("sqrt", 512, math.sqrt(2)),
                                                 ("none", 512, 1.0)])
def test_optimiser_lr_follows_the_global_batch(repo, tmp_path, rule, batch, factor):
    """The lr of the first step (no warm-up: the peak) is the base lr scaled from 256 to the batch."""
    probe, summary = _run(repo, tmp_path, f"{rule}{batch}", "--data.batch_size", str(batch),
                          "--model.lr_scaling", rule)
    assert probe.lr == pytest.approx(BASE_LR * factor, rel=1e-9)
    assert summary["lr"] == pytest.approx(probe.lr, rel=1e-9)
    assert summary["derived"]["global_batch_size"] == batch
    written = (tmp_path / f"{rule}{batch}/config.yaml").read_text()
    assert "derived:" in written and f"global_batch_size: {batch}" in written


def test_two_processes_use_the_global_batch(repo, tmp_path):
    """2 CPU processes x 64 images: the optimiser's logged lr is that of a global batch of 128."""
    proc = subprocess.run([sys.executable, "-m", "ssl_bench.cli", "pretrain", "--config",
                           str(repo / "configs/digits/simclr.yaml"), "--run.dir", str(tmp_path), "--run.name", "ddp",
                           "--data.batch_size", "64", "--model.warmup_epochs", "0", "--trainer.max_steps", "2",
                           "--trainer.log_every_n_steps", "1", "--trainer.devices", "2", "--trainer.strategy", "ddp",
                           *QUIET], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = (tmp_path / "ddp/metrics.csv").read_text().splitlines()
    lr_col = rows[0].split(",").index("lr")
    first_lr = next(float(r.split(",")[lr_col]) for r in rows[1:] if r.split(",")[lr_col])
    assert first_lr == pytest.approx(BASE_LR * 128 / 256, rel=1e-6)
    summary = json.loads((tmp_path / "ddp/summary.json").read_text())
    assert summary["derived"]["global_batch_size"] == 128 and summary["derived"]["world_size"] == 2


def test_run_seed_varies_the_training_order_and_keeps_the_subsets(repo, tmp_path):
    subset = ["--data.train_subset", "600"]
    a, _ = _run(repo, tmp_path, "s0", "--run.seed", "0", *subset)
    again, _ = _run(repo, tmp_path, "s0-again", "--run.seed", "0", *subset)
    b, summary = _run(repo, tmp_path, "s1", "--run.seed", "1", *subset)
    assert a.indices == again.indices
    assert a.indices != b.indices
    assert summary["derived"]["train_order_seed"] == 1
    # data.seed defines the subset: the same 600 training images under both run seeds
    from ssl_bench.build import build_datamodule
    data = load_config(repo / "configs/digits/simclr.yaml")["data"]
    labels = [build_datamodule({**data, "train_subset": 600}, seed=s).source.train.labels for s in (0, 1)]
    assert torch.equal(labels[0], labels[1])


def test_label_fraction_subset_is_the_same_under_both_seeds(repo, tmp_path, capsys):
    digests = []
    for seed in (0, 1):
        assert main(["eval", "--random-init", "--config", str(repo / "configs/digits/simclr.yaml"), "--protocol",
                     "knn", "--label-fraction", "0.1", "--run.dir", str(tmp_path), "--run.seed", str(seed)]) == 0
        path = capsys.readouterr().out.strip().rsplit("-> ", 1)[1]
        result = json.loads(open(path).read())
        assert result["label_seed"] == 0  # data.seed
        digests.append(result["labelled_digest"])
    assert digests[0] is not None and digests[0] == digests[1]


def test_print_config_shows_the_derived_values(repo, capsys):
    assert main(["pretrain", "--config", str(repo / "configs/digits/simclr.yaml"), "--print-config",
                 "--data.batch_size", "64"]) == 0
    out = capsys.readouterr().out
    assert "derived:" in out and "global_batch_size: 64" in out and "lr: 0.025" in out


def test_order_seed_is_not_a_data_key(repo, tmp_path, capsys):
    assert main(["pretrain", "--config", str(repo / "configs/digits/simclr.yaml"), "--data.order_seed", "3",
                 "--run.dir", str(tmp_path)]) == 2
    assert "run.seed" in capsys.readouterr().err


class ScheduleRecorder(pl.Callback):
    """What each optimiser step and EMA update use: the lr and weight decay in the optimiser's groups
    just before the step, and the EMA coefficient implied by the teacher's change
    (t_new = tau t_old + (1 - tau) s  =>  tau = (t_new - s) / (t_old - s))."""

    def __init__(self) -> None:
        self.lr: list[float] = []
        self.decay: list[float] = []
        self.no_decay: list[float] = []
        self.tau: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        decayed, excluded = optimizer.param_groups[0], optimizer.param_groups[1]
        self.lr.append(decayed["lr"])
        self.decay.append(decayed["weight_decay"])
        self.no_decay.append(excluded["weight_decay"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # before the module's EMA hook
        online, teacher = pl_module.momentum_pairs[0]
        self._pair = (next(online.parameters()).detach().clone(), next(teacher.parameters()).detach().clone())
        self._teacher = next(teacher.parameters())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if hasattr(self, "_pair"):
            s, t_old = self._pair
            i = (t_old - s).abs().argmax()
            self.tau.append(float(((self._teacher.detach() - s).flatten()[i] / (t_old - s).flatten()[i])))


def test_warmup_start_weight_decay_ramp_and_linear_ema_reach_the_optimiser(repo, tmp_path):
    """I-JEPA's schedules (Assran et al. 2023, Appendix C) as the optimiser and the EMA see them:
    warm-up from 0.1 of the peak lr, weight decay 0.04 -> 0.4 by a half-cosine on the decayed group
    only, and an EMA coefficient rising linearly (equal increments) from base_tau."""
    steps = 12
    cfg = apply_overrides(load_config(repo / "configs/digits/byol.yaml"),
                          ["--model.optimizer", "adamw", "--model.lr", "1e-3", "--model.reference_batch_size", "128",
                           "--model.warmup_epochs", "0.5", "--model.warmup_start_factor", "0.1",
                           "--model.weight_decay", "0.04", "--model.final_weight_decay", "0.4",
                           "--model.base_tau", "0.9", "--model.final_tau", "1.0", "--model.tau_schedule", "linear",
                           "--trainer.max_steps", str(steps), "--run.dir", str(tmp_path), *QUIET])
    rec = ScheduleRecorder()
    cfg["trainer"]["callbacks"] = [rec]
    summary = pretrain(cfg)
    warmup = summary["derived"]["warmup_steps"]
    assert summary["derived"]["total_steps"] == steps and 2 <= warmup < steps - 2
    assert len(rec.lr) == steps
    assert rec.lr[0] == pytest.approx(1e-3 * (0.1 + 0.9 / warmup))  # starts near 0.1 of the peak, not near 0
    assert rec.lr[warmup - 1] == pytest.approx(1e-3) and all(a < b for a, b in zip(rec.lr[:warmup], rec.lr[1:warmup]))
    assert rec.decay[0] == pytest.approx(0.04)
    assert rec.decay[steps // 2] == pytest.approx(0.22)  # half-way up a half-cosine: the midpoint
    assert all(a < b for a, b in zip(rec.decay, rec.decay[1:])) and rec.decay[-1] < 0.4
    assert rec.decay[-1] == pytest.approx(0.04 + 0.36 * (1 - math.cos(math.pi * (steps - 1) / steps)) / 2)
    assert rec.no_decay == [0.0] * steps
    increments = [b - a for a, b in zip(rec.tau, rec.tau[1:])]
    assert rec.tau[0] == pytest.approx(0.9 + 0.1 / steps, abs=1e-4)  # the EMA after step 1 uses tau(1)
    assert increments == pytest.approx([0.1 / steps] * len(increments), abs=1e-4)
