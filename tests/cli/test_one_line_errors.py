"""Issue #27, "one line instead of a traceback": a broken checkpoint outside a run directory, a full
disk while a checkpoint is written, a read-only place to write, a file where a sweep directory
belongs, a NaN before any checkpoint; each ends in one line that says what is true, and nothing is
left behind (``last.ckpt.tmp``) or rewritten. ``eval --out`` evaluates a checkpoint whose run
directory must not be written."""
import errno
import hashlib
import json

import pytest

import ssl_bench.checkpointing as checkpointing
from ssl_bench.cli import main
from ssl_bench.methods.simclr import SimCLR
from helpers import digits_args


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssl-bench: error: ") and "\n" not in err, err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from helpers import REPO

    run_dir = tmp_path_factory.mktemp("trained")
    assert main(digits_args(REPO, run_dir, "simclr", "--run.name", "r")) == 0
    return run_dir / "r"


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"not a checkpoint at all"])
@pytest.mark.parametrize("command", ["eval", "scan"])
def test_broken_checkpoint_outside_a_run_directory_says_so(tmp_path, capsys, content, command):
    """Before: "no config.yaml in ..." (the file was never looked at)."""
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(content)
    args = ["eval", "--ckpt", str(ckpt), "--protocol", "knn"] if command == "eval" else ["scan", "--ckpt", str(ckpt)]
    assert main(args) == 2
    assert f"{ckpt} is not a readable checkpoint" in one_error_line(capsys)


def test_full_disk_while_checkpointing_is_one_line_and_leaves_no_tmp(repo, tmp_path, capsys, monkeypatch):
    """The write fails half-way (ENOSPC): one line naming the file, no ``last.ckpt.tmp`` left, and the
    checkpoint is staged beside its target (before: in the system temp dir)."""
    written = []

    def save_half_then_fail(obj, f):
        written.append(f.name)
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device", f.name)

    monkeypatch.setattr(checkpointing.torch, "save", save_half_then_fail)
    assert main(digits_args(repo, tmp_path, "simclr", "--run.name", "full")) == 2
    err = one_error_line(capsys)
    ckpt_dir = tmp_path / "full/checkpoints"
    assert f"cannot write {ckpt_dir / 'last.ckpt.tmp'}: no space left on the device" in err
    assert written == [str(ckpt_dir / "last.ckpt.tmp")]
    assert not list(ckpt_dir.glob("*")), "a failed write must leave nothing behind"


def test_read_only_directory_is_one_line(repo, tmp_path, capsys, monkeypatch):
    """Simulated (the tests may run as root, which ignores permissions): writing config.yaml is refused."""
    import ssl_bench.config as config

    def refuse(cfg, path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("ssl_bench.pretrain.dump_config", refuse)
    assert main(digits_args(repo, tmp_path, "simclr", "--run.name", "ro")) == 2
    assert f"cannot write {tmp_path / 'ro/config.yaml'}: permission denied" in one_error_line(capsys)
    assert config.dump_config is not refuse


def test_sweep_dir_that_is_a_file(repo, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    target = tmp_path / "results"
    target.write_text("not a directory")
    assert main(["sweep", str(repo / "configs/sweeps/digits-small.yaml"), "--dir", str(target)]) == 2
    assert f"sweep directory {target} is a file, not a directory" in one_error_line(capsys)
    assert target.read_text() == "not a directory"


class NaNFromTheStart(SimCLR):
    def ssl_loss(self, feats):
        out = super().ssl_loss(feats)
        out["loss"] = out["loss"] * float("nan")
        return out


def test_nan_before_any_checkpoint_says_none_was_kept_and_the_rerun_starts_afresh(repo, tmp_path, capsys):
    """Before: "the last good checkpoint was kept" (there was none), and the rerun was refused as an
    "unfinished run". The attempt's files are set aside; the same command then runs."""
    args = digits_args(repo, tmp_path, "simclr", "--run.name", "nan", "--model.check_finite_every_n_steps", "1")
    assert main([*args, "--model.name", "test_one_line_errors.NaNFromTheStart"]) == 2
    err = one_error_line(capsys)
    assert "loss became NaN/inf" in err and "no checkpoint had been written; this attempt's files are in" in err
    assert "kept" not in err
    (aside,) = (tmp_path / "nan").glob("failed-*")
    assert (aside / "config.yaml").is_file() and not (tmp_path / "nan/config.yaml").exists()
    assert main(args) == 0  # the same command, without the NaN, is not refused
    assert (tmp_path / "nan/summary.json").is_file()


@pytest.mark.parametrize("key, value", [("lr", ".nan"), ("lr", "0"), ("lr", "-0.1"), ("weight_decay", ".inf"),
                                        ("warmup_epochs", "-1")])
def test_non_finite_or_negative_optimiser_values_are_refused_before_the_run(repo, tmp_path, capsys, key, value):
    assert main(digits_args(repo, tmp_path, "simclr", "--run.name", "bad", f"--model.{key}", value)) == 2
    assert f"model.{key} must be a finite number" in one_error_line(capsys)
    assert not (tmp_path / "bad").exists()


def test_eval_out_leaves_the_run_directory_untouched(trained, tmp_path):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in trained.rglob("*") if p.is_file()}
    assert main(["eval", "--ckpt", str(trained / "checkpoints/last.ckpt"), "--protocol", "knn",
                 "--out", str(tmp_path / "mine")]) == 0
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in trained.rglob("*") if p.is_file()}
    assert after == before
    (result,) = (tmp_path / "mine/evals").glob("knn-*.json")
    assert json.loads(result.read_text())["checkpoint"] == str(trained / "checkpoints/last.ckpt")
    assert list((tmp_path / "mine/features").glob("*.pt"))
