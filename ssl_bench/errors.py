"""Errors that the CLI turns into one clear line (never a bare traceback)."""
from __future__ import annotations


class SSLBenchError(Exception):
    """Base class: a user-facing problem with a one-line message."""


class ConfigError(SSLBenchError, ValueError):
    """A config key is unknown, of the wrong type, or names something that does not exist."""


class DivergenceError(SSLBenchError, RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is kept."""
