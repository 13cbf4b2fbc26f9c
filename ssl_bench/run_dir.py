"""What a run directory holds, and the few file operations that must never lose a result.

A run directory is one of (``run_state``):

- ``absent``: no such directory, or none of the run files below in it;
- ``partial``: some run files, but no readable ``summary.json`` (killed, failing, or being extended);
- ``finished``: ``summary.json`` is there and parses (it is written last, atomically, by
  ``pretrain``; a run that is continued to more epochs gets it back when it finishes again).

``ssl-bench pretrain`` refuses to start in a ``partial`` or ``finished`` directory unless told to
resume (``run.resume``) or to start afresh (``run.overwrite``); the sweep runner skips ``finished``
cells and resumes ``partial`` ones.

``load_checkpoint_file`` is the one way a checkpoint is read (resume, eval, scan): plain tensors and
containers only, and a file that holds anything else is refused in one line, never loaded. Pure
Python otherwise: torch is imported by that function only.
"""
from __future__ import annotations

import json
import os
import pickle
import pickletools
import shutil
import warnings
import zipfile
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import ConfigError

CONFIG, METRICS, HPARAMS, SUMMARY = "config.yaml", "metrics.csv", "hparams.yaml", "summary.json"
PREVIOUS_SUMMARY = "summary.previous.json"  # the summary of a finished run while it is being extended
CHECKPOINT = Path("checkpoints") / "last.ckpt"
#: the files a pretraining run writes
RUN_FILES = (CONFIG, METRICS, HPARAMS, SUMMARY, PREVIOUS_SUMMARY, str(CHECKPOINT))
#: what is computed from a run's checkpoint: ``ssl-bench eval`` results, cached features, SCAN's
#: output and the sweep's offline evaluation (``run.overwrite`` deletes them with the run files)
EVALS, FEATURES, SCAN, OFFLINE_EVAL = "evals", "features", "scan", "offline_eval.json"
DERIVED_ARTEFACTS = (EVALS, FEATURES, SCAN, OFFLINE_EVAL)


class RunState(str, Enum):
    ABSENT = "absent"
    PARTIAL = "partial"
    FINISHED = "finished"


def last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """``<run_dir>/checkpoints/last.ckpt`` if it exists."""
    path = Path(run_dir) / CHECKPOINT
    return path if path.is_file() else None


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed ``summary.json``, or None when missing or unreadable (a partial run)."""
    return read_json(Path(run_dir) / SUMMARY)


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
    the old file or the new one, never half of one. The temporary name carries the process id, so
    two processes writing the same file never write into one temporary file; a failed write removes it."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def clear_run(run_dir: str | os.PathLike) -> list[str]:
    """Delete an earlier run (``run.overwrite``): ``RUN_FILES``, ``last.ckpt.tmp``, everything computed
    from its checkpoint (``DERIVED_ARTEFACTS``: evaluations, feature caches, SCAN, the sweep's offline
    evaluation, and the ``eval_*.json`` of older versions) and its W&B files. Other files are left
    alone. Returns the names deleted."""
    d = Path(run_dir)
    removed = []
    for path in [*(d / f for f in RUN_FILES), d / (str(CHECKPOINT) + ".tmp"), *d.glob("eval_*.json"),
                 *(d / name for name in (*DERIVED_ARTEFACTS, "wandb"))]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            removed.append(f"{path.relative_to(d)}/")
        elif path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(str(path.relative_to(d)))
    return removed


def set_aside(run_dir: str | os.PathLike, label: str) -> Path | None:
    """Move the run files of ``run_dir`` (``RUN_FILES`` and ``metrics.csv``'s companions) into
    ``<run_dir>/<label>-<time>/``, after which the directory is ``absent`` again; returns that folder
    (None when there was nothing to move). For an attempt that ended before its first checkpoint."""
    import time

    d = Path(run_dir)
    found = [f for f in RUN_FILES if (d / f).exists()]
    if not found:
        return None
    target = d / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while target.exists():
        n += 1
        target = d / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    for name in found:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(d / name, target / name)
    return target


def _first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (its class name when empty); torch's own advice on
    ``weights_only`` is never passed on."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""
    if not first or "weights_only" in first:
        return type(err).__name__
    return first if " " in first else f"{type(err).__name__}: {first}"  # KeyError('101') says little


def _is_pickle_stream(path: Path) -> tuple[bool, str]:
    """Whether ``path`` (a torch zip archive's ``data.pkl``, else the file itself) starts with a
    complete pickle stream, and if not, why. The opcodes are only parsed (``pickletools``), nothing
    is built or run."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl"]
                if not names:
                    return False, "a zip archive without data.pkl"
                data = archive.read(names[0])
        else:
            data = path.read_bytes()
        for _ in pickletools.genops(data):  # stops at the first STOP opcode
            pass
    except Exception as err:  # noqa: BLE001 - any parse failure means "not a pickle"
        return False, _first_line(err)
    return True, ""


def load_checkpoint_file(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """The dict saved in ``path`` by ``torch.save``, loaded on the CPU with ``weights_only=True``
    (tensors, numbers, strings and containers only). ``what`` starts every message (the option or
    command the file came from: ``run.resume``, ``eval --ckpt``...). Raises ``ConfigError`` in one
    line when the file holds pickled Python objects (refused: they are not loaded), when it is not a
    readable checkpoint (truncated, not a torch file), or when it holds something else than a dict."""
    import torch

    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ConfigError(f"{what}: {path} is not a readable checkpoint (the file is empty)")
    try:
        with warnings.catch_warnings():  # torch's note that the file uses a newer pickle protocol
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # the weights-only unpickler refused it, or it is no pickle
        is_pickle, why = _is_pickle_stream(path)
        if is_pickle:
            raise ConfigError(f"{what}: {path} holds pickled Python objects and was not loaded (they are "
                              f"refused: loading them could run code); only checkpoints written by ssl-bench "
                              f"can be read") from None
        cause = err.__context__ or err  # torch wraps the unpickler's own error in its advice
        raise ConfigError(f"{what}: {path} is not a readable checkpoint ({why or _first_line(cause)})") from None
    except Exception as err:  # truncated, empty, or not a torch file at all
        raise ConfigError(f"{what}: {path} is not a readable checkpoint ({_first_line(err)})") from None
    if not isinstance(blob, dict):
        raise ConfigError(f"{what}: {path} is not a checkpoint (it holds a {type(blob).__name__}, not a dict)")
    return blob


def load_lightning_checkpoint(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """``load_checkpoint_file`` of a Lightning checkpoint: also refuses, in one line, a file without a
    ``state_dict`` (resume, eval and scan read checkpoints through this)."""
    blob = load_checkpoint_file(path, what)
    if not isinstance(blob.get("state_dict"), dict):
        raise ConfigError(f"{what}: {path} is not a Lightning checkpoint (no state_dict)")
    return blob
