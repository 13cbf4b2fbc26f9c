"""`ssl-bench sweep` / `ssl-bench report` end to end on digits (tiny CNN, 1 epoch per cell):
results table and plots, skipping finished cells, resuming after SIGKILL of the process tree,
failed cells recorded while the others finish, submitit's local executor, W&B offline, and the
offline evaluation (cached features) of the sweep's checkpoints."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO
from ssl_bench.eval import features
from ssl_bench.cli import main
from ssl_bench.eval import evaluate
from ssl_bench.sweep.runner import run_sweep
from ssl_bench.sweep.wandb_log import offline_summary

QUIET = {"trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}
METRICS = ("val_knn_top1", "val_linear_top1", "train_loss", "rankme", "offline_knn_best_top1",
           "offline_linear_top1", "offline_knn_top1@labels0.1", "global_step")


def read_rows(path):
    with open(path, newline="") as f:
        return {r["cell"]: r for r in csv.DictReader(f)}


def write_spec(tmp_path, name, **fields):
    spec = {"name": name, "datasets": ["digits"], "config": "configs/{dataset}/{method}.yaml",
            "overrides": {"trainer.max_epochs": 1, **QUIET}, "baseline": False, **fields}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def digits_sweep(tmp_path_factory):
    """The example spec (2 methods x 2 seeds + random-init baseline, offline eval grid), run once."""
    out = tmp_path_factory.mktemp("sweep") / "digits-small"
    assert run_sweep(REPO / "configs/sweeps/digits-small.yaml", sweep_dir=out) == 0
    return out


def test_sweep_writes_results_table_and_plots(digits_sweep):
    rows = read_rows(digits_sweep / "results.csv")
    trained = {c: r for c, r in rows.items() if r["method"] != "random_init"}
    assert sorted(trained) == ["byol-digits-s0", "byol-digits-s1", "simclr-digits-s0", "simclr-digits-s1"]
    assert sorted(c for c in rows if c not in trained) == ["random_init-digits-s0", "random_init-digits-s1"]
    for row in rows.values():
        assert row["status"] == "finished" and row["dataset"] == "digits"
        assert float(row["offline_knn_best_top1"]) > 50 and float(row["peak_rss_mb"]) > 0
    for row in trained.values():
        assert row["epochs"] == "1" and row["batch_size"] and float(row["train_images_per_s"]) > 0
        assert all(row[m] != "" for m in METRICS)
    md = (digits_sweep / "results.md").read_text()
    assert "## digits" in md and "| random init (baseline) | 2 |" in md and "**" in md
    assert "| simclr | 2 |" in md and " +- " in md
    for png in ("final_accuracy.png", "curves_digits.png"):
        assert (digits_sweep / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_second_launch_skips_every_cell(repo, digits_sweep, capsys):
    before = {p: p.stat().st_mtime_ns for p in digits_sweep.glob("*/checkpoints/last.ckpt")}
    start = time.perf_counter()
    assert run_sweep(repo / "configs/sweeps/digits-small.yaml", sweep_dir=digits_sweep) == 0
    out = capsys.readouterr().out
    assert "(6 done, 0 to run)" in out and "[1/" not in out
    assert {p: p.stat().st_mtime_ns for p in digits_sweep.glob("*/checkpoints/last.ckpt")} == before
    assert time.perf_counter() - start < 20  # no cell process started


def test_dry_run_shows_the_plan(repo, digits_sweep, tmp_path, capsys):
    shutil.copytree(digits_sweep, tmp_path / "s", ignore=shutil.ignore_patterns("wandb"))
    (tmp_path / "s/byol-digits-s1/summary.json").unlink()  # as if killed after its last checkpoint
    shutil.rmtree(tmp_path / "s/simclr-digits-s1")
    assert main(["sweep", str(repo / "configs/sweeps/digits-small.yaml"), "--dir", str(tmp_path / "s"), "--dry-run"]) == 0
    plan = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert plan == {"simclr-digits-s0": "done", "simclr-digits-s1": "run", "byol-digits-s0": "done",
                    "byol-digits-s1": "resume", "random_init-digits-s0": "done", "random_init-digits-s1": "done"}


def test_report_rebuilds_from_run_directories_alone(digits_sweep, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(digits_sweep, copy, ignore=shutil.ignore_patterns("_sweep", "results.*", "plots", "wandb"))
    assert main(["report", str(copy)]) == 0
    original, rebuilt = read_rows(digits_sweep / "results.csv"), read_rows(copy / "results.csv")
    assert set(rebuilt) == set(original)
    for cell, row in rebuilt.items():
        assert all(row[m] == original[cell][m] for m in METRICS if m in row), cell
    assert (copy / "results.md").is_file() and (copy / "plots/final_accuracy.png").is_file()


def test_offline_knn_from_cached_features_equals_online(digits_sweep):
    """The offline k-NN of a sweep checkpoint equals the online k-NN of its last validation; the
    second evaluation reads the cached features (no forward pass) and is faster."""
    run = digits_sweep / "simclr-digits-s0"
    shutil.rmtree(run / "features")
    online = json.loads((run / "summary.json").read_text())["val_knn_top1"]
    before = features.EXTRACTIONS
    t0 = time.perf_counter()
    first = evaluate(run / "checkpoints/last.ckpt", "knn", k=20, temperature=0.07)
    t1 = time.perf_counter()
    assert features.EXTRACTIONS == before + 2 and not first["features_cached"]
    assert first["knn_top1"] == pytest.approx(online, abs=1e-4)
    second = evaluate(run / "checkpoints/last.ckpt", "knn", k=10, temperature=0.2)
    t2 = time.perf_counter()
    assert features.EXTRACTIONS == before + 2 and second["features_cached"]
    assert t2 - t1 < t1 - t0
    # each setting has its own result file, recording the settings
    files = sorted((run / "evals").glob("knn-*.json"))
    assert [f.name.split("-labels")[0] for f in files] == ["knn-k10-T0.2", "knn-k20-T0.07"]
    assert json.loads(files[1].read_text())["data"]["dataset"] == "digits"


def test_wandb_offline_holds_summaries_and_results_table(digits_sweep, tmp_path, monkeypatch):
    copy = tmp_path / "w"
    shutil.copytree(digits_sweep, copy, ignore=shutil.ignore_patterns("wandb"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("SSL_BENCH_WANDB_TIMEOUT", "240")
    assert main(["report", str(copy), "--wandb"]) == 0
    summaries = {}
    for run in (copy / "wandb").glob("offline-run-*"):
        summary = offline_summary(run)
        summaries[summary.get("cell", "results")] = summary
    rows = read_rows(copy / "results.csv")
    for cell, row in rows.items():  # the sweep ran without W&B: each cell is replayed from its files, and says so
        assert summaries[cell]["val_knn_top1"] == pytest.approx(float(row["val_knn_top1"]))
        assert summaries[cell]["replayed_from_files"] is True
    assert summaries["results"]["results/nrows"] == len(rows)
    assert sorted(summaries["results"]["cells_replayed_from_files"]) == sorted(rows)
    tables = list((copy / "wandb").glob("offline-run-*/files/media/table/results_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert "val_knn_top1" in table["columns"] and len(table["data"]) == len(rows)
    assert list((copy / "wandb").glob("offline-run-*/files/media/images/plots/final_accuracy_*.png"))


def test_submitit_local_executor_gives_the_same_rows(repo, digits_sweep, tmp_path):
    """The same cells as job arrays through submitit's local executor: identical metrics (the
    SimCLR cells; digits, deterministic CPU kernels, one thread per process)."""
    spec = yaml.safe_load((repo / "configs/sweeps/digits-small.yaml").read_text())
    spec["launch"] = {"backend": "submitit", "submitit": {"cluster": "local", "timeout_min": 10}}
    path = tmp_path / "digits-small.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert run_sweep(path, sweep_dir=tmp_path / "sub", only="simclr") == 0
    assert list((tmp_path / "sub/_sweep/submitit").glob("*_log.out"))
    ours, reference = read_rows(tmp_path / "sub/results.csv"), read_rows(digits_sweep / "results.csv")
    assert sorted(ours) == ["simclr-digits-s0", "simclr-digits-s1"]
    for cell, row in ours.items():
        assert row["status"] == "finished"
        for m in METRICS:
            assert float(row[m]) == pytest.approx(float(reference[cell][m]), rel=1e-5), (cell, m)


def test_sigkill_then_relaunch_resumes_from_checkpoints(repo, tmp_path):
    spec = write_spec(tmp_path, "kill", methods=["simclr"], seeds=[0, 1],
                      overrides={"trainer.max_epochs": 2, **QUIET})
    sweep_dir = tmp_path / "kill"
    proc = subprocess.Popen([sys.executable, "-m", "ssl_bench.cli", "sweep", str(spec), "--dir", str(sweep_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            cwd=repo)
    ckpt = sweep_dir / "simclr-digits-s0/checkpoints/last.ckpt"
    deadline = time.time() + 120
    while not ckpt.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its cell process
    proc.wait()
    assert ckpt.is_file() and not (sweep_dir / "simclr-digits-s0/summary.json").is_file()
    assert run_sweep(spec, sweep_dir=sweep_dir) == 0
    record = json.loads((sweep_dir / "_sweep/cells/simclr-digits-s0.json").read_text())
    assert record["state_before"] == "interrupted" and record["resumed_from_epoch"] == 1
    rows = read_rows(sweep_dir / "results.csv")
    assert sorted(rows) == ["simclr-digits-s0", "simclr-digits-s1"]
    assert all(r["status"] == "finished" and r["epochs"] == "2" for r in rows.values())


def test_broken_cell_is_recorded_and_the_others_finish(repo, tmp_path, capsys):
    """A cell that fails when it runs (here: a backbone name only the cell's build checks; a wrong key
    or type is refused for the whole spec before anything runs, tests/test_sweep_spec.py)."""
    spec = write_spec(tmp_path, "broken", methods=["byol", "simclr"], seeds=[0],
                      method_overrides={"byol": {"model.backbone": "no_such_net"}})
    assert main(["sweep", str(spec), "--dir", str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "byol-digits-s0: FAILED:" in out and "no_such_net" in out
    rows = read_rows(tmp_path / "b/results.csv")
    assert rows["byol-digits-s0"]["status"] == "failed" and "no_such_net" in rows["byol-digits-s0"]["error"]
    assert rows["simclr-digits-s0"]["status"] == "finished"
    assert "byol-digits-s0 | failed |" in (tmp_path / "b/results.md").read_text()


@pytest.mark.parametrize("spec, message", [
    ({"methods": ["simclr"]}, "'datasets' is required"),
    ({"methods": ["simclr"], "datasets": ["digits"], "seeds": ["a"]}, "seeds must be integers"),
    ({"methods": ["simclr"], "datasets": ["digits"], "sedes": [0]}, "unknown key(s) ['sedes']"),
    ({"methods": ["nope"], "datasets": ["digits"]}, "no config for method 'nope'"),
    ({"methods": ["simclr"], "datasets": ["digits"], "overrides": {"max_epochs": 1}}, "must look like"),
    ({"methods": ["simclr"], "datasets": ["digits"], "launch": {"backend": "k8s"}}, "launch.backend must be"),
])
def test_bad_spec_is_one_line(tmp_path, capsys, spec, message):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssl-bench: error:") and message in err and "\n" not in err


def test_all_methods_reads_the_registry(repo, tmp_path, monkeypatch):
    """`methods: all` expands to every registered method when the sweep starts (a method registered
    later is picked up; one without a config file uses fallback_config with its own defaults)."""
    from ssl_bench.methods import METHODS, SimCLR
    from ssl_bench.sweep.spec import load_spec

    class NewMethod(SimCLR):
        pass

    monkeypatch.setitem(METHODS, "new_method", NewMethod)
    path = write_spec(tmp_path, "all", methods="all", seeds=[0], fallback_config="configs/{dataset}/simclr.yaml",
                      soft_overrides={"model.proj_dim": 32, "model.pred_hidden_dim": 16})
    spec = load_spec(path)
    assert [c.method for c in spec.cells] == sorted(METHODS)
    by_method = {c.method: c.config for c in spec.cells}
    assert by_method["new_method"]["model"]["name"] == "new_method"
    assert by_method["new_method"]["model"]["backbone"] == "tiny_cnn"
    assert by_method["simclr"]["model"]["proj_dim"] == 32 and "pred_hidden_dim" not in by_method["simclr"]["model"]
    assert by_method["byol"]["model"]["pred_hidden_dim"] == 16


def test_wandb_that_stalls_is_stopped_and_the_report_still_written(digits_sweep, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "stall"
    shutil.copytree(digits_sweep, copy, ignore=shutil.ignore_patterns("wandb"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("SSL_BENCH_WANDB_TIMEOUT", "0.5")  # shorter than the child's start: a "hang"
    assert main(["report", str(copy), "--wandb"]) == 0
    assert "W&B logging took over 0.5 s and was stopped" in capsys.readouterr().err
    assert (copy / "results.csv").is_file()
