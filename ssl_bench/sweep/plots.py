"""PNG plots of a sweep (matplotlib, Agg backend: no display needed).

- ``plots/final_accuracy.png``: per dataset, the final accuracies of every method (bars: mean over
  seeds, error bars: std over seeds), the random-init baseline included;
- ``plots/curves_<dataset>.png``: k-NN top-1, entropy and RankMe against the optimizer step, from
  each finished run's ``metrics.csv`` (the cells the results.md means are taken over).

How the curves read:

- every method has its own (colour, marker) pair, fixed by its place in the sorted method names of
  the sweep (``method_styles``), the same in every figure of the sweep;
- only what was measured is drawn: a marker at every measured step when a series has few points
  (one point is a marker and no line, e.g. a k-NN that runs only at the end of training), a line
  through the measured points when there are several;
- over seeds: the mean at each step, and the min-max band over the seeds (an error bar where the
  series has one point); the figure title says so, the legend gives each method's seed count;
- entropy: the collapse monitor's vMF-KDE estimate (nats) on the unit sphere S^{d-1} of the
  method's embedding dimension d, which differ between methods, so the raw nats do not compare
  (the maximum, the uniform distribution's entropy log area(S^{d-1}), is about -41 nats for d = 64
  and about -127 for d = 128). The plot shows ``entropy - log area(S^{d-1})``, the entropy relative
  to the uniform distribution on the sphere (0: uniform; negative: concentrated), d read from the
  run (``embedding_dim``). A run whose d is unknown keeps its raw nats and is labelled so.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..config import read_mapping  # noqa: E402
from .report import TABLE_METRICS, aggregate  # noqa: E402
from .baseline import baseline_label, is_baseline  # noqa: E402

X_KEY = "step"  # every curve against the optimizer step (metrics.csv's ``step``), k-NN included
CURVES = (("val_knn_top1", "k-NN top-1 (%)"), ("entropy", "entropy (nats)"), ("rankme", "RankMe"))
ENTROPY_RELATIVE_LABEL = "entropy - log area(S^{d-1}) (nats)"
BAND = "min-max over seeds"
#: tab20's dark hues first, then their light partners: 20 colours, the first ten tab10's
COLOURS = [plt.get_cmap("tab20")(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]
#: 7 markers: 7 and 20 are coprime, so (colour, marker) pairs repeat only after 140 methods
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: the method's key in its hyperparameters that holds the dimension of the embeddings ``z`` its
#: ``ssl_loss`` returns (what the collapse monitor's entropy sees): DINO returns its head's
#: bottleneck output; every other registered method its projector output (``proj_dim``)
MONITORED_DIM_KEY = {"dino": "bottleneck_dim"}
DENSE = 30  # series with more points than this show a marker on every n-th point only


def method_styles(methods: Iterable[str]) -> dict[str, tuple[tuple[float, ...], str]]:
    """method -> (colour, marker), deterministic in the sorted method names: distinct colours for
    up to 20 methods and distinct (colour, marker) pairs for up to 140."""
    names = sorted(set(methods))
    return {name: (COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)]) for i, name in enumerate(names)}


def log_sphere_area(dim: int) -> float:
    """log of the surface area of S^{dim-1} in R^dim, log(2 pi^{d/2} / Gamma(d/2)): the entropy of
    the uniform distribution on it (``ssl_bench.metrics.entropy.log_sphere_area``, which imports
    torch; the report does not need it)."""
    return math.log(2.0) + 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim)


def embedding_dim(run_dir: Path, method: str | None = None) -> int | None:
    """Dimension d of the embeddings whose entropy the collapse monitor logs, or None if unknown.

    Neither metrics.csv nor summary.json records it; it is derived from the run's config: the
    method's name (``config.yaml``'s ``model.name``, else ``method``) picks the key
    (``MONITORED_DIM_KEY``, else ``proj_dim``), read from ``hparams.yaml`` (written by the run's
    logger with every constructor argument of the method, defaults included), else from
    ``config.yaml``'s ``model`` section (only the keys the config sets). A method that monitors
    something else than the embeddings of that key would need its entry in ``MONITORED_DIM_KEY``.
    """
    model = read_mapping(run_dir / "config.yaml").get("model")
    model = model if isinstance(model, dict) else {}
    name = model.get("name") or method
    key = MONITORED_DIM_KEY.get(str(name), "proj_dim")
    for source in (read_mapping(run_dir / "hparams.yaml"), model):
        value = source.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def read_metrics(path: Path) -> dict[str, list[tuple[float, float]]]:
    """metric -> [(step, value)] from a Lightning metrics.csv."""
    out: dict[str, list[tuple[float, float]]] = {}
    try:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                x = row.get(X_KEY)
                for metric, _ in CURVES:
                    value = row.get(metric)
                    if value and x:
                        out.setdefault(metric, []).append((float(x), float(value)))
    except (OSError, ValueError, csv.Error):
        pass
    return out


def seed_stats(curves: list[list[tuple[float, float]]]) -> tuple[list[float], list[float], list[float], list[float]]:
    """(xs, mean, min, max) over the runs at each measured x (the runs measured there)."""
    by_x: dict[float, list[float]] = {}
    for curve in curves:
        last: dict[float, float] = dict(curve)  # a resumed run's repeated steps: the later value wins
        for x, v in last.items():
            if math.isfinite(v):
                by_x.setdefault(x, []).append(v)
    xs = sorted(by_x)
    return (xs, [sum(by_x[x]) / len(by_x[x]) for x in xs], [min(by_x[x]) for x in xs],
            [max(by_x[x]) for x in xs])


def accuracy_plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    agg = aggregate(rows)
    metrics = [m for m in TABLE_METRICS if any(r.get(m) is not None for r in rows)]
    if not agg or not metrics:
        return None
    fig, axes = plt.subplots(1, len(agg), figsize=(max(5, 1.6 * max(len(m) for m in agg.values()) + 2) * len(agg), 4),
                             squeeze=False)
    width = 0.8 / len(metrics)
    for ax, (dataset, methods) in zip(axes[0], sorted(agg.items())):
        names = sorted(m for m in methods if not is_baseline(m)) + sorted(m for m in methods if is_baseline(m))
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


def _entropy_shift(run_dir: Path, method: str) -> float | None:
    """What to subtract from the run's entropy for the dimension-free form (None: d unknown)."""
    dim = embedding_dim(run_dir, method)
    return None if dim is None else log_sphere_area(dim)


def _draw_series(ax: Any, xs: list[float], mean: list[float], lo: list[float], hi: list[float], n_runs: int,
                 colour: Any, marker: str, label: str) -> None:
    if len(xs) == 1:  # one measurement: a marker, no line; min-max over seeds as an error bar
        ax.plot(xs, mean, linestyle="none", marker=marker, markersize=6, color=colour, label=label)
        if n_runs > 1:
            ax.errorbar(xs, mean, yerr=[[mean[0] - lo[0]], [hi[0] - mean[0]]], fmt="none", ecolor=colour,
                        capsize=3)
        return
    every = 1 if len(xs) <= DENSE else max(1, len(xs) // 8)
    ax.plot(xs, mean, marker=marker, markersize=4 if every == 1 else 5, markevery=every, color=colour,
            linewidth=1.2, label=label)
    if n_runs > 1:
        ax.fill_between(xs, lo, hi, color=colour, alpha=0.18, linewidth=0)


BASELINE_DASHES: list[Any] = ["--", ":", "-.", (0, (5, 1, 1, 1, 1, 1))]  # one per network's random-init row


def curve_figure(sweep_dir: Path, rows: list[dict[str, Any]], dataset: str,
                 styles: dict[str, tuple[Any, str]] | None = None) -> Figure | None:
    """The curves of one dataset's finished cells (None when there are none); the caller closes it."""
    finished = [r for r in rows if r["dataset"] == dataset and r.get("status") == "finished"]
    runs: dict[str, list[tuple[Path, dict[str, list[tuple[float, float]]]]]] = {}
    for r in finished:
        if not is_baseline(r["method"]):
            run_dir = sweep_dir / r["cell"]
            runs.setdefault(r["method"], []).append((run_dir, read_metrics(run_dir / "metrics.csv")))
    if not runs:
        return None
    styles = styles or method_styles(runs)
    seeds = {m: len(v) for m, v in runs.items()}
    raw_entropy: set[str] = set()
    baseline_rows = sorted({r["method"] for r in finished if is_baseline(r["method"])})
    dashes = {name: BASELINE_DASHES[i % len(BASELINE_DASHES)] for i, name in enumerate(baseline_rows)}
    drawn_baselines: set[str] = set()
    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 3.8), sharex=True, layout="constrained")
    for ax, (metric, label) in zip(axes, CURVES):
        points = []  # measured points per drawn series
        for method, method_runs in sorted(runs.items()):
            curves = [run.get(metric, []) for _, run in method_runs]
            if metric == "entropy":
                shifts = [_entropy_shift(run_dir, method) for run_dir, _ in method_runs]
                if all(s is not None for s in shifts):
                    curves = [[(x, v - s) for x, v in c] for c, s in zip(curves, shifts)]
                elif any(curves):
                    raw_entropy.add(method)  # not shifted: one of its runs has no known dimension
            xs, mean, lo, hi = seed_stats(curves)
            if xs:
                colour, marker = styles[method]
                _draw_series(ax, xs, mean, lo, hi, len(method_runs), colour, marker, method)
                points.append(len(xs))
        baselines: dict[str, list[float]] = {}  # one dashed line per network's random-init row
        for r in finished:
            value = r.get(metric)
            if is_baseline(r["method"]) and value is not None:
                shift = _entropy_shift(sweep_dir / r["cell"], r["method"]) if metric == "entropy" else 0.0
                if shift is not None:
                    baselines.setdefault(r["method"], []).append(value - shift)
        for name, values in sorted(baselines.items()):
            drawn_baselines.add(name)
            ax.axhline(sum(values) / len(values), color="black", linestyle=dashes[name],
                       linewidth=1, label=baseline_label(name))
        if metric == "entropy":
            label = ENTROPY_RELATIVE_LABEL + ("\n[raw nats where d is unknown]" if raw_entropy else "")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
        ax.set_title(f"{metric}" + (" (one measurement per run)" if points and max(points) == 1 else "")
                     + (" (0 = uniform on the sphere S^{d-1})" if metric == "entropy" else ""))
    handles: list[Any] = [Line2D([], [], color=styles[m][0], marker=styles[m][1], label=(
        f"{m} ({seeds[m]} seed{'s' if seeds[m] > 1 else ''})" + (" [entropy: raw nats, d unknown]"
                                                                  if m in raw_entropy else "")))
        for m in sorted(runs)]
    handles += [Line2D([], [], color="black", linestyle=dashes[name], label=baseline_label(name))
                for name in sorted(drawn_baselines)]
    if any(n > 1 for n in seeds.values()):
        handles.append(Patch(color="gray", alpha=0.3, label=f"band / error bar: {BAND}"))
    fig.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)
    fig.suptitle(f"{dataset}: mean over seeds" + (f", shaded band / error bar: {BAND}"
                                                  if any(n > 1 for n in seeds.values()) else "")
                 + "; finished cells only", fontsize=9)
    return fig


def curve_plots(sweep_dir: Path, rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    paths = []
    styles = method_styles(r["method"] for r in rows if not is_baseline(r["method"]))
    for dataset in sorted({r["dataset"] for r in rows}):
        fig = curve_figure(sweep_dir, rows, dataset, styles)
        if fig is None:
            continue
        path = out_dir / f"curves_{dataset}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def make_plots(sweep_dir: Path, rows: list[dict[str, Any]]) -> list[Path]:
    out_dir = sweep_dir / "plots"
    out_dir.mkdir(exist_ok=True)
    paths = [accuracy_plot(rows, out_dir / "final_accuracy.png")]
    return [p for p in paths if p is not None] + curve_plots(sweep_dir, rows, out_dir)
