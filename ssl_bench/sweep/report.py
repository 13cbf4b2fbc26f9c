"""Collect a sweep directory into ``results.csv``, ``results.md`` and plots (``ssl-bench report``).

Everything is rebuilt from the run directories (``<sweep>/<cell>/``: ``config.yaml``,
``summary.json``, ``metrics.csv``, ``offline_eval.json``) and, where present, the runner's cell
records (``_sweep/cells/<cell>.json``: status and one-line error of failed cells, wall time, peak
memory). A directory holding ``config.yaml`` is a cell; no spec is needed.

``results.csv``: one row per cell with method, dataset, seed, epochs, batch size, every scalar of
``summary.json`` and ``offline_eval.json``, wall time (``wall_time_s``: see ``wall_time``), training
images/s (optimizer steps x global batch / ``fit_seconds``, the cumulative training time of all
launches of the run), peak memory and status: ``finished``, ``failed``, ``interrupted`` (a
checkpoint, no summary), ``not run``, or ``corrupt summary.json`` (there, but it does not parse:
the run's results are unknown; its ``error`` says why).
``results.md``: per dataset, mean +- std over seeds per method over the finished cells, the
random-init baseline as a row, the best method per accuracy column in bold, and the cells left out
of the means named with their status.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any


from .. import run_dir as rd
from ..config import read_mapping
from ..run_dir import OFFLINE_EVAL
from .cell import FAILED, read_record
from .run_state import FINISHED, INTERRUPTED, run_state
from .baseline import baseline_label, is_baseline

LEAD_COLUMNS = ["cell", "method", "dataset", "seed", "status", "backbone", "epochs", "batch_size", "world_size",
                "global_step", "wall_time_s", "train_images_per_s", "peak_rss_mb", "peak_gpu_mb"]
SKIP_SUMMARY = {"method", "dataset", "run_dir", "is_global_zero", "all_metrics", "epochs", "global_step",
                "world_size", "backbone"}
TABLE_METRICS = ["val_knn_top1", "val_linear_top1", "offline_knn_best_top1", "offline_linear_top1"]
EXTRA_TABLE_METRICS = ["rankme", "entropy", "z_std"]
CORRUPT = "corrupt summary.json"


def _cells(sweep_dir: Path) -> list[str]:
    """Cell names: run directories with a config, and cells the runner recorded (failed early)."""
    names = {p.name for p in sweep_dir.iterdir() if p.is_dir() and (p / "config.yaml").is_file()}
    records = sweep_dir / "_sweep" / "cells"
    if records.is_dir():
        names |= {p.stem for p in records.glob("*.json")}
    return sorted(names)


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when it is missing or unreadable (``run_dir.read_json``)."""
    return rd.read_json(path) or {}


def _summary(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """(summary.json, None), or ({}, why) when the file is there but unreadable or not an object."""
    path = run_dir / "summary.json"
    if not path.exists():
        return {}, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return {}, f"summary.json unreadable: {' '.join(str(err).split()) or type(err).__name__}"
    if not isinstance(data, dict):
        return {}, f"summary.json holds a {type(data).__name__}, not an object"
    return data, None


#: a record whose process ended this long before summary.json was written is not the record of the
#: process that finished the run (seconds; room for clock differences between hosts)
CLOCK_SLACK_S = 60.0


def wall_time(record: dict[str, Any], summary: dict[str, Any], run_dir: Path) -> float | None:
    """Wall time of the cell, from what the process that ran it measured itself.

    The cell record is written by the cell process (``cell.run_cell``: ``started``, ``ended``,
    ``wall_s``); the local runner adds ``runner_wall_s``, the time *its* slot took, when it reaps
    the process it started. That one is wrong for a cell another process finished: when two
    launches run the same cell, the runner whose process lost the race keeps the record of the
    process that finished the cell but stamps its own ``runner_wall_s`` on it (and a launch that
    finds the run finished only evaluates or skips it, a few seconds). So:

    - ``wall_s`` of the record (``ended - started`` when it is missing), when the record is that
      of the process that finished the run; for a resumed cell that is the resumed launch only
      (``fit_seconds``, in its own column, is the cumulative training time);
    - plus the run's ``fit_seconds`` when that process found the training finished
      (``state_before`` "finished": it only evaluated, or skipped);
    - the run's ``fit_seconds`` alone when the record ended before summary.json was written (the
      run was finished by a process that wrote no record, e.g. ``ssl-bench pretrain`` by hand) or
      there is no record;
    - ``runner_wall_s`` only for a cell with no other time (its process died before its last write).
    """
    fit_s = summary.get("fit_seconds")
    own = record.get("wall_s")
    started, ended = record.get("started"), record.get("ended")
    if own is None and isinstance(started, (int, float)) and isinstance(ended, (int, float)):
        own = round(ended - started, 2)
    if summary and isinstance(ended, (int, float)):
        try:
            if (run_dir / "summary.json").stat().st_mtime > ended + CLOCK_SLACK_S:
                return fit_s
        except OSError:
            pass
    if own is None:
        return fit_s if summary else record.get("runner_wall_s", fit_s)
    if record.get("state_before") == FINISHED and isinstance(fit_s, (int, float)):
        return round(fit_s + own, 2)
    return own


def _config(sweep_dir: Path, cell: str) -> dict[str, Any]:
    for path in (sweep_dir / cell / "config.yaml", sweep_dir / "_sweep" / "cells" / f"{cell}.yaml"):
        if path.is_file():
            return read_mapping(path)
    return {}


def _split_name(cell: str, data: dict[str, Any] | None = None) -> tuple[str, str, int | None]:
    """``<method>-<dataset>-s<seed>``; method names may contain '-'. The dataset is the name the
    cell's config (``data``) gives it when there is one (``sources.dataset_name``: ``data.name``, a
    folder's root folder name, else ``data.dataset``; it may contain '-'), else the cell name's."""
    from ..data.sources import dataset_name

    head, _, seed = cell.rpartition("-s")
    method, _, dataset = head.rpartition("-")
    try:
        named = dataset_name(data) if data and data.get("dataset") else None
    except ValueError:  # a data.name that pretrain refuses: the cell's name is all there is
        named = None
    if named:  # the config's name (one report section per name), and the method is what precedes it
        method, dataset = (head[: -len(named) - 1] if head.endswith(f"-{named}") else method), named
    try:
        return method, dataset, int(seed)
    except ValueError:
        return cell, named or "", None


def collect_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    sweep_dir = Path(sweep_dir)
    rows = []
    for cell in _cells(sweep_dir):
        run_dir = sweep_dir / cell
        cfg = _config(sweep_dir, cell)
        summary, corrupt = _summary(run_dir)
        record = read_record(sweep_dir, cell) or {}
        model, data, trainer, run = (cfg.get(s) or {} for s in ("model", "data", "trainer", "run"))
        method, dataset, seed = _split_name(cell, data)
        state = run_state(run_dir)
        status = "finished" if state == FINISHED else (CORRUPT if corrupt else (
            "failed" if record.get("status") == FAILED else ("interrupted" if state == INTERRUPTED else "not run")))
        world = summary.get("world_size") or 1
        batch = data.get("batch_size")
        fit_s = summary.get("fit_seconds")
        row: dict[str, Any] = {
            "cell": cell, "method": method, "dataset": dataset,  # the dataset's name: one section per name
            "seed": run.get("seed", seed), "status": status, "backbone": model.get("backbone"),
            "epochs": summary.get("epochs", trainer.get("max_epochs")), "batch_size": batch,
            "world_size": world, "global_step": summary.get("global_step"),
            "wall_time_s": wall_time(record, summary, run_dir),
            "train_images_per_s": round(summary["global_step"] * batch * world / fit_s, 1)
            if fit_s and batch and summary.get("global_step") else None,
            "peak_rss_mb": record.get("peak_rss_mb"), "peak_gpu_mb": record.get("peak_gpu_mb"),
            "error": corrupt if status == CORRUPT else (record.get("error") if status == "failed" else None),
        }
        for key, value in {**summary.get("all_metrics", {}), **summary}.items():
            if key not in SKIP_SUMMARY and (value is None or isinstance(value, (int, float))):
                row[key] = value
        row.update(read_json(run_dir / OFFLINE_EVAL))
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    columns = list(LEAD_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns and k != "error"]
    columns.append("error")
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})


def mean_std(values: list[float]) -> tuple[float, float, int] | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def offline_columns(present: set[str]) -> list[str]:
    """The offline evaluation's headline columns after ``TABLE_METRICS``: each registered protocol's
    (``evaluate.headline_column``: ``offline_<name>_best_<metric>`` for a grid, else
    ``offline_<name>_<metric>``) in registry order, then those of protocols this process has not
    imported (an ``offline_*`` key of ``offline_eval.json`` without ``@``), by name."""
    from ..eval import headline_column
    from ..eval import PROTOCOLS

    known = [headline_column(cls) for cls in PROTOCOLS.values()]
    others = sorted(k for k in present if k.startswith("offline_") and "@" not in k and k not in known)
    return [c for c in known + others if c in present and c not in TABLE_METRICS]


def table_columns(rows: list[dict[str, Any]]) -> list[str]:
    present = {k for r in rows for k, v in r.items() if v is not None}
    few = sorted(k for k in present if "@labels" in k)
    return ([c for c in TABLE_METRICS if c in present] + offline_columns(present) + few
            + [c for c in EXTRA_TABLE_METRICS if c in present])


def aggregate(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """dataset -> method -> {"n": seeds finished, column: (mean, std, n)} over finished cells."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    columns = table_columns(rows)
    for row in rows:
        if row["status"] != "finished":
            continue
        group = out.setdefault(row["dataset"], {}).setdefault(row["method"], {"rows": []})
        group["rows"].append(row)
    for methods in out.values():
        for stats in methods.values():
            group_rows = stats.pop("rows")
            stats["n"] = len(group_rows)
            for col in columns:
                stats[col] = mean_std([r.get(col) for r in group_rows])
    return out


def _is_accuracy(column: str) -> bool:
    return "top1" in column or "top5" in column


def markdown(rows: list[dict[str, Any]], sweep_name: str) -> str:
    columns = table_columns(rows)
    agg = aggregate(rows)
    lines = [f"# Results: {sweep_name}", "",
             "Mean +- std over seeds (n = finished seeds). Accuracies in %, on the val split. Bold: the best "
             "method per accuracy column (the random-init baselines, one per network, are reference rows, not ranked).", ""]
    left_out = [r for r in rows if r["status"] != "finished"]
    if left_out:
        lines += [f"Left out of the means ({len(left_out)} cell{'s' if len(left_out) > 1 else ''}, see "
                  "\"Not finished\"): " + ", ".join(f"{r['cell']} ({r['status']})" for r in left_out) + ".", ""]
    for dataset, methods in sorted(agg.items()):
        order = sorted(m for m in methods if not is_baseline(m)) + sorted(m for m in methods if is_baseline(m))
        best = {}
        for col in columns:
            if _is_accuracy(col):
                scored = [(methods[m][col][0], m) for m in order if not is_baseline(m) and methods[m].get(col)]
                if scored:
                    best[col] = max(scored)[1]
        lines += [f"## {dataset}", "", "| method | n | " + " | ".join(columns) + " |",
                  "|---|---|" + "---|" * len(columns)]
        for method in order:
            cells = []
            for col in columns:
                stat = methods[method].get(col)
                text = "" if stat is None else (f"{stat[0]:.2f} +- {stat[1]:.2f}" if stat[2] > 1 else f"{stat[0]:.2f}")
                cells.append(f"**{text}**" if best.get(col) == method and text else text)
            label = baseline_label(method) if is_baseline(method) else method
            lines.append(f"| {label} | {methods[method]['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    if left_out:
        lines += ["## Not finished", "", "| cell | status | error |", "|---|---|---|"]
        lines += [f"| {r['cell']} | {r['status']} | {(r.get('error') or '').replace('|', '/')} |" for r in left_out]
        lines.append("")
    return "\n".join(lines)
