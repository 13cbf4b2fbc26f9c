"""Multi-process training as a user runs it: ``ssl-bench pretrain ... --trainer.devices 2
--trainer.strategy ddp`` on 2 CPU processes (gloo), progress bar on, for a method of every family;
a collective that never completes ends the run in one line within ``run.collective_timeout_minutes``;
SIGTERM stops a run with a checkpoint that ``--run.resume auto`` continues exactly (one process and
two); the ranks draw their own random streams; the sweep runs a DDP cell."""
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist
import yaml

from ssl_bench.methods import SimCLR
from helpers import QUIET, assert_same_weights, pythonpath

TESTS = Path(__file__).resolve().parent
DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
# contrastive without and with a queue, EMA distillation, Sinkhorn clustering, whitening, multi-crop
FAMILIES = ["simclr", "moco_v2plus", "byol", "swav", "wmse", "dino"]


def ssl_bench(args: list[str], cwd: Path, timeout: float = 240, env: dict[str, str] | None = None,
              **popen) -> subprocess.CompletedProcess:
    env = {**pythonpath(TESTS), **(env or {})}
    return subprocess.run([sys.executable, "-m", "ssl_bench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env, **popen)


def config_args(repo: Path, method: str, run_dir: Path, name: str) -> list[str]:
    return ["pretrain", "--config", str(repo / f"configs/digits/{method}.yaml"), "--run.dir", str(run_dir),
            "--run.name", name]


@pytest.mark.parametrize("method", FAMILIES)
def test_two_processes_from_the_command_line_finish(repo, tmp_path, method):
    """The command exactly as typed (progress bar on): it ends, one summary, finite metrics."""
    start = time.monotonic()
    proc = ssl_bench([*config_args(repo, method, tmp_path, "ddp"), "--trainer.max_epochs", "1", *DDP], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - start < 240
    summary = json.loads((tmp_path / "ddp/summary.json").read_text())
    assert summary["world_size"] == 2 and summary["derived"]["world_size"] == 2
    for key in ("val_knn_top1", "val_linear_top1", "train_loss", "rankme", "z_std", "entropy", "reconstruction"):
        assert summary[key] is not None and math.isfinite(summary[key]), key
    assert proc.stdout.count("k-NN top-1") == 1


class RankStreams(SimCLR):
    """Test-only: each rank writes a digest of torch's generator state when training starts (after the
    per-rank split, or after a resumed checkpoint's restore)."""

    def on_train_start(self):
        digest = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
        (Path(self.trainer.default_root_dir) / f"stream-rank{self.global_rank}.txt").write_text(digest)


def test_each_rank_draws_its_own_random_stream(repo, tmp_path):
    """Under DDP every process is seeded alike; without the split, each rank would draw the same
    augmentation parameters for its own images."""
    proc = ssl_bench([*config_args(repo, "simclr", tmp_path, "r"), "--model", "test_ddp_cli.RankStreams",
                      "--trainer.max_epochs", "1", *QUIET, *DDP], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    streams = [(tmp_path / f"r/stream-rank{rank}.txt").read_text() for rank in (0, 1)]
    assert streams[0] != streams[1]


class OneRankCollective(pl.Callback):
    """Test-only: rank 1 waits for a message rank 0 never sends, so the ranks fall out of step."""

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.global_rank == 1:
            dist.recv(torch.zeros(1), src=0)


class MismatchedSimCLR(SimCLR):
    def configure_callbacks(self):
        return [*super().configure_callbacks(), OneRankCollective()]


def test_mismatched_collective_ends_in_one_line_within_the_timeout(repo, tmp_path):
    start = time.monotonic()
    proc = ssl_bench([*config_args(repo, "simclr", tmp_path, "stuck"), "--model", "test_ddp_cli.MismatchedSimCLR",
                      "--trainer.max_epochs", "2", "--run.collective_timeout_minutes", "0.4", *DDP, *QUIET],
                     tmp_path, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert elapsed < 90
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ssl-bench: error:")]
    assert lines and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    # the rank whose collective timed out names where it waited; a rank still waiting when it ended
    # may report the lost peer instead of its own timeout
    assert all("rank " in ln and ("waited more than 0.4 min" in ln or "lost its peer" in ln) for ln in lines), lines
    assert any("rank 1 of 2: recv" in ln and "tests/distributed/test_ddp_cli.py" in ln for ln in lines), proc.stderr[-5000:]


@pytest.mark.parametrize("value, message", [("0", "run.collective_timeout_minutes must be positive, got 0"),
                                            ("soon", "run.collective_timeout_minutes must be float, got 'soon'")])
def test_bad_collective_timeout_is_one_line(repo, tmp_path, capsys, value, message):
    from ssl_bench.cli import main

    assert main([*config_args(repo, "simclr", tmp_path, "t"), "--run.collective_timeout_minutes", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "t").exists()


def _wait_for_step(metrics: Path, step: int, proc: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file():
            rows = metrics.read_text().splitlines()
            column = rows[0].split(",").index("step") if rows else 0
            steps = [int(float(r.split(",")[column])) for r in rows[1:] if r]
            if steps and max(steps) >= step:
                return
        time.sleep(0.05)
    raise AssertionError(f"the run did not reach step {step}")


def _sigterm_then_resume(repo: Path, run_dir: Path, extra: list[str], epochs: int, stop_after: int) -> str:
    args = [*config_args(repo, "simclr", run_dir, "r"), "--trainer.max_epochs", str(epochs),
            "--trainer.deterministic", "true", "--trainer.log_every_n_steps", "1", *QUIET, *extra]
    env = pythonpath(TESTS)
    proc = subprocess.Popen([sys.executable, "-m", "ssl_bench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=run_dir.parent, env=env)
    _wait_for_step(run_dir / "r/metrics.csv", stop_after, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    assert "stopped by SIGTERM at step" in stderr and "checkpoint saved" in stderr, stderr[-3000:]
    stopped = torch.load(run_dir / "r/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert stop_after <= stopped["global_step"]
    resumed = ssl_bench([*args, "--run.resume", "auto"], run_dir.parent)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return stderr


def test_sigterm_saves_a_checkpoint_and_resume_continues_exactly(repo, tmp_path):
    straight = ssl_bench([*config_args(repo, "simclr", tmp_path / "straight", "r"), "--trainer.max_epochs", "5",
                          "--trainer.deterministic", "true", "--trainer.log_every_n_steps", "1", *QUIET], tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    (tmp_path / "stopped").mkdir()
    _sigterm_then_resume(repo, tmp_path / "stopped", [], epochs=5, stop_after=12)
    a = torch.load(tmp_path / "straight/r/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "stopped/r/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"]
    assert_same_weights(a, b)


def test_sigterm_stops_two_processes_together(repo, tmp_path):
    (tmp_path / "ddp").mkdir()
    _sigterm_then_resume(repo, tmp_path / "ddp", DDP, epochs=6, stop_after=8)
    summary = json.loads((tmp_path / "ddp/r/summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 6


class SigtermAtStep(SimCLR):
    """Test-only: rank 0 sends itself SIGTERM as step ``$SIGTERM_AT_STEP`` starts, once per run
    directory (a marker file), as SLURM would at any moment."""

    def on_train_batch_start(self, batch, batch_idx):
        step, marker = os.environ.get("SIGTERM_AT_STEP"), Path(self.trainer.default_root_dir) / "sigterm-sent"
        if step is not None and self.global_rank == 0 and self.global_step == int(step) and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("world, last_batch", [(1, 10), (2, 9)])  # 11 steps per epoch on one process, 5 on two
def test_sigterm_on_an_epochs_last_batch_then_resume_continues_exactly(repo, tmp_path, world, last_batch):
    """Stopped on the last batch of an epoch (the stop waits for the epoch's validation and end), then
    resumed: the same metrics rows and final weights as the run never stopped, on one process and on
    two (every rank's random stream is in the checkpoint, and each rank gets its own back)."""
    extra = ["--model", "test_ddp_cli.SigtermAtStep", "--trainer.max_epochs", "3", "--trainer.deterministic", "true",
             "--trainer.log_every_n_steps", "1", *QUIET, *(DDP if world == 2 else [])]
    straight = ssl_bench([*config_args(repo, "simclr", tmp_path / "straight", "r"), *extra], tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    args = [*config_args(repo, "simclr", tmp_path / "stopped", "r"), *extra]
    env = {"SIGTERM_AT_STEP": str(last_batch)}
    stopped = ssl_bench(args, tmp_path, env=env)
    assert stopped.returncode == 143 and f"stopped by SIGTERM at step {last_batch + 1}" in stopped.stderr, stopped.stderr[-3000:]
    resumed = ssl_bench([*args, "--run.resume", "auto"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"{d}/r/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
            for d in ("straight", "stopped"))
    assert a["global_step"] == b["global_step"] and len(b["rng_states"].get("torch_per_rank", [0] * world)) == world
    assert_same_weights(a, b)
    rows = [(tmp_path / f"{d}/r/metrics.csv").read_text() for d in ("straight", "stopped")]
    assert rows[0] == rows[1]


def test_sweep_runs_a_two_process_cell(repo, tmp_path):
    spec = {"name": "ddp", "datasets": ["digits"], "methods": ["simclr"], "seeds": [0],
            "config": str(repo / "configs/{dataset}/{method}.yaml"), "baseline": False,
            "overrides": {"trainer.max_epochs": 1}}
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = ssl_bench(["sweep", str(path), "--dir", str(tmp_path / "sweep"), "--set", "trainer.devices=2",
                      "--set", "trainer.strategy=ddp", "--set", "trainer.accelerator=cpu"], repo, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    summary = json.loads(next((tmp_path / "sweep").glob("simclr-digits-s0/summary.json")).read_text())
    assert summary["world_size"] == 2
