"""A sweep spec is checked before anything trains (``--dry-run`` included): each mistake ends in one
line naming the key, exit code 2, and no cell directory, record or metrics file; sweep values are
read as ``ssl-bench pretrain`` reads them (``1e-3`` is a float). No test here trains."""
import pytest

from ssl_bench.cli import main
from ssl_bench.sweep import runner
from ssl_bench.sweep.spec import load_spec
from helpers import QUIET_OVERRIDES, write_spec

MISTAKES = {
    "unknown_trainer_key": ({"overrides": {"trainer.max_epoch": 2, **QUIET_OVERRIDES}},
                            ["simclr-digits-s0", "(set by overrides)", "unknown key trainer.max_epoch ",
                             "did you mean 'max_epochs'"]),
    "wrong_trainer_type": ({"overrides": {"trainer.max_epochs": "two", **QUIET_OVERRIDES}},
                           ["simclr-digits-s0", "trainer.max_epochs must be", "'two'"]),
    "wrong_model_type_of_one_method": ({"methods": ["simclr", "byol"], "method_overrides": {"byol": {"model.lr": "fast"}}},
                                       ["byol-digits-s0", "(set by method_overrides.byol)", "model.lr must be float"]),
    "label_fraction_above_one": ({"eval": {"label_fractions": [0.1, 1.5]}},
                                 ["sweep spec: eval.label_fractions: 1.5 is not in (0, 1]"]),
    "knn_k_zero": ({"eval": {"knn_k": [10, 0]}}, ["eval.knn_k: 0 is not a positive integer"]),
    "knn_t_negative": ({"eval": {"knn_t": [0.07, -0.1]}}, ["eval.knn_t: -0.1 is not a positive number"]),
    "linear_epochs_word": ({"eval": {"linear_epochs": "fifty"}},
                           ["eval.linear_epochs must be a positive integer or null", "'fifty'"]),
    "method_override_for_unlisted_method": ({"method_overrides": {"byol": {"model.lr": 0.1}}},
                                            ["method_overrides.byol: 'byol' is not in methods (simclr)"]),
    "unknown_wandb_key": ({"wandb": {"enable": True}},
                          ["unknown wandb key(s) ['enable']", "enabled, project", "did you mean 'enabled'"]),
    "baseline_not_boolean": ({"baseline": "yes"}, ["baseline must be true or false, got 'yes'"]),
    "no_methods": ({"methods": []}, ["sweep spec: methods: empty"]),
    "seed_twice": ({"seeds": [0, 1, 0]}, ["sweep spec: seeds: 0 is listed twice"]),
    "method_twice": ({"methods": ["simclr", "byol", "simclr"]}, ["sweep spec: methods: simclr is listed twice"]),
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry_run"])
@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_spec_mistake_is_one_line_before_anything_runs(tmp_path, monkeypatch, capsys, case, dry_run):
    fields, expected = MISTAKES[case]
    monkeypatch.chdir(tmp_path)
    started = []
    monkeypatch.setattr(runner, "run_local", lambda *args: started.append(args))  # a cell must never start
    spec = write_spec(tmp_path, "bad", **{"methods": ["simclr"], "seeds": [0], **fields})
    out_dir = tmp_path / "out"
    assert main(["sweep", str(spec), "--dir", str(out_dir)] + (["--dry-run"] if dry_run else [])) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("ssl-bench: error: sweep spec") and "\n" not in err
    for text in expected:
        assert text in err, (text, err)
    assert "cells in" not in captured.out  # failed before the plan was printed
    assert not started and not out_dir.exists()  # no _sweep/cells, no cell directory, no metrics.csv
    assert not list(tmp_path.rglob("metrics.csv")) and not (tmp_path / "runs").exists()


def test_method_overrides_of_the_spec_file_may_name_a_method_left_out_by_methods_option(tmp_path):
    """``--methods simclr`` on a spec that lists (and overrides) byol too: still a valid sweep."""
    spec = write_spec(tmp_path, "subset", methods=["simclr", "byol"], seeds=[0],
                      method_overrides={"byol": {"model.lr": 0.5}})
    assert [c.name for c in load_spec(spec, methods=["simclr"]).cells] == ["simclr-digits-s0"]
    with pytest.raises(ValueError, match=r"method_overrides\.byol: 'byol' is not in methods \(swav\)"):
        load_spec(write_spec(tmp_path, "other", methods=["swav"], seeds=[0],
                             method_overrides={"byol": {"model.lr": 0.5}}), methods=["swav"])


def test_scientific_notation_reaches_the_cells_as_floats(tmp_path, monkeypatch):
    """``5e-2`` / ``1e-4`` in the spec file (YAML 1.1 reads them as strings) and ``--set
    model.lr=1e-3`` arrive in the planned cell configs as floats, as in ``ssl-bench pretrain``."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sci.yaml"
    path.write_text("name: sci\ndatasets: [digits]\nmethods: [simclr, byol]\nseeds: [0]\nbaseline: true\n"
                    "config: configs/{dataset}/{method}.yaml\n"
                    "overrides: {trainer.max_epochs: 1, model.weight_decay: 1e-4}\n"
                    "method_overrides: {simclr: {model.lr: 5e-2}, byol: {model.warmup_epochs: 2E+0}}\n")
    lrs = {}
    for cell in load_spec(path).cells:
        model = cell.config["model"]
        assert type(model["weight_decay"]) is float and model["weight_decay"] == 1e-4, cell.name
        lrs[cell.name] = model["lr"]
    assert lrs["simclr-digits-s0"] == 5e-2 and type(lrs["simclr-digits-s0"]) is float
    assert lrs["random_init-digits-s0"] == 5e-2  # the baseline: a copy of the first cell's config
    byol = next(c for c in load_spec(path).cells if c.method == "byol").config["model"]
    assert byol["warmup_epochs"] == 2.0 and type(byol["warmup_epochs"]) is float

    planned = []
    monkeypatch.setattr(runner, "print_plan", lambda spec, plan: planned.extend(c for c, _ in plan))
    assert main(["sweep", str(path), "--dir", str(tmp_path / "out"), "--dry-run",
                 "--set", "model.lr=1e-3", "--set", "trainer.max_epochs=2"]) == 0
    assert [c.name for c in planned] == ["simclr-digits-s0", "byol-digits-s0", "random_init-digits-s0"]
    for cell in planned:
        model = cell.config["model"]
        assert type(model["weight_decay"]) is float and model["weight_decay"] == 1e-4
        assert cell.config["trainer"]["max_epochs"] == 2
    for cell in planned:  # --set is applied last: it wins over simclr's method override (5e-2)
        assert cell.config["model"]["lr"] == 1e-3 and type(cell.config["model"]["lr"]) is float
    assert not (tmp_path / "out").exists()


def test_each_network_gets_its_own_random_init_row(tmp_path):
    """A method is compared with its own network untrained: SimCLR and BYOL share the tiny CNN (one
    row, ``random_init``); CMC's forward encodes L and ab apart, and MAE's, I-JEPA's and MoCo v3's
    ViTs differ in patch size, pooled feature or frozen patch projection: a row each, built from the
    first method's config that uses the network."""
    path = tmp_path / "mixed.yaml"
    path.write_text("name: mixed\ndatasets: [digits]\nmethods: [simclr, byol, cmc, mae, ijepa, mocov3]\nseeds: [0, 1]\n"
                    "config: configs/{dataset}/{method}.yaml\n")
    baselines = {c.name: c for c in load_spec(path).cells if c.is_baseline}
    rows = ["random_init", "random_init_for_cmc", "random_init_for_mae", "random_init_for_ijepa",
            "random_init_for_mocov3"]
    assert sorted(baselines) == sorted(f"{r}-digits-s{s}" for r in rows for s in (0, 1))
    for row, method in zip(rows, ["simclr", "cmc", "mae", "ijepa", "mocov3"]):
        cell = baselines[f"{row}-digits-s1"]
        assert cell.config["model"]["name"] == method and cell.config["run"]["seed"] == 1
        assert cell.method == row
