"""One sweep cell, run in its own process: ``python -m ssl_bench.sweep.cell SWEEP_DIR CELL ATTEMPT``.

Pretrains (resuming from ``checkpoints/last.ckpt`` when there is one; skipping when ``summary.json``
exists), then runs the sweep's offline evaluation on the cached features of the final checkpoint,
and writes the cell's record ``<sweep>/_sweep/cells/<cell>.json`` (status, one-line error, wall
time, peak memory). The random-init baseline cell evaluates the untrained backbone instead.
A cell whose config logs to W&B (``run.logger: wandb``) is one W&B run: its pretrain logs it live,
then its results are added to it (``wandb_log.cell_env``, ``wandb_log.log_cell_results``).

The local backend starts this module as a subprocess per cell, so a crash, a divergence or a kill
of one cell never takes the sweep down; the submitit backend calls ``run_cell`` inside its job.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..run_dir import OFFLINE_EVAL, write_atomic
from .baseline import is_baseline_cell
from .run_state import FINISHED, INTERRUPTED, last_checkpoint, run_state

OK, FAILED = "finished", "failed"
PARENT_PID_ENV = "SSL_BENCH_SWEEP_PID"  # set by the local runner: the cell stops when the sweep dies


def sweep_paths(sweep_dir: str | Path, cell: str) -> dict[str, Path]:
    meta = Path(sweep_dir) / "_sweep"
    return {"config": meta / "cells" / f"{cell}.yaml", "record": meta / "cells" / f"{cell}.json",
            "log": meta / "logs" / f"{cell}.log", "eval": meta / "eval.json", "run_dir": Path(sweep_dir) / cell}


def read_record(sweep_dir: str | Path, cell: str) -> dict[str, Any] | None:
    path = sweep_paths(sweep_dir, cell)["record"]
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_record(sweep_dir: str | Path, cell: str, record: dict[str, Any]) -> None:
    path = sweep_paths(sweep_dir, cell)["record"]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(record, indent=2))


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _peak_memory() -> dict[str, float | None]:
    kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    gpu = None
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            gpu = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return {"peak_rss_mb": round(kb / 1024, 1), "peak_gpu_mb": gpu}


def _pretrain(config_path: Path) -> None:
    """Pretrain the cell with ``run.resume auto``, which is safe in every run-directory state: it
    starts an absent run and continues a partial one (also one that failed before a checkpoint)."""
    from ..config import apply_overrides, load_config
    from ..pretrain import pretrain, summary_line

    cfg = apply_overrides(load_config(config_path), ["--run.resume", "auto"])
    summary = pretrain(cfg)
    if summary.get("is_global_zero", True):
        print(summary_line(summary), flush=True)


def _wandb_run(sweep_dir: str | Path, cell: str, config_path: Path) -> dict[str, Any] | None:
    """The cell's W&B run (``wandb_log.cell_run``) when its config logs to W&B, else None."""
    from ..config import load_config
    from .wandb_log import cell_run, logs_live

    cfg = load_config(config_path)
    return cell_run(sweep_dir, cell, cfg) if logs_live(cfg) else None


def _offline_eval(run_dir: Path, config_path: Path, settings: dict[str, Any], random_init: bool) -> dict[str, Any]:
    """The sweep's ``eval:`` section (``_sweep/eval.json``: its protocols, each on every combination
    of its grid, and again per label fraction; ``evaluate.evaluate_grid``) on the cached features of
    the final checkpoint; the baseline's summary.json from them. A protocol of another package is
    imported here by its import path (``spec.check_eval`` wrote it)."""
    from ..config import init_parameters
    from ..eval import EvalTarget, evaluate_grid
    from ..eval.knn import knn_scores
    from ..methods import BaseMethod
    from .spec import check_eval

    section = check_eval(settings)  # also reads an eval.json written before the registry (knn_k, ...)
    ckpt = None if random_init else last_checkpoint(run_dir)
    target = EvalTarget(ckpt, config_path, random_init=random_init)
    target.run_dir = run_dir
    grid = evaluate_grid(target, section.get("protocols", {}), section.get("label_fractions", []))
    write_atomic(run_dir / OFFLINE_EVAL, json.dumps(grid, indent=2))
    if random_init:
        params = init_parameters(BaseMethod)
        k = target.cfg["model"].get("knn_k", params["knn_k"].default)
        t = target.cfg["model"].get("knn_temperature", params["knn_temperature"].default)
        fs, _ = target.features()
        acc = knn_scores(fs, target.dm.num_classes, k, t)
        summary = {"method": "random_init", "dataset": target.cfg["data"]["dataset"], "run_dir": str(run_dir),
                   "epochs": 0, "global_step": 0, "fit_seconds": 0.0, "val_knn_top1": acc[1],
                   "val_knn_top5": acc[5], "val_linear_top1": None,  # no online probe: see offline_linear_top1
                   "backbone": target.cfg["model"].get("backbone")}
        from ..config import dump_config

        dump_config(target.cfg, run_dir / "config.yaml")
        write_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
    return grid


def run_cell(sweep_dir: str | Path, cell: str, attempt: str = "") -> dict[str, Any]:
    """Run (or finish) one cell and write its record; never raises for a failure of the cell.

    The cell holds its run directory's lock (``locking.hold``) throughout: a cell process still alive
    from an earlier launch (an orphan of a killed sweep) is named in the new attempt's error instead
    of being trained beside."""
    from ..distributed import is_launch_rank_zero
    from ..errors import RunDirectoryError
    from ..locking import hold

    if not is_launch_rank_zero():  # a DDP cell's other ranks: rank 0's process holds the directory
        return _run_locked_cell(sweep_dir, cell, attempt)
    try:
        with hold(sweep_paths(sweep_dir, cell)["run_dir"], "sweep cell directory"):
            return _run_locked_cell(sweep_dir, cell, attempt)
    except RunDirectoryError as err:
        record = {"cell": cell, "attempt": attempt, "status": FAILED, "error": one_line(err),
                  "host": platform.node(), "ended": time.time()}
        print(f"ssl-bench: error: {record['error']}", file=sys.stderr)
        write_record(sweep_dir, cell, record)
        return record


def _run_locked_cell(sweep_dir: str | Path, cell: str, attempt: str) -> dict[str, Any]:
    paths = sweep_paths(sweep_dir, cell)
    run_dir = paths["run_dir"]
    settings = json.loads(paths["eval"].read_text()) if paths["eval"].is_file() else {}
    random_init = is_baseline_cell(cell)
    state = run_state(run_dir)
    record: dict[str, Any] = {"cell": cell, "attempt": attempt, "status": "running", "host": platform.node(),
                              "started": time.time(), "state_before": state}
    if state == INTERRUPTED:
        import torch

        ckpt = torch.load(last_checkpoint(run_dir), map_location="cpu", weights_only=True)  # type: ignore[arg-type]
        record["resumed_from_epoch"] = int(ckpt.get("epoch", -1)) + 1
    write_record(sweep_dir, cell, record)
    start = time.perf_counter()
    try:
        from ..errors import USAGE_ERRORS
        from ..terminal import quiet_libraries

        quiet_libraries()
        try:
            wandb_run = _wandb_run(sweep_dir, cell, paths["config"])
            if not random_init and state != FINISHED:
                from .wandb_log import cell_env

                with cell_env(wandb_run) if wandb_run else contextlib.nullcontext():  # pretrain logs it live
                    _pretrain(paths["config"])
            if settings or random_init:
                if random_init or not (run_dir / OFFLINE_EVAL).is_file():
                    _offline_eval(run_dir, paths["config"], settings, random_init)
            if wandb_run and (random_init or (run_dir / OFFLINE_EVAL).is_file()):
                from .wandb_log import log_cell_results

                log_cell_results(sweep_dir, cell, run_dir)  # into the same W&B run, resumed by id
            record.update(status=OK, error=None)
        except USAGE_ERRORS as err:
            record.update(status=FAILED, error=one_line(err))
            print(f"ssl-bench: error: {record['error']}", file=sys.stderr)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (pretrain's Stopped): kept to resume, not failed
        record.update(status=INTERRUPTED, error=one_line(err) if str(err) else "interrupted")
        print(f"ssl-bench: {record['error']}", file=sys.stderr)
    except Exception as err:  # a crash of the cell: recorded, the sweep goes on
        traceback.print_exc()
        record.update(status=FAILED, error=f"{type(err).__name__}: {one_line(err)}")
    record.update(wall_s=round(time.perf_counter() - start, 2), ended=time.time(), **_peak_memory())
    write_record(sweep_dir, cell, record)
    return record


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the process that started this cell dies (Linux
    ``PR_SET_PDEATHSIG``): a ``kill -9`` of the sweep stops its cell (which checkpoints on SIGTERM)
    instead of leaving it training under PID 1. Exits at once if that parent is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:
        sys.exit(f"ssl-bench: the sweep that started this cell (pid {parent_pid}) is gone")


def main(argv: list[str] | None = None) -> int:
    if os.environ.get(PARENT_PID_ENV):  # the sweep; for a DDP cell's other ranks, rank 0's cell process
        from ..distributed import is_launch_rank_zero

        die_with_parent(int(os.environ[PARENT_PID_ENV]) if is_launch_rank_zero() else os.getppid())
    sweep_dir, cell, attempt = (argv if argv is not None else sys.argv[1:])[:3]
    record = run_cell(sweep_dir, cell, attempt)
    return {OK: 0, INTERRUPTED: 130}.get(record["status"], 1)


if __name__ == "__main__":
    sys.exit(main())
