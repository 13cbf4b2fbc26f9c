"""One config language (issue #22): ``--section.key VALUE`` on every subcommand, one name per
setting (``eval.<protocol>.<setting>``, ``scan.<setting>``), ``--print-config`` on pretrain, eval,
scan and sweep, and SCAN as a registered evaluation protocol (``ssl-bench eval --protocol scan``
gives the numbers ``ssl-bench scan`` gives)."""
import json
from pathlib import Path

import pytest
import yaml

from ssl_bench.cli import main
from ssl_bench.config import apply_overrides, load_config
from ssl_bench.eval import PROTOCOLS
from ssl_bench.eval.scan import ScanSettings, run_scan
from ssl_bench.pretrain import pretrain

ROOT = Path(__file__).resolve().parents[2]
SCAN_FAST = {"scan_epochs": 1, "self_label_epochs": 1, "num_heads": 2, "kmeans_init": 1, "batch_size": 64,
             "num_neighbors": 5, "threshold": 0.5}


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory) -> str:
    cfg = apply_overrides(load_config(ROOT / "configs/digits/simclr.yaml"),
                          ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
                           "--trainer.enable_model_summary", "false", "--run.dir", str(tmp_path_factory.mktemp("runs"))])
    return f"{pretrain(cfg)['run_dir']}/checkpoints/last.ckpt"


def _evals(ckpt: str) -> set[str]:
    folder = Path(ckpt).parents[1] / "evals"
    return {p.name for p in folder.glob("*.json")} if folder.is_dir() else set()


def test_eval_setting_has_the_sweep_name_and_the_short_flag_is_the_same_setting(digits_ckpt, capsys):
    assert main(["eval", "--ckpt", digits_ckpt, "--protocol", "knn", "--eval.knn.k", "5"]) == 0
    long_form = _evals(digits_ckpt)
    assert main(["eval", "--ckpt", digits_ckpt, "--protocol", "knn", "--k", "5"]) == 0
    assert _evals(digits_ckpt) == long_form and len(long_form) == 1 and "-k5-" in next(iter(long_form))
    capsys.readouterr()
    # a setting of another protocol than --protocol names is one line
    assert main(["eval", "--ckpt", digits_ckpt, "--protocol", "knn", "--eval.linear.epochs", "3"]) == 2
    assert "protocol settings are --eval.knn.<setting>" in capsys.readouterr().err


def test_eval_print_config_shows_every_setting_and_writes_nothing(digits_ckpt, capsys):
    before = _evals(digits_ckpt)
    assert main(["eval", "--ckpt", digits_ckpt, "--protocol", "knn", "--eval.knn.k", "7", "--data.val_subset", "50",
                 "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["eval"] == {"knn": {"k": 7, "temperature": 0.07}}
    assert printed["data"]["val_subset"] == 50 and printed["model"]["name"] == "simclr"
    assert _evals(digits_ckpt) == before


def test_scan_is_an_eval_protocol_with_the_scan_command_numbers(digits_ckpt, tmp_path, capsys):
    assert "scan" in PROTOCOLS
    flags = [x for key, value in SCAN_FAST.items() for x in (f"--eval.scan.{key}", str(value))]
    assert main(["eval", "--ckpt", digits_ckpt, "--protocol", "scan", *flags]) == 0
    result = json.loads(Path(capsys.readouterr().out.rsplit("-> ", 1)[1].strip()).read_text())
    summary = run_scan(digits_ckpt, ScanSettings(**SCAN_FAST), out=tmp_path / "scan", log=lambda *_: None)
    assert result["scan_acc"] == pytest.approx(summary["self_label"]["acc"])
    assert result["scan_scan_acc"] == pytest.approx(summary["scan"]["acc"])
    assert result["scan_kmeans_acc"] == pytest.approx(summary["kmeans"]["acc"])
    # SCAN uses no labels: a label fraction is refused in one line
    assert main(["eval", "--ckpt", digits_ckpt, "--protocol", "scan", *flags, "--label-fraction", "0.1"]) == 2
    assert "protocol scan uses no labels" in capsys.readouterr().err


def test_scan_command_takes_scan_section_keys_and_prints_its_config(digits_ckpt, tmp_path, capsys):
    assert main(["scan", "--ckpt", digits_ckpt, "--out", str(tmp_path / "o"), "--scan.num_clusters", "null",
                 "--scan.scan_epochs", "3", "--num_heads", "4", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["scan"]["scan_epochs"] == 3 and printed["scan"]["num_heads"] == 4
    assert printed["scan"]["num_clusters"] is None and printed["scan"]["entropy_weight"] == 5.0  # a default
    assert not (tmp_path / "o").exists()
    assert main(["scan", "--ckpt", digits_ckpt, "--scan.lr", "fast"]) == 2
    assert "scan.lr: 'fast' must be a number" in capsys.readouterr().err


def test_sweep_takes_section_key_overrides_and_prints_its_config(tmp_path, capsys):
    spec = ROOT / "configs/sweeps/digits-small.yaml"
    common = ["sweep", str(spec), "--dir", str(tmp_path / "sweep"), "--methods", "simclr", "--seeds", "0",
              "--print-config"]
    assert main([*common, "--trainer.max_epochs", "3"]) == 0
    long_form = yaml.safe_load(capsys.readouterr().out)
    assert main([*common, "--set", "trainer.max_epochs=3"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == long_form
    assert set(long_form["cells"]) == {"simclr-digits-s0", "random_init-digits-s0"}
    assert long_form["cells"]["simclr-digits-s0"]["trainer"]["max_epochs"] == 3
    assert long_form["eval"]["protocols"]["knn"] == {"k": [10, 20], "temperature": [0.07, 0.2]}
    assert not (tmp_path / "sweep").exists()
    # a nested key sets that key only, as --set data.augment.name=byol does (the rest of augment stays)
    assert main([*common, "--data.augment.name", "byol"]) == 0
    nested = yaml.safe_load(capsys.readouterr().out)
    assert main([*common, "--set", "data.augment.name=byol"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == nested
    augment = nested["cells"]["simclr-digits-s0"]["data"]["augment"]
    assert augment["name"] == "byol" and len(augment) > 1
