"""``ssl-bench report`` and the end of every sweep: ``results.csv``, ``results.md`` and ``plots/*.png``
from the run directories (``report.py`` reads them, ``plots.py`` draws), logged to W&B when asked."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..run_dir import write_atomic
from .plots import make_plots
from .report import read_json, collect_rows, markdown, write_csv


def build_report(sweep_dir: str | Path, wandb: bool = False) -> list[Path]:
    """Write results.csv, results.md and plots/*.png; with ``wandb``, log them (never fails the sweep)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ConfigError(f"sweep directory not found: {sweep_dir}")
    rows = collect_rows(sweep_dir)
    if not rows:
        raise ConfigError(f"{sweep_dir} holds no run directories (directories with config.yaml)")
    meta = read_json(sweep_dir / "_sweep" / "sweep.json")
    name = meta.get("name") or sweep_dir.name
    write_csv(rows, sweep_dir / "results.csv")
    write_atomic(sweep_dir / "results.md", markdown(rows, name))
    paths = [sweep_dir / "results.csv", sweep_dir / "results.md", *make_plots(sweep_dir, rows)]
    if wandb:
        from .wandb_log import log_to_wandb  # wandb is imported only when asked for

        log_to_wandb(sweep_dir, project=(meta.get("wandb") or {}).get("project", "ssl-bench"), group=name)
    return paths
