"""Nothing a user types loses a result (issue #7): run-directory safety, exact resume from a mid-epoch
checkpoint after SIGKILL, metrics.csv without duplicate steps, Ctrl-C, and one line (no traceback)
for every mistake, with the files of the earlier run unchanged (hashes) and nothing executed."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from ssl_bench import __version__
from ssl_bench.cli import main
from ssl_bench.methods import SimCLR
from ssl_bench.run_dir import RunState, clear_run, run_state
from helpers import QUIET, REPO, assert_same_weights, pythonpath

HERE = Path(__file__).resolve().parent  # subprocesses import this module by name
KILL_ENV, SIGINT_ENV = "SSL_BENCH_TEST_KILL_AT_STEP", "SSL_BENCH_TEST_SIGINT_AT_STEP"


class SignalAtStep(SimCLR):
    """SimCLR that kills itself (SIGKILL) or presses Ctrl-C (SIGINT) at the training step given in
    the environment: a real process dying mid-epoch, at a known step."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        for env, sig in ((KILL_ENV, signal.SIGKILL), (SIGINT_ENV, signal.SIGINT)):
            if os.environ.get(env) == str(self.global_step):
                os.kill(os.getpid(), sig)
        return super().training_step(batch, batch_idx)


def digits(repo: Path, run_dir: Path, *extra: str, name: str = "r", epochs: int = 1) -> list[str]:
    return ["pretrain", "--config", str(repo / "configs/digits/simclr.yaml"), "--run.dir", str(run_dir),
            "--run.name", name, "--trainer.max_epochs", str(epochs), *QUIET, *extra]


def hashes(run_dir: Path) -> dict[str, str]:
    """The run's files (not ``.lock``, the record of whoever last held the directory's lock)."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


def one_line_error(capsys, *fragments: str) -> str:
    """The error is the last line of stderr, and the only one; other lines are ssl-bench's notes."""
    lines = capsys.readouterr().err.strip().splitlines()
    err = lines[-1] if lines else ""
    assert err.startswith("ssl-bench: error:") and all(ln.startswith("ssl-bench: ") for ln in lines), lines
    assert sum("error:" in ln for ln in lines) == 1
    for fragment in fragments:
        assert fragment in err, err
    return err


def metric_cells(path: Path) -> list[tuple[int, str, str]]:
    """(step, column, value) of every non-empty metric cell of metrics.csv."""
    with path.open(newline="") as f:
        return [(int(row["step"]), k, v) for row in csv.DictReader(f) for k, v in row.items()
                if v not in ("", None) and k not in ("step", "epoch")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 1-epoch digits run (its directory is never modified by the tests that use it)."""
    root = tmp_path_factory.mktemp("finished")
    assert main(digits(REPO, root)) == 0
    return root


def copy_run(finished: Path, tmp_path: Path) -> Path:
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    return tmp_path


# ----------------------------------------------------------------------------- losing results

def test_rerun_into_finished_run_is_refused(repo, finished, capsys):
    before = hashes(finished / "r")
    assert main(digits(repo, finished)) == 2
    one_line_error(capsys, "holds a finished run", "--run.resume auto", "--run.overwrite true")
    assert hashes(finished / "r") == before


def test_rerun_into_partial_run_is_refused_and_overwrite_starts_afresh(repo, finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path) / "r"
    (run / "summary.json").unlink()
    assert run_state(run) is RunState.PARTIAL
    before = hashes(run)
    assert main(digits(repo, tmp_path)) == 2
    one_line_error(capsys, "holds an unfinished run", "checkpoints/last.ckpt")
    assert hashes(run) == before
    (run / "eval_knn.json").write_text("{}")  # describes the old checkpoint: goes with it
    assert main(digits(repo, tmp_path, "--run.overwrite", "true", "--run.seed", "1")) == 0
    assert not (run / "eval_knn.json").exists() and run_state(run) is RunState.FINISHED
    assert yaml.safe_load((run / "config.yaml").read_text())["run"]["seed"] == 1


def test_resume_auto_of_finished_run_keeps_summary(repo, finished, capsys):
    before = hashes(finished / "r")
    assert main(digits(repo, finished, "--run.resume", "auto")) == 0
    out = capsys.readouterr().out
    assert "already finished" in out and "k-NN top-1 n/a" not in out
    assert hashes(finished / "r") == before


@pytest.mark.parametrize("extra, fragments", [
    (["--model.lr", "fast"], ["model.lr must be float"]),
    (["--model", "test_reliability.SignalAtStep"], ["run.resume", "holds SimCLR with backbone tiny_cnn",
                                                    "asks for SignalAtStep with backbone tiny_cnn"]),
    (["--model.backbone", "resnet18", "--model.backbone_kwargs", "{}"],
     ["holds SimCLR with backbone tiny_cnn", "SimCLR with backbone resnet18"]),
    (["--model.proj_dim", "32"], ["does not fit SimCLR", "differently shaped"]),
    (["--data.augment.crop_scale", "0.5"], ["data.augment.crop_scale must be tuple[float, float]", "0.5"]),
    (["--trainer.max_epochs", "-1"], ["trainer.max_epochs must be a positive integer", "-1"]),
    (["--run.seed", "abc"], ["run.seed must be int", "'abc'"]),
    (["--run.rsume", "auto"], ["unknown key run.rsume", "did you mean 'resume'?"]),
    (["--data.batch_size", "1"], ["data.batch_size 1", "BatchNorm", ">= 2"]),
    (["--model.backbone", "vit_tiny_patch16_224", "--model.backbone_kwargs", "{}"],
     ["vit_tiny_patch16_224", "16x16", "img_size: 16"]),
    (["--model.temprature", "0.1"], ["unknown key model.temprature", "did you mean 'temperature'?"]),
    (["--model.backbone", "resnet19"], ["unknown backbone 'resnet19'", "did you mean 'resnet18'?"]),
    (["--data.dataset", "digit"], ["unknown dataset 'digit'", "did you mean 'digits'?"]),
])
def test_failing_resume_leaves_run_untouched(repo, finished, capsys, extra, fragments):
    """Every mistake is caught before the run directory is touched: one line, same files."""
    before = hashes(finished / "r")
    assert main(digits(repo, finished, "--run.resume", "auto", "--trainer.max_epochs", "2", *extra)) == 2
    one_line_error(capsys, *fragments)
    assert hashes(finished / "r") == before


def test_run_keys_are_checked(repo, tmp_path, capsys):
    assert main(digits(repo, tmp_path, "--run.seeed", "1")) == 2
    one_line_error(capsys, "unknown key run.seeed", "did you mean 'seed'?")
    assert main(digits(repo, tmp_path, "--run.resume", "auto", "--run.overwrite", "true")) == 2
    one_line_error(capsys, "exclude each other")
    assert not tmp_path.joinpath("r").exists()


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_checkpoint_is_refused_and_nothing_runs(repo, finished, tmp_path, capsys):
    evil = _Exploit()
    evil.marker = str(tmp_path / "executed")
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": evil}, ckpt, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    assert main(digits(repo, tmp_path, "--run.resume", str(ckpt))) == 2
    one_line_error(capsys, "pickled Python objects", "refused")
    assert not (tmp_path / "executed").exists() and not (tmp_path / "r").exists()


def test_mid_epoch_sigkill_resume_is_bit_identical(repo, tmp_path):
    """SIGKILL at step 18 of 22 (last checkpoint: step 16, mid-epoch 2), resume: the same weights,
    optimiser state and metrics.csv cells (no duplicate steps) as a run never interrupted; the
    summary's fit_seconds includes the killed process's training time up to its checkpoint."""
    args = ["--model", "test_reliability.SignalAtStep", "--trainer.deterministic", "true",
            "--trainer.log_every_n_steps", "1", "--run.ckpt_every_n_steps", "4"]
    assert main(digits(repo, tmp_path / "straight", *args, epochs=2)) == 0
    env = {**pythonpath(repo, HERE), KILL_ENV: "18"}
    proc = subprocess.run([sys.executable, "-m", "ssl_bench.cli", *digits(repo, tmp_path / "killed", *args, epochs=2)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run = tmp_path / "killed/r"
    killed = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert killed["global_step"] == 16 and killed["epoch"] == 1  # mid-epoch: 5 of 11 batches of epoch 2
    assert max(step for step, _, _ in metric_cells(run / "metrics.csv")) >= 16  # rows the resume logs again
    assert main(digits(repo, tmp_path / "killed", *args, "--run.resume", "auto", epochs=2)) == 0

    straight = torch.load(tmp_path / "straight/r/checkpoints/last.ckpt", weights_only=True)
    resumed = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert resumed["global_step"] == straight["global_step"] == 22
    assert_same_weights(straight, resumed)
    for a, b in zip(straight["optimizer_states"][0]["state"].values(),
                    resumed["optimizer_states"][0]["state"].values()):
        torch.testing.assert_close(b["momentum_buffer"], a["momentum_buffer"], rtol=0, atol=0)
    # the same (step, metric) cells as the uninterrupted run, once each: the killed run's rows from
    # step 16 on are gone. (Not compared: the collapse monitor's metrics; its embedding buffer is not
    # in the checkpoint, so after a mid-epoch resume it logs from a fresh buffer.)
    monitor = {"z_std", "rankme", "alignment", "uniformity", "entropy", "reconstruction", "er_bound"}
    cells = [c for c in metric_cells(run / "metrics.csv") if c[1] not in monitor]
    reference = [c for c in metric_cells(tmp_path / "straight/r/metrics.csv") if c[1] not in monitor]
    assert len({(s, c) for s, c, _ in cells}) == len(cells), "a metric was logged twice for a step"
    assert Counter((s, c) for s, c, _ in cells) == Counter((s, c) for s, c, _ in reference)
    losses = sorted(c for c in cells if c[1] == "train_loss_step")
    assert losses == sorted(c for c in reference if c[1] == "train_loss_step") and len(losses) == 22
    summary = json.loads((run / "summary.json").read_text())
    assert summary["fit_seconds"] > killed["ssl_bench"]["train_seconds"] > 0


def test_ctrl_c_is_one_line_exit_130_and_console_is_clean(repo, tmp_path):
    """Ctrl-C (SIGINT) at step 14 of a real process: the project's own line, exit code 130, the
    mid-epoch checkpoint kept, no summary. Before it, the console showed the progress bar with the
    latest val_knn_top1, and neither Lightning's tips nor its "0 Total Flops" line."""
    env = {**pythonpath(repo, HERE), SIGINT_ENV: "14"}
    args = ["pretrain", "--config", str(repo / "configs/digits/simclr.yaml"), "--run.dir", str(tmp_path),
            "--run.name", "r", "--trainer.max_epochs", "2", "--model", "test_reliability.SignalAtStep",
            "--trainer.log_every_n_steps", "1", "--run.ckpt_every_n_steps", "12"]
    # a test runner started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: give the child the default disposition
    proc = subprocess.run([sys.executable, "-m", "ssl_bench.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 130, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    ckpt = tmp_path / "r/checkpoints/last.ckpt"
    assert last == f"ssl-bench: interrupted; last checkpoint kept: {ckpt} (continue with --run.resume auto)"
    assert torch.load(ckpt, weights_only=True)["global_step"] == 12
    assert not (tmp_path / "r/summary.json").exists()
    console = proc.stdout + proc.stderr
    assert "val_knn_top1=" in console and "train_loss_step=" in console
    assert "Traceback" not in console and "Tip:" not in console and "Total Flops" not in console
    assert "Detected KeyboardInterrupt" not in console and "Total params" in console


# ----------------------------------------------------------------------------- accepted but wrong

def test_scientific_notation_on_command_line_and_in_files(repo, tmp_path, capsys):
    cfg = (repo / "configs/digits/simclr.yaml").read_text().replace("lr: 0.1", "lr: 3e-4")
    (tmp_path / "c.yaml").write_text(cfg.replace("weight_decay: 1.0e-4", "weight_decay: 1e-4"))
    assert main(["pretrain", "--config", str(tmp_path / "c.yaml"), "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["lr"] == 3e-4 and printed["model"]["weight_decay"] == 1e-4
    assert main(["pretrain", "--config", str(tmp_path / "c.yaml"), "--model.lr", "1e-3",
                 "--model.probe_lr", "2E+0", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["lr"] == 1e-3 and printed["model"]["probe_lr"] == 2.0


def test_enable_checkpointing_false_runs_without_checkpoint(repo, tmp_path):
    assert main(digits(repo, tmp_path, "--trainer.enable_checkpointing", "false")) == 0
    assert run_state(tmp_path / "r") is RunState.FINISHED
    assert not (tmp_path / "r/checkpoints").exists()


def test_hparams_yaml_is_plain(finished):
    hparams = yaml.safe_load((finished / "r/hparams.yaml").read_text())
    assert hparams["betas"] == [0.9, 0.999]
    assert yaml.safe_load((finished / "r/config.yaml").read_text())["model"]["name"] == "simclr"


# ----------------------------------------------------------------------------- image folders

def _tree(root: Path, val_extra: bool = False, corrupt: bool = False) -> Path:
    from PIL import Image

    for split, classes in (("train", ("cat", "dog")), ("val", ("cat", "dog", "eel") if val_extra else ("cat", "dog"))):
        for i, c in enumerate(classes):
            (root / split / c).mkdir(parents=True)
            for j in range(12 if split == "train" else 4):
                Image.new("RGB", (20, 24), (60 * i + 10 * j, 30, 200 - 40 * i)).save(root / split / c / f"{j}.png")
    if corrupt:
        (root / "train/dog/broken.jpg").write_bytes(b"not a jpeg")
    return root


def folder(repo: Path, data: Path, run_dir: Path, *extra: str) -> list[str]:
    return digits(repo, run_dir, "--data.dataset", "folder", "--data.root", str(data), "--data.pipeline",
                  "per_image", "--data.batch_size", "8", "--data.num_workers", "0", *extra)


def test_folder_image_size_inferred_and_val_classes(repo, tmp_path, capsys):
    data = _tree(tmp_path / "data", val_extra=True)
    # --print-config derives the steps from the data (build.resolved_config), so it reads and checks it
    assert main(folder(repo, data, tmp_path, "--print-config")) == 2
    one_line_error(capsys, "1 val class(es) not in train (eel; 4 images)", "data.drop_unknown_val_classes")
    assert main(folder(repo, data, tmp_path)) == 2
    one_line_error(capsys, "1 val class(es) not in train (eel; 4 images)", "data.drop_unknown_val_classes")
    assert not (tmp_path / "r").exists()
    assert main(folder(repo, data, tmp_path, "--data.drop_unknown_val_classes", "true")) == 0
    err = capsys.readouterr().err
    assert "data.image_size not set; training at 20" in err and "left out" in err
    summary = json.loads((tmp_path / "r/summary.json").read_text())
    assert summary["val_knn_top1"] is not None


def test_corrupt_image_one_line_precheck_and_skip(repo, tmp_path, capsys):
    data = _tree(tmp_path / "data", corrupt=True)
    assert main(folder(repo, data, tmp_path, "--run.name", "a")) == 2  # mid-epoch, while loading
    one_line_error(capsys, "cannot decode image", "broken.jpg", "data.skip_corrupt_images: true")
    assert main(folder(repo, data, tmp_path, "--run.name", "b", "--data.check_images", "true")) == 2
    one_line_error(capsys, "data.check_images: 1 image(s) cannot be decoded", "broken.jpg")
    assert not (tmp_path / "b").exists()  # checked before the run directory was made
    assert main(folder(repo, data, tmp_path, "--run.name", "c", "--data.skip_corrupt_images", "true")) == 0
    assert json.loads((tmp_path / "c/summary.json").read_text())["skipped_image_reads"] >= 1
    assert "skipped unreadable image" in capsys.readouterr().err


# ----------------------------------------------------------------------------- discovery

def test_list_version_help_print_config(repo, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("simclr", "byol", "tiny_cnn", "resnet18", "cifar10", "folder", "digits"):
        assert name in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"ssl-bench {__version__}"
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    out = capsys.readouterr().out
    assert "--print-config" in out and "ssl_bench/methods/base.py" in out and "ckpt_every_n_steps" in out
    assert main(["pretrain", "--config", str(repo / "configs/digits/byol.yaml"), "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["name"] == "byol" and cfg["model"]["base_tau"] == 0.99  # from the file
    assert cfg["model"]["knn_k"] == 20 and cfg["data"]["eval_batch_size"] == 512  # defaults
    assert cfg["trainer"]["gradient_clip_val"] is None and cfg["run"]["overwrite"] is False


def test_run_state_helper(tmp_path):
    run = tmp_path / "x"
    assert run_state(run) is RunState.ABSENT
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    assert run_state(run) is RunState.ABSENT
    (run / "metrics.csv").write_text("step\n")
    assert run_state(run) is RunState.PARTIAL
    (run / "summary.json").write_text("{trunc")  # unreadable: still partial
    assert run_state(run) is RunState.PARTIAL
    (run / "summary.json").write_text("{}")
    assert run_state(run) is RunState.FINISHED
    assert sorted(clear_run(run)) == ["metrics.csv", "summary.json"]
    assert run_state(run) is RunState.ABSENT and (run / "notes.txt").exists()


def test_last_checkpoint_step_and_time_intervals(tmp_path, monkeypatch):
    """LastCheckpoint saves mid-epoch every N steps and/or after M seconds (never on an epoch's last
    batch, whose epoch-end save follows), and records the step a resumed run logs first."""
    from types import SimpleNamespace

    from ssl_bench import checkpointing

    saved = []
    loop = SimpleNamespace(batch_progress=SimpleNamespace(is_last_batch=False), _batches_that_stepped=0)
    trainer = SimpleNamespace(global_step=0, fit_loop=SimpleNamespace(epoch_loop=loop),
                              strategy=SimpleNamespace(broadcast=lambda x: x))
    trainer.save_checkpoint = lambda path, weights_only: saved.append((trainer.global_step, cb._next_log_step))
    clock = [100.0]
    monkeypatch.setattr(checkpointing.time, "monotonic", lambda: clock[0])
    cb = checkpointing.LastCheckpoint(tmp_path, every_n_steps=4, every_seconds=30)
    cb.on_train_start(trainer, None)
    for step in range(1, 11):
        trainer.global_step, loop._batches_that_stepped = step, step - 1
        loop.batch_progress.is_last_batch = step == 8
        clock[0] += 25 if step == 6 else 10
        cb.on_train_batch_end(trainer, None, None, None, step)
    # 3: 30 s after the start; 4: every 4 steps; 6: 35 s after the save at 4; 8: an epoch's last
    # batch (its epoch-end save follows); 9: 30 s after the save at 6
    assert saved == [(3, 3), (4, 4), (6, 6), (9, 9)]
    assert checkpointing.LastCheckpoint(tmp_path).every_n_steps is None
