"""What a run directory holds, and the few file operations that must never lose a result.

A run directory is one of (``run_state``):

- ``absent``: no such directory, or none of the run files below in it;
- ``partial``: some run files, but no readable ``summary.json`` (killed, failing, or being extended);
- ``finished``: ``summary.json`` is there and parses (it is written last, atomically, by
  ``pretrain``; a run that is continued to more epochs gets it back when it finishes again).

``ssl-bench pretrain`` refuses to start in a ``partial`` or ``finished`` directory unless told to
resume (``run.resume``) or to start afresh (``run.overwrite``); the sweep runner skips ``finished``
cells and resumes ``partial`` ones. Pure Python: no torch import.
"""
from __future__ import annotations

import json
import os
import shutil
from enum import Enum
from pathlib import Path
from typing import Any

CONFIG, METRICS, HPARAMS, SUMMARY = "config.yaml", "metrics.csv", "hparams.yaml", "summary.json"
PREVIOUS_SUMMARY = "summary.previous.json"  # the summary of a finished run while it is being extended
CHECKPOINT = Path("checkpoints") / "last.ckpt"
#: the files a pretraining run writes (``run.overwrite`` deletes exactly these, plus eval_*.json)
RUN_FILES = (CONFIG, METRICS, HPARAMS, SUMMARY, PREVIOUS_SUMMARY, str(CHECKPOINT))


class RunState(str, Enum):
    ABSENT = "absent"
    PARTIAL = "partial"
    FINISHED = "finished"


def last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """``<run_dir>/checkpoints/last.ckpt`` if it exists."""
    path = Path(run_dir) / CHECKPOINT
    return path if path.is_file() else None


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed ``summary.json``, or None when missing or unreadable (a partial run)."""
    try:
        summary = json.loads((Path(run_dir) / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def run_state(run_dir: str | os.PathLike) -> RunState:
    """``absent`` / ``partial`` / ``finished`` (see the module docstring)."""
    d = Path(run_dir)
    if read_summary(d) is not None:
        return RunState.FINISHED
    if any((d / f).exists() for f in RUN_FILES):
        return RunState.PARTIAL
    return RunState.ABSENT


def describe(run_dir: str | os.PathLike) -> str:
    """A few words for messages: what the directory holds."""
    d = Path(run_dir)
    state = run_state(d)
    if state is RunState.FINISHED:
        return f"{d} holds a finished run ({SUMMARY})"
    found = [f for f in RUN_FILES if (d / f).exists()]
    return f"{d} holds an unfinished run ({', '.join(found)})"


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it: a kill mid-write leaves
    the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def clear_run(run_dir: str | os.PathLike) -> list[str]:
    """Delete the files of an earlier run (``run.overwrite``): ``RUN_FILES``, ``last.ckpt.tmp`` and
    ``eval_*.json`` (they describe the deleted checkpoint). Other files are left alone.
    Returns the names deleted."""
    d = Path(run_dir)
    removed = []
    for path in [*(d / f for f in RUN_FILES), d / (str(CHECKPOINT) + ".tmp"), *d.glob("eval_*.json")]:
        if path.is_file():
            path.unlink()
            removed.append(str(path.relative_to(d)))
    wandb_dir = d / "wandb"
    if wandb_dir.is_dir():  # the earlier run's W&B files would otherwise be mixed with the new run's
        shutil.rmtree(wandb_dir)
        removed.append("wandb/")
    return removed
