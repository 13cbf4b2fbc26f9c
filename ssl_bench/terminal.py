"""A quiet terminal: Lightning's tips, data-loader hints and FLOPs-less summary columns off, and the
project's own notes (``logging.getLogger("ssl_bench")``) as ``ssl-bench: ...`` lines on stderr. Used by
the CLI and by every process it starts (sweep cells)."""
from __future__ import annotations

import logging
import os
import re
import sys
import warnings

_NOISE = ("💡 Tip:", "Detected KeyboardInterrupt")


class _LightningNoise(logging.Filter):
    """Drops Lightning's tips and its Ctrl-C line (ssl-bench prints its own), and the FLOPs column
    and "0 Total Flops" line of the model summary (Lightning counts FLOPs only on some devices)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.strip().startswith(_NOISE):
            return False
        if re.search(r"^\s*0\s+Total Flops\s*$", message, re.M):
            record.msg, record.args = _drop_flops(message), ()
        return True


def _drop_flops(table: str) -> str:
    lines = [ln for ln in table.split("\n") if not re.match(r"^\s*0\s+Total Flops\s*$", ln)]
    header = next((ln for ln in lines if "| FLOPs" in ln), None)
    if header is None:
        return "\n".join(lines)
    cut = header.index("| FLOPs")
    out = []
    for ln in lines:
        if set(ln.strip()) == {"-"}:
            out.append("-" * cut)
        elif len(ln) > cut and ln[cut:cut + 1] == "|":
            out.append(ln[:cut].rstrip())
        else:
            out.append(ln)
    return "\n".join(out)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest's capture replaces it per test)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: D102
        pass


def quiet_libraries() -> None:
    """Keep the terminal to what a user acts on: Lightning's tips and data-loader hints off."""
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*")
    os.environ.setdefault("WANDB_SILENT", "true")
    noise = _LightningNoise()
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "pytorch_lightning.callbacks.model_summary", "pytorch_lightning.utilities.model_summary"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _LightningNoise) for f in logger.filters):
            logger.addFilter(noise)
    log = logging.getLogger("ssl_bench")  # the project's own notes (e.g. an inferred image size)
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("ssl-bench: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
