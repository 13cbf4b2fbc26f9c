"""PNG plots of a sweep (matplotlib, Agg backend: no display needed).

- ``plots/final_accuracy.png``: per dataset, the final accuracies of every method (bars: mean over
  seeds, error bars: std over seeds), the random-init baseline included;
- ``plots/curves_<dataset>.png``: k-NN top-1 per epoch, entropy and RankMe per step, one line per
  method (mean over its seeds at each logged step), from each run's ``metrics.csv``.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .report import TABLE_METRICS, aggregate  # noqa: E402
from .spec import BASELINE  # noqa: E402

CURVES = (("val_knn_top1", "epoch", "k-NN top-1 (%)"), ("entropy", "step", "entropy (nats)"),
          ("rankme", "step", "RankMe"))


def read_metrics(path: Path) -> dict[str, list[tuple[float, float]]]:
    """metric -> [(x, value)] from a Lightning metrics.csv, x being the row's epoch or step."""
    out: dict[str, list[tuple[float, float]]] = {}
    try:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                for metric, x_key, _ in CURVES:
                    value, x = row.get(metric), row.get(x_key)
                    if value and x:
                        out.setdefault(metric, []).append((float(x), float(value)))
    except OSError:
        pass
    return out


def _mean_curve(curves: list[list[tuple[float, float]]]) -> tuple[list[float], list[float]]:
    by_x: dict[float, list[float]] = {}
    for curve in curves:
        last: dict[float, float] = dict(curve)  # a resumed run's repeated steps: the later value wins
        for x, v in last.items():
            if math.isfinite(v):
                by_x.setdefault(x, []).append(v)
    xs = sorted(by_x)
    return xs, [sum(by_x[x]) / len(by_x[x]) for x in xs]


def accuracy_plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    agg = aggregate(rows)
    metrics = [m for m in TABLE_METRICS if any(r.get(m) is not None for r in rows)]
    if not agg or not metrics:
        return None
    fig, axes = plt.subplots(1, len(agg), figsize=(max(5, 1.6 * max(len(m) for m in agg.values()) + 2) * len(agg), 4),
                             squeeze=False)
    width = 0.8 / len(metrics)
    for ax, (dataset, methods) in zip(axes[0], sorted(agg.items())):
        names = sorted(m for m in methods if m != BASELINE) + ([BASELINE] if BASELINE in methods else [])
        for j, metric in enumerate(metrics):
            stats = [methods[m].get(metric) for m in names]
            xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, [s[0] if s else 0 for s in stats], width, yerr=[s[1] if s else 0 for s in stats],
                   capsize=3, label=metric)
        ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=30, ha="right")
        ax.set_title(dataset)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def curve_plots(sweep_dir: Path, rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    paths = []
    for dataset in sorted({r["dataset"] for r in rows}):
        per_method: dict[str, list[dict[str, list[tuple[float, float]]]]] = {}
        for r in rows:
            if r["dataset"] == dataset and r["method"] != BASELINE:
                per_method.setdefault(r["method"], []).append(read_metrics(sweep_dir / r["cell"] / "metrics.csv"))
        if not per_method:
            continue
        fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 3.6))
        for ax, (metric, x_key, label) in zip(axes, CURVES):
            for method, runs in sorted(per_method.items()):
                xs, ys = _mean_curve([run.get(metric, []) for run in runs])
                if xs:
                    ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=method)
            baseline = [r.get(metric) for r in rows if r["dataset"] == dataset and r["method"] == BASELINE
                        and r.get(metric) is not None]
            if baseline:
                ax.axhline(sum(baseline) / len(baseline), color="gray", linestyle="--", label="random init")
            ax.set_xlabel(x_key)
            ax.set_ylabel(label)
            ax.set_title(f"{dataset}: {metric}")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"curves_{dataset}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def make_plots(sweep_dir: Path, rows: list[dict[str, Any]]) -> list[Path]:
    out_dir = sweep_dir / "plots"
    out_dir.mkdir(exist_ok=True)
    paths = [accuracy_plot(rows, out_dir / "final_accuracy.png")]
    return [p for p in paths if p is not None] + curve_plots(sweep_dir, rows, out_dir)
