"""W&B in a sweep (offline): each cell is one W&B run, logged by the cell's own pretrain while it
trains, with the sweep's project and group, the cell's real config, and its offline evaluation added
to the same run; ``WANDB_DIR`` is where the files go; the report run replays no live cell.
One sweep (simclr on digits, 1 epoch, 1 seed, no baseline: the cell processes dominate the time), run once."""
import csv
import json
import os
import subprocess
import sys

import pytest
import yaml

from ssl_bench.sweep.runner import run_sweep
from ssl_bench.sweep.wandb_log import REPLAYED, _run_id, offline_summary, read_offline_records
from helpers import QUIET_OVERRIDES, REPO

CELL = "simclr-digits-s0"
PROJECT = "ssl-bench-sweep-test"


def offline_runs(root):
    """Every offline run folder under ``root``: its run record, config, history rows and summary."""
    runs = []
    for folder in sorted(root.rglob("offline-run-*")):
        records = read_offline_records(next(folder.glob("run-*.wandb")))
        kinds = [r.WhichOneof("record_type") for r in records]
        run = records[kinds.index("run")].run
        config = {i.key: json.loads(i.value_json) for i in run.config.update}
        for r in records:
            if r.WhichOneof("record_type") == "config":
                config.update({i.key: json.loads(i.value_json) for i in r.config.update})
        history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                   for r in records if r.WhichOneof("record_type") == "history"]
        runs.append({"folder": folder, "id": run.run_id, "name": run.display_name, "group": run.run_group,
                     "project": run.project, "job_type": run.job_type, "tags": list(run.tags), "config": config,
                     "history": history, "summary": offline_summary(folder)})
    return runs


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb_live")
    spec = {"name": "wb-live", "methods": ["simclr"], "datasets": ["digits"], "seeds": [0],
            "config": "configs/{dataset}/{method}.yaml", "baseline": False,
            "overrides": {"trainer.max_epochs": 1, **QUIET_OVERRIDES},
            "eval": {"knn_k": [10], "linear_epochs": None}, "wandb": {"enabled": True, "project": PROJECT}}
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    sweep, wandb_dir = root / "sweep", root / "wandb-files"
    wandb_dir.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DIR", str(wandb_dir))
        mp.setenv("SSL_BENCH_WANDB_TIMEOUT", "240")
        assert run_sweep(root / "spec.yaml", sweep_dir=sweep) == 0
    return {"sweep": sweep, "wandb_dir": wandb_dir, "runs": offline_runs(wandb_dir),
            "in_sweep": list(sweep.rglob("offline-run-*"))}


def test_files_go_to_wandb_dir(live):
    assert {r["folder"].parent for r in live["runs"]} == {live["wandb_dir"] / "wandb"}
    assert live["in_sweep"] == []  # neither <sweep>/wandb nor <run dir>/wandb
    assert sorted(r["name"] for r in live["runs"]) == [CELL, CELL, "wb-live-results"]


def test_cell_is_logged_while_it_trains(live):
    run_dir = live["sweep"] / CELL
    trained = [r for r in live["runs"] if r["name"] == CELL and r["history"]]
    assert len(trained) == 1
    history = trained[0]["history"]
    record = json.loads((live["sweep"] / "_sweep/cells" / f"{CELL}.json").read_text())
    stamps = [h["_timestamp"] for h in history]
    # logged between the cell's start and pretrain's summary.json (a replay would come after the sweep)
    assert record["started"] <= stamps[0] and stamps[-1] <= (run_dir / "summary.json").stat().st_mtime + 0.5
    runtimes = [h["_runtime"] for h in history]
    assert runtimes == sorted(runtimes) and runtimes[-1] > runtimes[0]  # rows at their own times, not one replay
    assert [h["_step"] for h in history] == list(range(len(history)))
    with (run_dir / "metrics.csv").open(newline="") as f:
        csv_steps = [int(row["step"]) for row in csv.DictReader(f)]
    assert [h["trainer/global_step"] for h in history] == csv_steps
    assert any("val_knn_top1" in h for h in history) and any("train_loss_step" in h for h in history)


def test_cell_run_has_the_cells_config_group_and_tags(live):
    cell_runs = [r for r in live["runs"] if r["name"] == CELL]
    for run in cell_runs:
        assert run["id"] == _run_id(live["sweep"], CELL)  # resumed by id: one W&B run once synced
        assert run["project"] == PROJECT and run["group"] == "wb-live" and run["job_type"] == "pretrain"
        assert run["tags"] == ["simclr", "digits", "seed0"]
        config = run["config"]
        assert config["run"]["logger"] == "wandb" and config["run"]["wandb_project"] == PROJECT
        assert config["run"]["name"] == CELL and config["run"]["seed"] == 0
        assert config["model"]["name"] == "simclr" and config["data"]["dataset"] == "digits"
        assert REPLAYED not in config and REPLAYED not in run["summary"]


def test_summary_holds_final_and_offline_eval_metrics(live):
    run_dir = live["sweep"] / CELL
    summary = json.loads((run_dir / "summary.json").read_text())
    offline = json.loads((run_dir / "offline_eval.json").read_text())
    trained, added = [r["summary"] for r in live["runs"] if r["name"] == CELL]  # in order of start
    assert trained["val_knn_top1"] == pytest.approx(summary["val_knn_top1"])  # pretrain's own summary
    # the part added after the offline evaluation holds the final summary on its own
    assert added["cell"] == CELL and added["seed"] == 0
    assert added["val_knn_top1"] == pytest.approx(summary["val_knn_top1"])
    assert added["global_step"] == summary["global_step"] and added["fit_seconds"] == summary["fit_seconds"]
    assert offline and all(added[k] == pytest.approx(v) for k, v in offline.items())


def test_report_run_replays_no_live_cell(live):
    (report,) = [r for r in live["runs"] if r["job_type"] == "report"]
    assert report["project"] == PROJECT and report["group"] == "wb-live"
    assert report["summary"]["cells_replayed_from_files"] == []
    assert report["summary"]["results/nrows"] == 1
    assert {r["id"] for r in live["runs"] if r["name"] == CELL} == {_run_id(live["sweep"], CELL)}


def test_without_wandb_dir_a_cell_logs_under_its_run_directory(live):
    """Adding a cell's results again (e.g. a relaunch) goes to its run, by id, in <run dir>/wandb."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_DIR"}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true")
    code = (f"from ssl_bench.sweep.wandb_log import log_cell_results; "
            f"assert log_cell_results({str(live['sweep'])!r}, {CELL!r}, {str(live['sweep'] / CELL)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO, timeout=120)
    (run,) = offline_runs(live["sweep"] / CELL / "wandb")
    assert run["id"] == _run_id(live["sweep"], CELL) and run["name"] == CELL and run["group"] == "wb-live"
    assert run["summary"]["offline_knn_best_top1"] > 50
