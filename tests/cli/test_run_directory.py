"""The run directory owns its files and loads its checkpoint one way (issue #22): a checkpoint
written before a constructor argument was added still loads in `ssl-bench eval` and `scan` (the
argument takes its default), one written without the method's class path loads by the config's
method, an argument the class no longer takes is one line, and `--run.overwrite` removes every
evaluation, feature cache, SCAN output and offline evaluation of the run it replaces."""
import json

import pytest
import torch

from ssl_bench import run_dir as rd
from ssl_bench.build import load_method_checkpoint
from ssl_bench.checkpointing import CKPT_META
from ssl_bench.cli import main
from ssl_bench.methods.simclr import SimCLR
from helpers import QUIET


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from helpers import REPO

    folder = tmp_path_factory.mktemp("run")
    assert main(["pretrain", "--config", str(REPO / "configs/digits/simclr.yaml"), "--run.dir", str(folder),
                 "--run.name", "r", "--trainer.max_epochs", "1", *QUIET]) == 0
    return folder / "r"


def rewrite(ckpt, tmp_path, edit) -> str:
    """A copy of ``ckpt`` in a run directory of its own, with ``edit`` applied to the loaded dict."""
    blob = torch.load(ckpt, map_location="cpu", weights_only=True)
    edit(blob)
    (tmp_path / "old/checkpoints").mkdir(parents=True)
    (tmp_path / "old/config.yaml").write_text((ckpt.parent.parent / "config.yaml").read_text())
    torch.save(blob, tmp_path / "old/checkpoints/last.ckpt")
    return str(tmp_path / "old/checkpoints/last.ckpt")


@pytest.mark.parametrize("command", ["eval", "scan"])
def test_checkpoint_from_before_a_new_argument_still_loads(run, tmp_path, command, capsys):
    """``check_finite_every_n_steps`` stands in for an argument added to BaseMethod after the file was
    written: before, eval identified the method by the exact set of arguments and refused it."""
    path = rewrite(run / "checkpoints/last.ckpt", tmp_path,
                   lambda blob: blob["hyper_parameters"].pop("check_finite_every_n_steps"))
    model = load_method_checkpoint(path, "test")
    assert isinstance(model, SimCLR) and model.hparams.check_finite_every_n_steps == 50  # the default
    original = load_method_checkpoint(run / "checkpoints/last.ckpt", "test")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), original.state_dict().values()))
    args = (["eval", "--ckpt", path, "--protocol", "knn"] if command == "eval"
            else ["scan", "--ckpt", path, "--scan_epochs", "1", "--self_label_epochs", "0"])
    assert main(args) == 0, capsys.readouterr().err


def test_checkpoint_without_its_class_path_loads_by_the_config(run, tmp_path):
    path = rewrite(run / "checkpoints/last.ckpt", tmp_path, lambda blob: blob.pop(CKPT_META))
    assert main(["eval", "--ckpt", path, "--protocol", "knn"]) == 0
    with pytest.raises(Exception, match="does not record its method"):
        load_method_checkpoint(path, "test")


def test_argument_the_class_no_longer_takes_is_one_line(run, tmp_path, capsys):
    path = rewrite(run / "checkpoints/last.ckpt", tmp_path,
                   lambda blob: blob["hyper_parameters"].update(retired_option=3))
    assert main(["eval", "--ckpt", path, "--protocol", "knn"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds simclr with argument(s) retired_option that SimCLR no longer takes" in err and "\n" not in err


def test_overwrite_removes_what_was_computed_from_the_old_checkpoint(repo, tmp_path):
    args = ["pretrain", "--config", str(repo / "configs/digits/simclr.yaml"), "--run.dir", str(tmp_path),
            "--run.name", "r", "--trainer.max_epochs", "1", *QUIET]
    assert main(args) == 0
    run = tmp_path / "r"
    assert main(["eval", "--ckpt", str(run / "checkpoints/last.ckpt"), "--protocol", "knn"]) == 0
    assert main(["scan", "--ckpt", str(run / "checkpoints/last.ckpt"), "--scan_epochs", "1",
                 "--self_label_epochs", "0"]) == 0
    (run / rd.OFFLINE_EVAL).write_text(json.dumps({"offline_knn_best_top1": 50.0}))  # as a sweep cell leaves it
    (run / "notes.txt").write_text("mine")
    for name in rd.DERIVED_ARTEFACTS:
        assert (run / name).exists(), name
    assert main([*args, "--run.overwrite", "true", "--run.seed", "1"]) == 0
    left = sorted(p.name for p in run.iterdir())
    assert not set(rd.DERIVED_ARTEFACTS) & set(left), left
    assert "notes.txt" in left and (run / "summary.json").is_file()


def test_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    rd.write_atomic(target, "old")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rd.os, "replace", fail)
    with pytest.raises(OSError):
        rd.write_atomic(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
