"""`ssl-bench pretrain` end to end: run directory contents, overrides, one-line errors, exact resume,
divergence handling and a user-defined method loaded by class path."""
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.methods import SimCLR

SUMMARY_KEYS = {"val_knn_top1", "val_linear_top1", "train_loss", "rankme", "z_std", "entropy", "reconstruction"}
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def digits_args(repo, run_dir, method="simclr", *extra):
    return ["pretrain", "--config", str(repo / f"configs/digits/{method}.yaml"), "--run.dir", str(run_dir),
            "--trainer.max_epochs", "1", *QUIET, *extra]


def test_pretrain_subprocess_writes_run_directory(repo, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ssl_bench.cli", *digits_args(repo, tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "metrics.csv", "summary.json", "checkpoints"}
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary) and all(summary[k] is not None for k in SUMMARY_KEYS)
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss_step", "train_loss", "val_knn_top1", "rankme", "epoch", "step"} <= set(header)
    assert "k-NN top-1" in proc.stdout and str(run_dir) in proc.stdout


@pytest.mark.parametrize("extra, message", [
    (["--model", "simclrr"], "unknown method 'simclrr'; known: barlow_twins, byol, simclr, simsiam"),
    (["--model.backbone", "resnet9000"], "unknown backbone 'resnet9000'"),
    (["--data.dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--data.dataset", "cifar10", "--data.root", "/nonexistent"], "cifar10"),
    (["--model.lr", "fast"], "model.lr must be float"),
    (["--trainer.max_epoch", "1"], "unknown key trainer.max_epoch"),
    (["--run.resume", "/nonexistent.ckpt"], "checkpoint not found"),
])
def test_bad_input_is_one_line(repo, tmp_path, capsys, extra, message):
    assert main(digits_args(repo, tmp_path, "simclr", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssl-bench: error:") and message in err and "\n" not in err


def test_missing_config_file(tmp_path, capsys):
    assert main(["pretrain", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def _weights(ckpt_path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize("method", ["byol"])
def test_resume_continues_exactly(repo, tmp_path, method):
    """2 epochs in one go == 1 epoch, stop, resume for the 2nd: same weights, EMA teacher included."""
    common = ["--run.name", "r", "--trainer.deterministic", "true"]
    assert main(digits_args(repo, tmp_path / "straight", method, *common, "--trainer.max_epochs", "2")) == 0
    assert main(digits_args(repo, tmp_path / "resumed", method, *common, "--trainer.max_epochs", "1")) == 0
    assert main(digits_args(repo, tmp_path / "resumed", method, *common, "--trainer.max_epochs", "2",
                            "--run.resume", "auto")) == 0
    straight = _weights(tmp_path / "straight/r/checkpoints/last.ckpt")
    resumed = _weights(tmp_path / "resumed/r/checkpoints/last.ckpt")
    assert any(k.startswith("teacher_") for k in straight)
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)
    rows = (tmp_path / "resumed/r/metrics.csv").read_text().splitlines()
    assert any(r.split(",")[0] for r in rows[1:])  # rows of the first epoch were kept


class NaNAfterSteps(SimCLR):
    """Test method whose loss turns NaN after a number of optimiser steps."""

    def __init__(self, nan_after: int = 3, **base: Any) -> None:
        super().__init__(**base)

    def ssl_loss(self, feats):
        out = super().ssl_loss(feats)
        if self.current_epoch >= 1 and self.global_step >= self.hparams.nan_after:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_divergence_is_one_line_and_keeps_last_checkpoint(repo, tmp_path, capsys):
    args = digits_args(repo, tmp_path, "simclr", "--model", "test_cli.NaNAfterSteps", "--run.name", "nan",
                       "--trainer.max_epochs", "2")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "loss became NaN/inf" in err and "\n" not in err
    ckpt = torch.load(tmp_path / "nan/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 0  # the good checkpoint of epoch 0 is intact
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_user_method_by_class_path_gets_all_metrics(repo, tmp_path):
    """The README's example method: ~25 lines, and it gets probe, k-NN and collapse metrics."""
    source = (repo / "examples/align_uniform.py").read_text().splitlines()
    assert len(source) < 60
    args = digits_args(repo, tmp_path, "simclr", "--model", "align_uniform.AlignUniform", "--run.name", "au")
    args.remove("--config")
    args.remove(str(repo / "configs/digits/simclr.yaml"))
    # the digits SimCLR config has a temperature the example does not take: write a clean config
    cfg = (repo / "configs/digits/simclr.yaml").read_text().replace("  temperature: 0.2\n", "")
    (tmp_path / "au.yaml").write_text(cfg)
    assert main(["pretrain", "--config", str(tmp_path / "au.yaml"), *args[1:]]) == 0
    summary = json.loads((tmp_path / "au/summary.json").read_text())
    assert summary["method"] == "AlignUniform"
    assert all(summary[k] is not None for k in SUMMARY_KEYS)
