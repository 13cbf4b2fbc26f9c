"""``ssl-bench sweep SPEC.yaml``: plan the cells, run the ones not finished, collect the results.

Where cells run (``launch.backend``):
- ``local`` (default): one cell after another, each in its own process
  (``python -m ssl_bench.sweep.cell``), in the sweep's process group; with several GPUs, one cell per
  GPU at once (``--parallel N``, ``CUDA_VISIBLE_DEVICES`` per slot). A cell that asks for
  ``trainer.devices: N`` and ``trainer.strategy: ddp`` is one Lightning DDP run on N devices
  (Lightning's own launcher, so torchrun and SLURM environments work as Lightning supports them);
  such sweeps run one cell at a time by default.
- ``submitit``: the cells go to SLURM as one job array through submitit (``launch.submitit``: e.g.
  ``{cluster: slurm, slurm_partition: gpu, timeout_min: 600, gpus_per_node: 1}``), or to
  submitit's local executor (``cluster: local``) on a laptop; every job writes into the shared
  sweep directory, which the collector then reads.

A finished cell (``summary.json``) is skipped, an interrupted one (``checkpoints/last.ckpt``)
resumes, a failed one is recorded with its one-line error and the sweep goes on.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .. import locking
from ..config import dump_config
from ..errors import ConfigError
from ..run_dir import OFFLINE_EVAL, write_atomic
from .cell import FAILED, OK, PARENT_PID_ENV, read_record, sweep_paths, write_record
from .run_state import FINISHED, INTERRUPTED, run_state
from .progress import Progress
from .spec import Cell, Spec, load_spec


def cell_plan(spec: Spec) -> list[tuple[Cell, str]]:
    """Each cell with what a launch would do to it: skip / evaluate / resume / run / retry."""
    plan = []
    evaluating = bool(spec.eval)
    for cell in spec.cells:
        run_dir = spec.dir / cell.name
        state = run_state(run_dir)
        record = read_record(spec.dir, cell.name) or {}
        if state == FINISHED and (not evaluating or (run_dir / OFFLINE_EVAL).is_file()):
            action = "done"
        elif state == FINISHED:
            action = "evaluate"
        elif state == INTERRUPTED:
            action = "resume"
        elif record.get("status") == FAILED:
            action = f"retry (failed: {record.get('error')})"
        else:
            action = "run"
        plan.append((cell, action))
    return plan


def print_plan(spec: Spec, plan: list[tuple[Cell, str]]) -> None:
    todo = sum(a != "done" for _, a in plan)
    print(f"sweep {spec.name}: {len(plan)} cells in {spec.dir} ({len(plan) - todo} done, {todo} to run)")
    for cell, action in plan:
        epochs = 0 if cell.is_baseline else cell.config["trainer"].get("max_epochs", "-")
        print(f"  {cell.name:<40} {action:<10} epochs={epochs} config={cell.source}", flush=True)


def prepare(spec: Spec) -> None:
    """Write the cells' configs and the evaluation settings into ``<sweep>/_sweep``."""
    meta = spec.dir / "_sweep"
    (meta / "cells").mkdir(parents=True, exist_ok=True)
    (meta / "logs").mkdir(parents=True, exist_ok=True)
    for cell in spec.cells:
        dump_config(cell.config, sweep_paths(spec.dir, cell.name)["config"])
    write_atomic(meta / "eval.json", json.dumps(spec.eval, indent=2))
    write_atomic(meta / "sweep.json", json.dumps({"name": spec.name, "spec": str(spec.path),
                                                 "cells": [c.name for c in spec.cells], "wandb": spec.wandb},
                                                indent=2))


# ----------------------------------------------------------------------------- local backend
def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def _wait_any(running: dict[str, dict[str, Any]]) -> tuple[str, int, float] | None:
    """Reap one finished cell process without blocking: (cell, exit status, peak RSS in MB)."""
    for name, slot in running.items():
        pid, status, usage = os.wait4(slot["proc"].pid, os.WNOHANG)
        if pid:
            slot["proc"].returncode = os.waitstatus_to_exitcode(status)
            return name, slot["proc"].returncode, usage.ru_maxrss / 1024
    return None


def run_local(spec: Spec, todo: list[tuple[Cell, str]], parallel: int | None) -> None:
    gpus = _gpu_count()
    multi_device = any(str(c.config["trainer"].get("devices", 1)) not in ("1", "None") for c, _ in todo)
    slots = parallel or (gpus if gpus > 1 and not multi_device else 1)
    progress = Progress(len(todo))
    queue = list(enumerate(todo, 1))
    running: dict[str, dict[str, Any]] = {}
    free_gpus = list(range(gpus))
    try:
        _run_queue(spec, queue, running, slots, free_gpus, progress)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_stop_cells(spec, running)) from None


def _stop_cells(spec: Spec, running: dict[str, dict[str, Any]], grace_s: float = 60.0) -> str:
    """Ctrl-C: the cells are in the sweep's process group, so a terminal's Ctrl-C reached them too and
    they stop at their next step, keeping their checkpoints. A cell still running a few seconds later
    (the sweep alone was interrupted) gets SIGTERM, which stops it the same way (a second SIGINT
    could break Lightning's own shutdown). Waits for the cells to record it; returns the CLI's line."""
    for signum, wait_s in ((None, 5.0), (signal.SIGTERM, grace_s)):
        deadline = time.time() + wait_s
        for slot in running.values():
            if signum is not None and slot["proc"].poll() is None:
                slot["proc"].send_signal(signum)
        while time.time() < deadline and any(slot["proc"].poll() is None for slot in running.values()):
            time.sleep(0.1)
    for name, slot in running.items():
        if slot["proc"].poll() is None:
            slot["proc"].kill()
            slot["proc"].wait()
        slot["log"].close()
        record = read_record(spec.dir, name) or {}
        if record.get("attempt") != slot["attempt"] or record.get("status") == "running":
            write_record(spec.dir, name, {**record, "cell": name, "attempt": slot["attempt"], "status": INTERRUPTED,
                                          "error": "interrupted", "ended": time.time()})
    names = ", ".join(running) or "no cell was running"
    return (f"sweep {spec.name} interrupted ({names}); finished cells and checkpoints are kept: run the same "
            f"command again to go on")


def _run_queue(spec: Spec, queue: list, running: dict[str, dict[str, Any]], slots: int, free_gpus: list[int],
               progress: Progress) -> None:
    while queue or running:
        while queue and len(running) < slots:
            index, (cell, action) = queue.pop(0)
            paths = sweep_paths(spec.dir, cell.name)
            attempt = uuid.uuid4().hex[:12]
            env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
            gpu = free_gpus.pop(0) if slots > 1 and free_gpus else None
            if gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = str(gpu)
            progress.start(cell, action, index)
            log = paths["log"].open("a")
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {action} (attempt {attempt})\n")
            log.flush()
            proc = subprocess.Popen([sys.executable, "-m", "ssl_bench.sweep.cell", str(spec.dir), cell.name, attempt],
                                    stdout=log, stderr=subprocess.STDOUT, env=env)
            running[cell.name] = {"proc": proc, "cell": cell, "index": index, "attempt": attempt, "log": log,
                                  "gpu": gpu, "started": time.time()}
        reaped = _wait_any(running)
        if reaped is None:
            progress.heartbeat({n: (s["cell"], s["started"]) for n, s in running.items()}, spec.dir)
            time.sleep(0.2)
            continue
        name, code, rss_mb = reaped
        slot = running.pop(name)
        slot["log"].close()
        if slot["gpu"] is not None:
            free_gpus.append(slot["gpu"])
        record = read_record(spec.dir, name) or {}
        if record.get("attempt") != slot["attempt"] or record.get("status") not in (OK, FAILED, INTERRUPTED):
            # the cell process died before it could write its record (killed, out of memory, segfault)
            record = {**record, "cell": name, "attempt": slot["attempt"], "status": FAILED,
                      "error": f"cell process exited with code {code} (see {sweep_paths(spec.dir, name)['log']})"}
        record.update(exit_code=code, runner_wall_s=round(time.time() - slot["started"], 2),
                      peak_rss_mb=max(record.get("peak_rss_mb") or 0, round(rss_mb, 1)),
                      run_dir=str(spec.dir / name))
        write_record(spec.dir, name, record)
        progress.end(slot["cell"], record, slot["index"], len(running) + 1)


# ----------------------------------------------------------------------------- entry point
def run_sweep(spec_path: str | Path, sweep_dir: str | Path | None = None, dry_run: bool = False,
              backend: str | None = None, parallel: int | None = None, only: str | None = None,
              methods: list[str] | None = None, seeds: list[int] | None = None,
              overrides: dict[str, Any] | None = None) -> int:
    """Run a sweep; returns the CLI exit code (0 when every cell finished, 1 when some failed)."""
    spec = load_spec(spec_path, sweep_dir, methods=methods, seeds=seeds, extra_overrides=overrides)
    if only:
        spec.cells = [c for c in spec.cells if only in c.name]
        if not spec.cells:
            raise ConfigError(f"--only {only}: no cell name contains it")
    plan = cell_plan(spec)
    print_plan(spec, plan)
    if dry_run:
        return 0
    with locking.hold(spec.dir, "sweep directory"):  # a second sweep on this directory: one line naming this one
        return _launch(spec, plan, backend, parallel)


def _launch(spec: Spec, plan: list[tuple[Cell, str]], backend: str | None, parallel: int | None) -> int:
    """Run the cells of ``plan`` that are not done, then write the report; returns the exit code."""
    prepare(spec)
    todo = [(c, a) for c, a in plan if a != "done"]  # every cell's config was checked by load_spec
    backend = backend or spec.launch.get("backend", "local")
    if todo and backend == "submitit":
        from .submit import run_submitit

        run_submitit(spec, todo)
    elif todo:
        run_local(spec, todo, parallel if parallel is not None else spec.launch.get("parallel"))
    from .publish import build_report

    paths = build_report(spec.dir, wandb=bool(spec.wandb.get("enabled")))
    failed = [c.name for c in spec.cells if (read_record(spec.dir, c.name) or {}).get("status") == FAILED
              and run_state(spec.dir / c.name) != FINISHED]
    print(f"sweep {spec.name}: {len(spec.cells) - len(failed)}/{len(spec.cells)} cells finished"
          + (f"; failed: {', '.join(failed)}" if failed else "") + f"; wrote {', '.join(str(p) for p in paths)}")
    return 1 if failed else 0
