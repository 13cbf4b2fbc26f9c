"""Every command in README.md runs as written.

The bash blocks are read from README.md in order (lines joined at a trailing backslash, comments
skipped) and each ``ssl-bench`` command runs through ``ssl_bench.cli.main`` from a scratch working
directory that has the repository's ``configs/`` and ``examples/`` in it, so relative paths resolve
as they do for a user in the repository root and the commands see each other's run directories
(``ssl-bench eval`` reads the run the W&B command made). Leading ``VAR=value`` assignments are
applied (``PYTHONPATH=examples`` goes onto ``sys.path``). Training commands get tiny settings
appended (CIFAR-10: 256 images, tiny CNN, one epoch; digits: one epoch; SCAN: one epoch per stage,
two heads): later overrides win, so everything else in the command (its config, keys and values,
its run directory) is as written.
Not run: ``pip install`` (it would change the environment; the ``dev`` extra it names is checked)
and ``pytest`` (this suite).
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shlex
from pathlib import Path

from ssl_bench.cli import main
from helpers import QUIET

TINY = ["--trainer.max_epochs", "1", *QUIET]
TINY_DATA_MODEL = ["--data.train_subset", "256", "--data.val_subset", "100", "--data.eval_train_subset", "256",
                   "--data.batch_size", "64", "--data.num_workers", "0", "--model.backbone", "tiny_cnn",
                   "--model.backbone_kwargs", "{width: 8}"]
TINY_CIFAR = [*TINY, *TINY_DATA_MODEL, "--trainer.accelerator", "cpu"]
NOT_RUN = {'pip install -e ".[dev]"', "pytest"}


def readme_commands(readme: Path) -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(line.split())
            if line and not line.startswith("#"):
                commands.extend(part.strip() for part in line.split("&&"))
    return commands


TINY_SWEEP = ["--methods", "simclr", "--seeds", "0", "--set", "trainer.max_epochs=1"]


TINY_SCAN = ["--scan_epochs", "1", "--self_label_epochs", "1", "--num_heads", "2", "--kmeans_init", "1"]


def tiny_settings(argv: list[str]) -> list[str]:
    if argv[:1] == ["sweep"] and "--dry-run" not in argv:
        return TINY_SWEEP
    if argv[:1] == ["scan"]:
        return TINY_SCAN
    if argv[:1] == ["eval"] and "--random-init" in argv:  # the config's full data and ResNet: shrink both
        return TINY_DATA_MODEL
    if argv[:1] != ["pretrain"] or "--print-config" in argv:
        return []
    config = argv[argv.index("--config") + 1]
    return TINY_CIFAR if "cifar10" in config else TINY


def test_every_readme_command_runs_as_written(repo, tmp_path, monkeypatch, capsys):
    for folder in ("configs", "examples"):
        (tmp_path / folder).symlink_to(repo / folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    commands = readme_commands(repo / "README.md")
    assert len(commands) >= 10
    skipped = [c for c in commands if c in NOT_RUN]
    assert sorted(skipped) == sorted(NOT_RUN)
    extras = configparser.ConfigParser()
    extras.read(repo / "setup.cfg")
    assert "pytest" in extras["options.extras_require"]["dev"]

    for command in commands:
        if command in NOT_RUN:
            continue
        words = shlex.split(command)
        env = {}
        while "=" in words[0]:
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        assert words[0] == "ssl-bench", command
        with monkeypatch.context() as m:
            for key, value in env.items():
                m.setenv(key, value)
                if key == "PYTHONPATH":
                    for entry in value.split(os.pathsep):
                        m.syspath_prepend(str(tmp_path / entry))
            argv = words[1:]
            code = main([*argv, *tiny_settings(argv)])
        captured = capsys.readouterr()
        assert code == 0, f"{command}\n{captured.err[-2000:]}"
        if argv[0] == "pretrain" and "--print-config" not in argv:
            assert "k-NN top-1" in captured.out, command

    runs = {p.name for p in (tmp_path / "runs").iterdir()}
    assert {"quickstart-simclr-cifar10", "byol-cifar10-seed0", "simclr-cifar10-seed0", "simclr-cifar10-bf16",
            "simclr-digits-seed0", "alignuniform-digits-seed0"} <= runs
    summary = json.loads((tmp_path / "runs/alignuniform-digits-seed0/summary.json").read_text())
    assert summary["method"] == "AlignUniform"
    evals = {p.name.split("-")[0] for p in (tmp_path / "runs/simclr-cifar10-seed0/evals").glob("*.json")}
    assert evals == {"knn", "linear", "finetune"}
    assert len(list((tmp_path / "runs/random_init-cifar10-seed0/evals").glob("finetune-*.json"))) == 1
    scans = {p.parent.name for p in (tmp_path / "runs/simclr-cifar10-seed0").glob("scan*/summary.json")}
    assert scans == {"scan", "scan-5ep"}
    assert (tmp_path / "runs/sweeps/digits-small/results.md").is_file()
