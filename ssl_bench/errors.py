"""Errors that the CLI turns into one clear line (never a bare traceback)."""
from __future__ import annotations

import difflib
from typing import Iterable


#: attribute ``pretrain`` sets on an exception that ended a run: what happened to the run's files
RUN_NOTE = "ssl_bench_run_note"


class SSLBenchError(Exception):
    """Base class: a user-facing problem with a one-line message."""


class ConfigError(SSLBenchError, ValueError):
    """A config key is unknown, of the wrong type, or names something that does not exist."""


class DivergenceError(SSLBenchError, RuntimeError):
    """The loss became NaN/inf; the message says whether a good checkpoint is kept."""


class CollectiveTimeoutError(SSLBenchError, RuntimeError):
    """A multi-process run's ranks fell out of step: a collective waited past its timeout."""


class RunDirectoryError(SSLBenchError):
    """The run directory holds an earlier run that this command would overwrite."""


#: what the CLI (and a sweep cell) reports in one line rather than a traceback: the user's mistake, not a bug
USAGE_ERRORS = (SSLBenchError, FileNotFoundError, ValueError, TypeError, ImportError)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'temperature'?"`` for the closest of ``choices`` (difflib), else ``""``: the
    end of a one-line message, after the list of what is allowed."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""
