"""Evaluation protocols behind one interface and registry (issue #22).

A protocol added in one place (here: ``NearestClassMean``, registered as ``toy`` by the decorator
below) is (1) an ``ssl-bench eval --protocol toy`` with its ``--scale`` flag in ``--help``, writing
its result file; (2) a key of a sweep's ``eval:`` section, checked before anything trains, whose
metrics land in every cell's ``offline_eval.json`` (cells are other processes: they import this
module by the path the spec check wrote into ``_sweep/eval.json``); (3) a column of the sweep's
``results.csv`` / ``results.md``. The built-in protocols keep their flags, sweep keys and columns.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ssl_bench.cli import main
from ssl_bench.metrics import knn_accuracy
from ssl_bench.eval.registry import (PROTOCOLS, EvalProtocol, accuracy_metrics, register_protocol, resolve_protocol,
                                 setting)
from helpers import pythonpath, write_spec as write_sweep_spec

TESTS = Path(__file__).resolve().parent
ADDRESS = "test_eval_registry.NearestClassMean"  # how a sweep cell imports it


# ----------------------------------------------------------------------------- the one place a protocol is added
@register_protocol
class NearestClassMean(EvalProtocol):
    """Nearest class mean: cosine similarity of each val feature to the mean of each class's
    (l2-normalised) labelled train features, times ``scale``."""

    name = "toy"
    help = "nearest class mean of the frozen features"

    @dataclass
    class Settings:
        scale: float = setting(1.0, "logit scale of the cosine similarities", lambda v: v > 0, "must be positive")

    grid = ("scale",)

    def run(self, target, settings, labelled):
        fs, _ = target.features()
        x, y = (fs.train_x, fs.train_y) if labelled is None else (fs.train_x[labelled], fs.train_y[labelled])
        x = F.normalize(x.float(), dim=1)
        means = torch.stack([x[y == c].mean(0) for c in range(target.num_classes)])
        scores = settings.scale * F.normalize(fs.val_x.float(), dim=1) @ F.normalize(means, dim=1).T
        return accuracy_metrics(knn_accuracy(scores, fs.val_y, top_k=(1, 5)))


# ----------------------------------------------------------------------------- one tiny sweep, run once
def write_spec(path: Path, **fields) -> Path:
    """simclr on digits, seed 0, with the random-init baseline (helpers.write_spec otherwise)."""
    return write_sweep_spec(path.parent, path.stem, methods=["simclr"], seeds=[0], baseline=True, **fields)


@pytest.fixture(scope="module")
def toy_sweep(tmp_path_factory):
    """simclr (1 epoch) + the random-init baseline on digits; eval: k-NN (the earlier keys), the toy
    protocol by its registered name over a grid of scales, and 10% of the labels."""
    tmp = tmp_path_factory.mktemp("toy_sweep")
    spec = write_spec(tmp / "toy.yaml", eval={"knn_k": [10], "toy": {"scale": [1, 2]}, "label_fractions": [0.1]})
    with pytest.MonkeyPatch.context() as mp:  # the cells (subprocesses) import this module by its path
        mp.setenv("PYTHONPATH", pythonpath(TESTS)["PYTHONPATH"])
        assert main(["sweep", str(spec), "--dir", str(tmp / "out")]) == 0
    return tmp / "out"


def test_toy_protocol_runs_in_every_sweep_cell_into_offline_eval_json(toy_sweep):
    assert json.loads((toy_sweep / "_sweep/eval.json").read_text()) == {
        "protocols": {"knn": {"k": [10], "temperature": [0.07]}, ADDRESS: {"scale": [1.0, 2.0]}},
        "label_fractions": [0.1]}
    for cell in ("simclr-digits-s0", "random_init-digits-s0"):
        offline = json.loads((toy_sweep / cell / "offline_eval.json").read_text())
        assert list(offline) == ["offline_knn_top1@k10_T0.07", "offline_knn_best_top1", "offline_toy_top1@scale1",
                                 "offline_toy_top1@scale2", "offline_toy_best_top1", "offline_knn_top1@labels0.1",
                                 "offline_toy_top1@labels0.1"], cell
        assert offline["offline_toy_best_top1"] == max(offline["offline_toy_top1@scale1"],
                                                       offline["offline_toy_top1@scale2"])
        assert offline["offline_toy_top1@scale1"] == offline["offline_toy_top1@scale2"]  # a scale keeps the argmax
        assert 30 < offline["offline_toy_best_top1"] <= 100 and 10 < offline["offline_toy_top1@labels0.1"] <= 100


def test_toy_protocol_is_a_column_of_results_csv_and_md(toy_sweep, tmp_path):
    with (toy_sweep / "results.csv").open(newline="") as f:
        rows = {r["cell"]: r for r in csv.DictReader(f)}
    for cell, row in rows.items():
        assert row["status"] == "finished", cell
        offline = json.loads((toy_sweep / cell / "offline_eval.json").read_text())
        assert float(row["offline_toy_best_top1"]) == pytest.approx(offline["offline_toy_best_top1"])
    header = next(line for line in (toy_sweep / "results.md").read_text().splitlines() if line.startswith("| method"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    offline = [c for c in columns if c.startswith("offline_")]
    assert offline == ["offline_knn_best_top1", "offline_toy_best_top1", "offline_knn_top1@labels0.1",
                       "offline_toy_top1@labels0.1"]
    assert columns.index("val_knn_top1") < columns.index("offline_knn_best_top1")
    # `ssl-bench report` rebuilds the same table (here the registry holds toy; see the test below for a
    # process that has not imported the protocol)
    before = (toy_sweep / "results.md").read_text()
    assert main(["report", str(toy_sweep)]) == 0
    assert (toy_sweep / "results.md").read_text() == before


def test_a_protocol_this_process_has_not_imported_still_gets_its_column(monkeypatch):
    from ssl_bench.sweep.report import table_columns

    monkeypatch.delitem(PROTOCOLS, "toy")
    rows = [{"status": "finished", "val_knn_top1": 90.0, "offline_linear_top1": 80.0, "offline_knn_best_top1": 85.0,
             "offline_toy_best_top1": 70.0, "offline_toy_top1@scale1": 70.0, "offline_finetune_top1": 75.0,
             "offline_knn_top1@labels0.1": 60.0, "rankme": 3.0}]
    assert table_columns(rows) == ["val_knn_top1", "offline_knn_best_top1", "offline_linear_top1",
                                   "offline_finetune_top1", "offline_toy_best_top1", "offline_knn_top1@labels0.1",
                                   "rankme"]


def test_toy_protocol_is_in_eval_help_and_runs_from_the_cli(toy_sweep, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["eval", "--help"])
    assert stop.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "{knn,linear,finetune,vit_finetune,scan,toy}" in help_text and "toy: nearest class mean of the frozen features" in help_text
    assert "--scale SCALE [toy] logit scale of the cosine similarities (default 1.0)" in help_text
    for flag in ("--k K [knn]", "--temperature TEMPERATURE [knn]", "--epochs EPOCHS [linear, finetune, vit_finetune]"):
        assert flag in help_text  # the earlier flags; one --epochs for the protocols that take it

    run_dir = toy_sweep / "simclr-digits-s0"
    ckpt = str(run_dir / "checkpoints/last.ckpt")
    assert main(["eval", "--ckpt", ckpt, "--protocol", "toy", "--scale", "2"]) == 0
    assert ": toy top-1 " in capsys.readouterr().out
    (path,) = (run_dir / "evals").glob("toy-scale2-labels_all-*.json")
    result = json.loads(path.read_text())
    assert result["protocol"] == "toy" and result["protocol_class"] == ADDRESS and result["scale"] == 2.0
    assert set(result) >= {"toy_top1", "toy_top5", "data", "model", "label_fraction", "features_cached"}
    offline = json.loads((run_dir / "offline_eval.json").read_text())
    assert result["toy_top1"] == pytest.approx(offline["offline_toy_top1@scale2"])  # the same features and protocol
    # few labels, and the protocol by its import path (as a protocol nobody registered is given)
    assert main(["eval", "--ckpt", ckpt, "--protocol", ADDRESS, "--label-fraction", "0.1"]) == 0
    (few,) = (run_dir / "evals").glob("toy-scale1-labels0.1-*.json")
    assert json.loads(few.read_text())["toy_top1"] == pytest.approx(offline["offline_toy_top1@labels0.1"])
    assert "toy top-1" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--protocol", "toy", "--scale", "0"], "--scale 0.0: must be positive"),
    (["--protocol", "toy", "--k", "5"], "--k: not a setting of protocol toy (its settings: --scale)"),
    (["--protocol", "knn", "--scale", "2"],
     "--scale: not a setting of protocol knn (its settings: --k, --temperature)"),
    (["--protocol", "linear", "--temperature", "0.1"], "--temperature: not a setting of protocol linear"),
    (["--protocol", "knn", "--k", "0"], "--k 0: must be between 1"),
    (["--protocol", "nosuch"], "unknown protocol 'nosuch'; known: finetune, knn, linear, scan, toy, vit_finetune"),
    (["--protocol", "no_module.Protocol"], "cannot import protocol 'no_module.Protocol'"),
    (["--protocol", "ssl_bench.methods.SimCLR"],
     "protocol 'ssl_bench.methods.SimCLR' is not a subclass of EvalProtocol"),
])
def test_bad_protocol_or_setting_is_one_line_and_writes_nothing(toy_sweep, capsys, args, message):
    run_dir = toy_sweep / "simclr-digits-s0"
    before = sorted(p.name for p in run_dir.glob("evals/*.json"))
    assert main(["eval", "--ckpt", str(run_dir / "checkpoints/last.ckpt"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssl-bench: error:") and message in err and "\n" not in err, err
    assert sorted(p.name for p in run_dir.glob("evals/*.json")) == before


# ----------------------------------------------------------------------------- a sweep's eval section (checked first)
def _load(tmp_path, section):
    from ssl_bench.sweep.spec import load_spec

    return load_spec(write_spec(tmp_path / "s.yaml", eval=section), check_configs=False).eval


def test_eval_section_takes_protocols_by_name_or_import_path(tmp_path):
    expected = {"protocols": {ADDRESS: {"scale": [0.5]}}, "label_fractions": []}
    assert _load(tmp_path, {"toy": {"scale": 0.5}}) == expected
    assert _load(tmp_path, {ADDRESS: {"scale": [0.5]}}) == expected
    assert _load(tmp_path, {"protocols": {"toy": {"scale": [0.5]}}}) == expected
    assert _load(tmp_path, {"knn": None, "finetune": {"epochs": 2}, "knn_t": [0.1]}) == {
        "protocols": {"knn": {}, "finetune": {"epochs": 2}}, "label_fractions": []}  # knn_t alone: no k-NN, as before
    assert _load(tmp_path, {"knn_k": 20, "linear_epochs": 5, "label_fractions": 0.5}) == {
        "protocols": {"knn": {"k": [20], "temperature": [0.07]}, "linear": {"epochs": 5}}, "label_fractions": [0.5]}
    assert _load(tmp_path, {}) == {}


@pytest.mark.parametrize("section, message", [
    ({"tyo": {"scale": 1}}, "unknown eval key 'tyo'; allowed: knn_k, knn_t, label_fractions, linear_epochs, "
                            "protocols, a protocol (knn, linear, finetune, vit_finetune, scan, toy)"),
    ({"knn_kk": [10]}, "did you mean 'knn_k'?"),
    ({"toy": {"scael": 1}}, "sweep spec: eval.toy.scael: not a setting of protocol toy (its settings: scale); "
                            "did you mean 'scale'?"),
    ({"toy": {"scale": "big"}}, "sweep spec: eval.toy.scale: 'big' must be a number (a setting of protocol toy)"),
    ({"toy": {"scale": [1, -1]}}, "sweep spec: eval.toy.scale: -1 must be positive"),
    ({"toy": {"scale": [1, 1]}}, "sweep spec: eval.toy.scale: 1.0 is listed twice"),
    ({"toy": 3}, "sweep spec: eval.toy must be a mapping of protocol toy's settings (scale), got 3"),
    ({"linear": {"epochs": [5, 10]}}, "sweep spec: eval.linear.epochs: takes one value, got the list [5, 10] "
                                      "(linear: it takes no list)"),
    ({"knn": {"k": [0]}}, "sweep spec: eval.knn.k: 0 must be between 1"),
    ({"knn_k": [10], "knn": {"k": [5]}},
     "sweep spec: eval.knn: protocol knn is given twice (also as eval.knn_k/knn_t)"),
    ({"no_module.Protocol": {}}, "sweep spec: eval.no_module.Protocol: cannot import protocol 'no_module.Protocol'"),
    ({"protocols": [1]}, "sweep spec: eval.protocols must be a mapping"),
    ("knn", "sweep spec: eval must be a mapping"),
])
def test_bad_eval_section_is_one_line_naming_the_key(tmp_path, section, message):
    with pytest.raises(ValueError) as err:
        _load(tmp_path, section)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_protocol_another_process_cannot_import_is_refused_in_a_sweep(tmp_path, monkeypatch):
    local = type("Local", (NearestClassMean,), {"name": "local", "__module__": "__main__"})
    monkeypatch.setitem(PROTOCOLS, "local", local)
    with pytest.raises(ValueError, match=r"eval\.local: protocol local \(__main__\.Local\) cannot be imported by "
                                         r"another process"):
        _load(tmp_path, {"local": {}})


# ----------------------------------------------------------------------------- the registry's own checks
def test_registration_refuses_what_the_command_line_could_not_serve(monkeypatch):
    monkeypatch.setattr("ssl_bench.eval.registry.PROTOCOLS", dict(PROTOCOLS))

    def protocol(name, **settings):
        fields = {"__annotations__": {k: type(v) for k, v in settings.items()}, **settings}
        return type(name.title(), (EvalProtocol,), {"name": name, "Settings": dataclass(type("S", (), fields))})

    with pytest.raises(ValueError, match="protocol name 'toy' is taken by test_eval_registry.NearestClassMean"):
        register_protocol(protocol("toy"))
    with pytest.raises(TypeError, match="setting epochs is float here and int in protocol linear"):
        register_protocol(protocol("other", epochs=1.5))
    with pytest.raises(TypeError, match="setting name out is an ssl-bench eval option"):
        register_protocol(protocol("other", out="x"))
    with pytest.raises(TypeError, match="setting size has type"):
        register_protocol(protocol("other", size=(1, 2)))
    assert register_protocol(protocol("other", epochs=3)) is resolve_protocol("other")
