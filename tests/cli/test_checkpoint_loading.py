"""Checkpoints are read in one place (``run_dir.load_checkpoint_file``, plain tensors only): `ssl-bench
eval` and `ssl-bench scan` refuse a file holding pickled Python objects, or one that is not a
readable checkpoint, in one line that names the file, and never suggest ``weights_only=False``."""
import os
import pickle
import shutil

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.errors import ConfigError
from ssl_bench.run_dir import load_checkpoint_file


class Payload:
    """Any class of this module: torch pickles it by reference, so loading it would import and build it."""

    def __init__(self) -> None:
        self.note = "not a tensor"


class Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def run_dir(repo, tmp_path):
    """A run directory as pretrain leaves it (config.yaml beside checkpoints/), without a checkpoint."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(repo / "configs/digits/simclr.yaml", run / "config.yaml")
    return run


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "weights_only" not in err and "Traceback" not in err, err
    return err


COMMANDS = [pytest.param(lambda ckpt: ["eval", "--ckpt", ckpt, "--protocol", "knn"], id="eval"),
            pytest.param(lambda ckpt: ["scan", "--ckpt", ckpt], id="scan")]


@pytest.mark.parametrize("argv", COMMANDS)
def test_pickled_objects_are_refused_in_one_line(run_dir, capsys, argv):
    ckpt = run_dir / "checkpoints/last.ckpt"
    torch.save({"state_dict": {}, "obj": Payload()}, ckpt)
    assert main(argv(str(ckpt))) == 2
    err = one_line(capsys)
    assert str(ckpt) in err and "not loaded" in err and "pickled Python objects" in err
    assert not (run_dir / "evals").exists() and not (run_dir / "scan").exists() and not (run_dir / "features").exists()


@pytest.mark.parametrize("argv", COMMANDS)
def test_nothing_runs_from_a_pickled_reduce(run_dir, tmp_path, capsys, argv):
    ckpt = run_dir / "checkpoints/last.ckpt"
    marker = tmp_path / "executed"
    torch.save({"state_dict": {}, "payload": Exploit(str(marker))}, ckpt, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    assert main(argv(str(ckpt))) == 2
    err = one_line(capsys)
    assert str(ckpt) in err and "not loaded" in err
    assert not marker.exists()


@pytest.mark.parametrize("argv", COMMANDS)
@pytest.mark.parametrize("content", [b"\xfb\x17\x02junk\x00\x9c", b""], ids=["random_bytes", "empty"])
def test_unreadable_file_is_one_line(run_dir, capsys, argv, content):
    ckpt = run_dir / "checkpoints/last.ckpt"
    ckpt.write_bytes(content)
    assert main(argv(str(ckpt))) == 2
    err = one_line(capsys)
    assert str(ckpt) in err and "is not a readable checkpoint" in err


@pytest.mark.parametrize("argv", COMMANDS)
def test_truncated_checkpoint_is_one_line(run_dir, capsys, argv):
    ckpt = run_dir / "checkpoints/last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(4096)}}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    assert main(argv(str(ckpt))) == 2
    err = one_line(capsys)
    assert str(ckpt) in err and "is not a readable checkpoint" in err


def test_load_checkpoint_file(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {"w": torch.ones(3)}, "epoch": 2}, path)
    blob = load_checkpoint_file(path, "what")
    assert blob["epoch"] == 2 and torch.equal(blob["state_dict"]["w"], torch.ones(3))
    torch.save({"obj": Payload()}, path)
    with pytest.raises(ConfigError, match=r"^what: .*plain\.pt holds pickled Python objects and was not loaded"):
        load_checkpoint_file(path, "what")
    torch.save([torch.ones(1)], path)
    with pytest.raises(ConfigError, match=r"^what: .*is not a checkpoint \(it holds a list"):
        load_checkpoint_file(path, "what")
