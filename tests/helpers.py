"""What several test modules share (a helper module, not a test): the repository paths, the quiet
trainer settings, tiny model arguments, the digits CLI arguments, a sweep spec and the resume helpers.

Test modules import from here (``from helpers import QUIET``), never from one another
(tests/test_tests_layout.py checks it); ``tests/`` is on ``sys.path`` through tests/conftest.py.
Helpers the benchmarks use too live under benchmarks/ (``learning_configs``, ``scan_paws_runs``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # CLI arguments
QUIET_OVERRIDES = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}  # a sweep's overrides


def tiny_model(width: int = 4, **settings: Any) -> dict[str, Any]:
    """Constructor arguments of a method on a ``tiny_cnn`` of ``width`` with the online evaluations
    off (k-NN, linear probe, collapse monitor); ``settings`` add or replace arguments."""
    return {"backbone": "tiny_cnn", "backbone_kwargs": {"width": width}, "linear_probe": False, "knn": False,
            "collapse_monitor": False, **settings}


def digits_args(repo: Path, run_dir: Path, method: str = "simclr", *extra: str) -> list[str]:
    """``ssl-bench pretrain`` arguments: ``configs/digits/<method>.yaml`` for one quiet epoch in ``run_dir``."""
    return ["pretrain", "--config", str(repo / f"configs/digits/{method}.yaml"), "--run.dir", str(run_dir),
            "--trainer.max_epochs", "1", *QUIET, *extra]


def pythonpath(*folders: Path) -> dict[str, str]:
    """The environment with ``folders`` and ``tests/`` first on ``PYTHONPATH``: a subprocess that
    imports a test module by name (``--model test_x.Class``) also imports this module."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [*map(str, folders), str(TESTS),
                                                                      os.environ.get("PYTHONPATH")]))}


class StopAfterEpochs(pl.Callback):
    """Simulates an interrupted run: stops cleanly after ``n`` epochs (the checkpoint is written)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 >= self.n:
            trainer.should_stop = True


def load_ckpt(path) -> dict:
    """A checkpoint file's contents (plain tensors only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def straight_and_resumed(config, tmp_path: Path) -> tuple[dict, dict, dict]:
    """Train ``config(run_dir, *extra_args)`` (a 2-epoch run named ``r``) straight through, and again
    stopped after epoch 1 and resumed with ``--run.resume auto``: (the straight run's last checkpoint,
    the resumed run's, the interrupted run's state dict at epoch 1)."""
    from ssl_bench.pretrain import pretrain

    pretrain(config(tmp_path / "straight"))
    interrupted = config(tmp_path / "resumed")
    interrupted["trainer"]["callbacks"] = [StopAfterEpochs(1)]
    assert pretrain(interrupted)["epochs"] == 1
    first = load_ckpt(tmp_path / "resumed/r/checkpoints/last.ckpt")["state_dict"]
    pretrain(config(tmp_path / "resumed", "--run.resume", "auto"))
    return (load_ckpt(tmp_path / "straight/r/checkpoints/last.ckpt"),
            load_ckpt(tmp_path / "resumed/r/checkpoints/last.ckpt"), first)


def assert_same_weights(expected: dict, got: dict) -> None:
    """Every tensor of checkpoint ``expected``'s state dict equals ``got``'s, bit for bit (a resumed
    run against the one never stopped)."""
    for key, value in expected["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][key], value, rtol=0, atol=0, msg=key)


def digits_resume_is_exact(method: str, tmp_path: Path) -> tuple[dict, dict]:
    """``configs/digits/<method>.yaml`` on 256 images (batch 64, no probe, k-NN or monitor) for 2
    epochs straight, and stopped after epoch 1 then resumed: asserts both end at step 8 with the
    same state dict and AdamW moments, bit for bit, and returns (the final state dict, the state dict at epoch 1) for
    the caller's checks of what moved."""
    from ssl_bench.config import apply_overrides, load_config

    fast = ["--data.train_subset", "256", "--data.batch_size", "64", "--model.knn", "false",
            "--model.linear_probe", "false", "--model.collapse_monitor", "false"]

    def config(run_dir: Path, *more: str) -> dict:
        return apply_overrides(load_config(REPO / f"configs/digits/{method}.yaml"),
                               ["--run.dir", str(run_dir), "--run.name", "r", "--trainer.max_epochs", "2",
                                "--trainer.deterministic", "true", *QUIET, *fast, *more])

    straight, resumed, first = straight_and_resumed(config, tmp_path)
    assert resumed["global_step"] == straight["global_step"] == 8
    state = straight["state_dict"]
    assert set(resumed["state_dict"]) == set(state)
    assert_same_weights(straight, resumed)
    opt_a, opt_b = straight["optimizer_states"][0]["state"], resumed["optimizer_states"][0]["state"]
    assert opt_a.keys() == opt_b.keys()
    for i in opt_a:  # AdamW's moments
        torch.testing.assert_close(opt_b[i]["exp_avg"], opt_a[i]["exp_avg"], rtol=0, atol=0)
    return state, first


def write_spec(folder: Path, name: str, **fields: Any) -> Path:
    """A sweep spec ``folder/<name>.yaml`` on digits, one quiet epoch per cell, no random-init
    baseline; ``fields`` add or replace spec keys."""
    spec = {"name": name, "datasets": ["digits"], "config": "configs/{dataset}/{method}.yaml",
            "overrides": {"trainer.max_epochs": 1, **QUIET_OVERRIDES}, "baseline": False, **fields}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
