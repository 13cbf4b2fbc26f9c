"""What state a sweep cell's run directory is in, in the sweep's words, on top of
``ssl_bench.run_dir`` (the one definition of absent / partial / finished): a finished run has a
readable ``summary.json``; an interrupted one has ``checkpoints/last.ckpt`` and no summary; anything
else has not started (a run that failed before its first checkpoint starts again)."""
from __future__ import annotations

from pathlib import Path

from ..run_dir import RunState, last_checkpoint
from ..run_dir import run_state as _run_dir_state

NEW, INTERRUPTED, FINISHED = "new", "interrupted", "finished"

__all__ = ["NEW", "INTERRUPTED", "FINISHED", "run_state", "last_checkpoint"]


def run_state(run_dir: str | Path) -> str:
    state = _run_dir_state(run_dir)
    if state is RunState.FINISHED:
        return FINISHED
    return INTERRUPTED if last_checkpoint(run_dir) is not None else NEW
