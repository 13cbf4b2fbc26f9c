"""Weights & Biases for sweeps: each cell logs its own run while it trains; a report run after.

A cell whose config logs to W&B (``run.logger: wandb``; ``wandb: {enabled: true, project: P}`` in
the spec sets ``run.logger: wandb`` and ``run.wandb_project: P`` in every cell's config) is one W&B
run, opened by the cell's own ``pretrain`` (the path of ``ssl-bench pretrain --run.logger wandb``):
live history, the cell's real config, the final summary. Around it the cell process sets
``WANDB_RUN_ID`` (derived from the sweep directory and the cell, so a resumed cell continues its
run), ``WANDB_RUN_GROUP`` (the sweep's name), ``WANDB_JOB_TYPE`` and ``WANDB_TAGS`` (method, dataset,
seed): ``cell_env``. After the offline evaluation the cell resumes that run by id and adds
``offline_eval.json`` and ``summary.json`` to its summary (``log_cell_results``; the random-init
baseline, which does not train, has only that part). With ``WANDB_MODE=offline`` W&B writes each
``wandb.init`` of a run into its own ``offline-run-<time>-<id>`` folder; ``wandb sync`` uploads
them, in order, to the one run.

After the sweep, ``log_to_wandb`` logs a ``<sweep>-results`` run (job type ``report``) holding the
results table as a ``wandb.Table`` and the plots as images. A cell trained without W&B (its run
directory's ``config.yaml`` names another logger: e.g. W&B was enabled after it finished) is
replayed from its files into its run instead (``metrics.csv`` as history, its ``results.csv`` row
as summary) and marked ``replayed_from_files: true`` in config and summary.

Files go under ``$WANDB_DIR/wandb/`` when ``WANDB_DIR`` is set, else ``<cell run dir>/wandb/`` for
a cell (as for ``pretrain``) and ``<sweep>/wandb/`` for the report and the replays.

The report's logging runs in a child process with a time limit (``SSL_BENCH_WANDB_TIMEOUT``, default
300 s), so a hanging network or a W&B error prints one warning line and never fails or stalls the
sweep; in a cell, a W&B error while adding the results is one warning line, never a failed cell.
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


from ..config import read_mapping
from ..run_dir import OFFLINE_EVAL, read_json
from .baseline import is_baseline_cell

REPLAYED = "replayed_from_files"


def _run_id(sweep_dir: Path, name: str) -> str:
    return hashlib.sha1(f"{Path(sweep_dir).resolve()}::{name}".encode()).hexdigest()[:16]


def wandb_root(default: str | Path) -> str:
    """Where W&B writes (its files go into ``<this>/wandb/``): ``$WANDB_DIR`` when set, else ``default``."""
    return os.environ.get("WANDB_DIR") or str(default)


def _read_json(path: Path) -> dict[str, Any]:
    return read_json(path) or {}


def logs_live(cfg: dict[str, Any]) -> bool:
    """Whether a run with this config logged to W&B itself (``run.logger: wandb``)."""
    return (cfg.get("run") or {}).get("logger") == "wandb"


def cell_run(sweep_dir: str | Path, cell: str, cfg: dict[str, Any], project: str | None = None) -> dict[str, Any]:
    """The W&B run of a sweep cell: id, project (``run.wandb_project`` unless given), group (the
    sweep's name), name (the cell), job type, and tags (method, dataset, seed), from its config."""
    sweep_dir = Path(sweep_dir)
    model, data, run = (cfg.get(s) or {} for s in ("model", "data", "run"))
    baseline = is_baseline_cell(cell)  # evaluated untrained, never pretrained
    method = "random_init" if baseline else str(model.get("name", cell)).rsplit(".", 1)[-1].lower()
    group = str(_read_json(sweep_dir / "_sweep" / "sweep.json").get("name") or sweep_dir.name)
    tags = [method, str(data.get("name") or data.get("dataset", "")), f"seed{run.get('seed', '')}"]
    return {"id": _run_id(sweep_dir, cell), "project": project or run.get("wandb_project") or "ssl-bench",
            "group": group, "name": cell, "job_type": "baseline" if baseline else "pretrain",
            "tags": [t for t in tags if t and t != "seed"]}


@contextmanager
def cell_env(run: dict[str, Any]) -> Iterator[None]:
    """The ``WANDB_*`` variables that make ``pretrain``'s W&B logger open the cell's run (its id,
    group, job type, tags), for the duration of the block."""
    values = {"WANDB_RUN_ID": run["id"], "WANDB_RUN_GROUP": run["group"], "WANDB_JOB_TYPE": run["job_type"],
              "WANDB_TAGS": ",".join(run["tags"])}
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def log_cell_results(sweep_dir: str | Path, cell: str, run_dir: str | Path) -> bool:
    """Add a cell's ``summary.json`` (less ``all_metrics``, as ``pretrain`` logs it) and
    ``offline_eval.json`` to its W&B run, resumed by id (created, for the random-init baseline),
    with the run directory's config. True when logged; a W&B error is one warning line."""
    run_dir = Path(run_dir)
    try:
        import wandb

        cfg = read_mapping(run_dir / "config.yaml")
        info = cell_run(sweep_dir, cell, cfg)
        summary = {k: v for k, v in _read_json(run_dir / "summary.json").items() if k != "all_metrics"}
        run = wandb.init(project=info["project"], group=info["group"], name=info["name"], job_type=info["job_type"],
                         tags=info["tags"], id=info["id"], resume="allow", dir=wandb_root(run_dir),
                         settings=wandb.Settings(silent=True, init_timeout=60), reinit="finish_previous")
        try:
            run.config.update(cfg, allow_val_change=True)
            run.summary.update({**summary, **_read_json(run_dir / OFFLINE_EVAL), "cell": cell,
                                "seed": (cfg.get("run") or {}).get("seed")})
        finally:
            run.finish()
    except Exception as err:  # W&B is a view of the results, which are in the run directory
        print(f"ssl-bench: warning: W&B: the results of {cell} were not logged ({type(err).__name__}: "
              f"{' '.join(str(err).split())}); they are in {run_dir}", file=sys.stderr)
        return False
    return True


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
    """The report run; and a replay of each cell that did not log to W&B while it trained."""
    import wandb

    rows = _read_csv(sweep_dir / "results.csv")
    settings = wandb.Settings(silent=True, init_timeout=60)
    replayed = []
    for row in rows:
        cell = str(row["cell"])
        config = read_mapping(sweep_dir / cell / "config.yaml")
        if logs_live(config):  # its run holds its history; the cell added its results (log_cell_results)
            continue
        info = {**cell_run(sweep_dir, cell, config, project), "group": group}
        run = wandb.init(project=info["project"], group=group, name=cell, job_type=info["job_type"],
                         tags=info["tags"], dir=wandb_root(sweep_dir), id=info["id"], resume="allow",
                         config={**config, REPLAYED: True}, settings=settings, reinit="finish_previous")
        for step_row in _read_csv(sweep_dir / cell / "metrics.csv"):
            metrics = {k: v for k, v in step_row.items() if isinstance(v, float) and k != "step"}
            if metrics and step_row.get("step") is not None:
                run.log(metrics, step=int(step_row["step"]))
        run.summary.update({**{k: v for k, v in row.items() if v is not None}, REPLAYED: True})
        run.finish()
        replayed.append(cell)
    run = wandb.init(project=project, group=group, name=f"{group}-results", job_type="report",
                     dir=wandb_root(sweep_dir), id=_run_id(sweep_dir, "results"), resume="allow", settings=settings,
                     reinit="finish_previous")
    run.summary.update({"cells_replayed_from_files": replayed})
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


if __name__ == "__main__":
    _log(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
    print(json.dumps({"logged": sys.argv[1]}))
