"""A sweep's progress lines: one per cell start and end, a heartbeat per running cell (its epoch, read
from ``metrics.csv``), and the ETA from the mean wall time of the cells run so far."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from .cell import OK
from .spec import Cell


def _epoch_progress(run_dir: Path) -> int | None:
    """The last epoch number in ``metrics.csv`` (cheap: the last lines only)."""
    path = run_dir / "metrics.csv"
    try:
        with path.open() as f:
            header = f.readline().strip().split(",")
            f.seek(max(0, path.stat().st_size - 4096))
            lines = f.read().splitlines()
        row = next(csv.reader([lines[-1]]))
        value = row[header.index("epoch")]
        return int(float(value)) if value else None
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class Progress:
    """One line per cell start / end / heartbeat: which cell, how far, and the sweep's ETA from
    the mean wall time of the cells run so far."""

    def __init__(self, total: int, heartbeat_s: float = 60.0) -> None:
        self.total, self.done, self.failed, self.durations = total, 0, 0, []  # type: ignore[var-annotated]
        self.heartbeat_s, self.last_beat = heartbeat_s, time.time()

    def eta(self, running: int = 0) -> str:
        left = self.total - self.done - self.failed
        if not self.durations or left <= 0:
            return "ETA -" if left > 0 else "ETA 0s"
        mean = sum(self.durations) / len(self.durations)
        return f"ETA {_fmt(mean * left / max(1, running))}"

    def start(self, cell: Cell, action: str, index: int) -> None:
        print(f"[{index}/{self.total}] {cell.name}: {action} ... ({self.eta()})", flush=True)

    def end(self, cell: Cell, record: dict[str, Any], index: int, running: int) -> None:
        self.durations.append(record.get("wall_s") or 0.0)
        if record["status"] == OK:
            self.done += 1
            what = f"done in {_fmt(record.get('wall_s') or 0)}{_headline(cell, record)}"
        else:
            self.failed += 1
            what = f"FAILED: {record.get('error')}"
        left = self.total - self.done - self.failed
        print(f"[{index}/{self.total}] {cell.name}: {what} | {self.done} done, {self.failed} failed, "
              f"{left} left, {self.eta(running)}", flush=True)

    def heartbeat(self, running: dict[str, tuple[Cell, float]], sweep_dir: Path) -> None:
        if time.time() - self.last_beat < self.heartbeat_s:
            return
        self.last_beat = time.time()
        for name, (cell, started) in running.items():
            epoch = _epoch_progress(sweep_dir / name)
            total = cell.config["trainer"].get("max_epochs", "?")
            where = f"epoch {epoch + 1}/{total}" if epoch is not None else "starting"
            print(f"  ... {name}: {where}, {_fmt(time.time() - started)} elapsed ({self.eta(len(running))})",
                  flush=True)


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else (
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")


def _headline(cell: Cell, record: dict[str, Any]) -> str:
    try:
        summary = json.loads((Path(record["run_dir"]) / "summary.json").read_text())
        return f", k-NN top-1 {summary['val_knn_top1']:.2f}%"
    except (KeyError, OSError, ValueError, TypeError):
        return ""
