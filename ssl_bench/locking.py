"""Advisory directory locks: one process writes a run or sweep directory at a time.

``hold(directory, what)`` takes an exclusive ``flock`` on ``<directory>/.lock`` and writes the
holder (pid, host, start time, command) into it. A second process gets one line that names the
holder instead of writing into the same files. The kernel releases the lock when the holder exits,
however it exits (``kill -9`` included), so a stale ``.lock`` file never blocks anyone; a live
orphan (e.g. a sweep cell whose sweep was killed) keeps it and is named.

Locks are re-entrant within a process: a sweep cell holds its run directory and ``pretrain`` inside
it takes the same lock again without blocking itself. ``flock`` works on local file systems and on
NFS (Linux emulates it with POSIX locks there).
"""
from __future__ import annotations

import fcntl
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import RunDirectoryError

LOCK_FILE = ".lock"
_held: dict[Path, int] = {}  # resolved directory -> nesting depth, for this process


def holder(directory: str | os.PathLike) -> dict | None:
    """Who holds (or last held) the lock of ``directory``, as written by ``hold``; None if unknown."""
    try:
        return json.loads((Path(directory) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None


def _describe(info: dict | None) -> str:
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid')} on {info.get('host')} (since {since}: {info.get('command', '?')})"


@contextmanager
def hold(directory: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``directory``'s lock for the ``with`` block (creating the directory); raise
    ``RunDirectoryError`` in one line naming the holder when another process has it. ``what`` names
    the directory in that line (``run directory``, ``sweep directory``)."""
    path = Path(directory).resolve()
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"{what} {directory} is a file, not a directory; choose another path")
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirectoryError(f"{what} {directory} is in use by {_describe(holder(path))}; wait for it to end "
                                    f"or stop it (two processes would write the same files)") from None
        info = {"pid": os.getpid(), "host": platform.node(), "since": time.time(),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _held[path] = 1
        try:
            yield
        finally:
            del _held[path]
    finally:
        os.close(fd)  # releases the flock
