"""Log a sweep directory to Weights & Biases: one run per cell, grouped by sweep, plus a report run.

Each cell becomes a W&B run named after the cell (group = the sweep's name, job type
``pretrain``), with its resolved config, its ``metrics.csv`` history, and the cell's row of
``results.csv`` as the run summary; a ``<sweep>-results`` run (job type ``report``) holds the
results table as a ``wandb.Table`` and the plots as images. W&B's own modes apply
(``WANDB_MODE=offline`` writes ``<sweep>/wandb/offline-run-*``; sync later with ``wandb sync``).

It runs in a child process with a time limit (``SSL_BENCH_WANDB_TIMEOUT``, default 300 s), so a
hanging network or a W&B error prints one warning line and never fails or stalls the sweep.
Run ids are derived from the sweep directory and cell, so logging again updates the same runs.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def _run_id(sweep_dir: Path, name: str) -> str:
    return hashlib.sha1(f"{sweep_dir.resolve()}::{name}".encode()).hexdigest()[:16]


def _number(value: str) -> float | str | None:
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else None


def _read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _log(sweep_dir: Path, project: str, group: str) -> None:
    import wandb

    rows = _read_csv(sweep_dir / "results.csv")
    settings = wandb.Settings(silent=True, init_timeout=60)
    for row in rows:
        cell = str(row["cell"])
        config_path = sweep_dir / cell / "config.yaml"
        config = yaml.safe_load(config_path.read_text()) if config_path.is_file() else {}
        run = wandb.init(project=project, group=group, name=cell, job_type="pretrain", dir=str(sweep_dir),
                         id=_run_id(sweep_dir, cell), resume="allow", config=config, settings=settings,
                         reinit="finish_previous")
        for step_row in _read_csv(sweep_dir / cell / "metrics.csv"):
            metrics = {k: v for k, v in step_row.items() if isinstance(v, float) and k != "step"}
            if metrics and step_row.get("step") is not None:
                run.log(metrics, step=int(step_row["step"]))
        run.summary.update({k: v for k, v in row.items() if v is not None})
        run.finish()
    run = wandb.init(project=project, group=group, name=f"{group}-results", job_type="report", dir=str(sweep_dir),
                     id=_run_id(sweep_dir, "results"), resume="allow", settings=settings,
                     reinit="finish_previous")
    if rows:
        columns = list(rows[0])
        run.log({"results": wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])})
    images = {f"plots/{p.stem}": wandb.Image(str(p)) for p in sorted((sweep_dir / "plots").glob("*.png"))}
    if images:
        run.log(images)
    run.finish()


def log_to_wandb(sweep_dir: str | Path, project: str = "ssl-bench", group: str | None = None) -> bool:
    """Log in a child process; True when it finished, False (with one warning line) otherwise."""
    sweep_dir = Path(sweep_dir)
    timeout = float(os.environ.get("SSL_BENCH_WANDB_TIMEOUT", "300"))
    cmd = [sys.executable, "-m", "ssl_bench.sweep.wandb_log", str(sweep_dir), project, group or sweep_dir.name]
    env = {**os.environ, "WANDB_SILENT": "true"}
    log = sweep_dir / "_sweep" / "wandb.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("a") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"ssl-bench: warning: W&B logging took over {timeout:g} s and was stopped (see {log}); "
              "the sweep's results are in results.csv", file=sys.stderr)
        return False
    if proc.returncode != 0:
        print(f"ssl-bench: warning: W&B logging failed (exit {proc.returncode}, see {log}); "
              "the sweep's results are in results.csv", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    _log(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
    print(json.dumps({"logged": sys.argv[1]}))


def read_offline_records(path: str | Path) -> list[Any]:
    """The protobuf records of an offline run's ``run-<id>.wandb`` file (W&B's transaction log: a
    7-byte ``:W&B`` header, then LevelDB-log framed records in 32 KiB blocks). wandb >= 0.19 writes
    the summary only there, and its Python package no longer ships a reader, hence these lines;
    used by the tests to check what an offline sweep logged."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log")
    records, pos, block, parts = [], 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        parts += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
            parts = b""
        elif kind == 0:
            break
    return records


def offline_summary(run_dir: str | Path) -> dict[str, Any]:
    """The final summary of an offline run directory (``offline-run-*``), from its records."""
    summary: dict[str, Any] = {}
    for path in Path(run_dir).glob("run-*.wandb"):
        for record in read_offline_records(path):
            if record.WhichOneof("record_type") == "summary":
                for item in record.summary.update:
                    summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return summary
