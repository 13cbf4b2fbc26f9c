"""Checkpoint and log files that survive crashes and resumes."""
from __future__ import annotations

import csv
import os
from typing import Any

from lightning_fabric.utilities.cloud_io import _atomic_save
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``path.tmp`` then renames it over ``path``: a crash mid-write (or a diverging loss,
    which BaseMethod refuses to save) never destroys the last good checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str, storage_options: Any = None) -> None:
        tmp = f"{path}.tmp"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        _atomic_save(checkpoint, tmp)
        os.replace(tmp, path)


class _RunDirWriter(ExperimentWriter):
    """Lightning's CSV writer warns about any non-empty directory and deletes metrics.csv; the run
    directory always holds config.yaml, so: append when resuming, else start metrics.csv afresh."""

    append = False

    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        if not self.append:
            self._fs.rm_file(self.metrics_file_path)
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            self.metrics_keys = list(csv.DictReader(f).fieldnames or [])


class _AppendingWriter(_RunDirWriter):
    append = True


class RunCSVLogger(CSVLogger):
    """CSVLogger writing ``<run dir>/metrics.csv``; keeps earlier rows when ``append`` (resume)."""

    def __init__(self, run_dir: str, append: bool = False) -> None:
        super().__init__(save_dir=run_dir, name="", version="")
        self._writer_cls = _AppendingWriter if append else _RunDirWriter

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = self._writer_cls(log_dir=self.log_dir)
        return self._experiment
