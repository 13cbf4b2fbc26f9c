"""What state a run directory is in. Kept small and separate so it can be swapped for the project's
shared run-directory helper when that exists: a finished run has ``summary.json``; an interrupted
one has ``checkpoints/last.ckpt`` and no ``summary.json``; anything else has not started."""
from __future__ import annotations

from pathlib import Path

NEW, INTERRUPTED, FINISHED = "new", "interrupted", "finished"


def run_state(run_dir: str | Path) -> str:
    run_dir = Path(run_dir)
    if (run_dir / "summary.json").is_file():
        return FINISHED
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return INTERRUPTED
    return NEW


def last_checkpoint(run_dir: str | Path) -> Path | None:
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None
