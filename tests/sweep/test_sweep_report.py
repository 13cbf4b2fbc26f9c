"""The sweep report and its plots on hand-made sweep directories (no training): one (colour, marker)
per method, measured points drawn as measured, a band over seeds, a dimension-free entropy axis,
corrupt summaries reported and left out of the means, and the wall time of a cell whoever ran it."""
import csv
import json
import math
import os
import time

import matplotlib
import pytest
import yaml

matplotlib.use("Agg")
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from ssl_bench.sweep import plots  # noqa: E402
from ssl_bench.sweep.publish import build_report  # noqa: E402
from ssl_bench.sweep.report import CORRUPT, collect_rows  # noqa: E402

DATASET = "toy"
METHODS_20 = ["barlow_twins", "byol", "cmc", "deepcluster_v2", "dino", "moco_v2plus", "nnclr", "paws", "ressl",
              "simclr", "simsiam", "swav", "vicreg", "wmse", "m15", "m16", "m17", "m18", "m19", "m20"]


def make_cell(sweep, method, seed, rows=(), summary=None, record=None, proj_dim=64, hparams=None):
    """A run directory as pretrain leaves it: config.yaml, metrics.csv (``rows``: dicts with step,
    epoch and metric columns), summary.json (a dict, or a string written as is), hparams.yaml, and
    the runner's cell record."""
    cell = f"{method}-{DATASET}-s{seed}"
    run = sweep / cell
    run.mkdir(parents=True)
    model = {"name": method, "backbone": "tiny_cnn"}
    if proj_dim is not None:
        model["proj_dim"] = proj_dim
    (run / "config.yaml").write_text(yaml.safe_dump({"model": model, "data": {"dataset": DATASET, "batch_size": 8},
                                                     "trainer": {"max_epochs": 2}, "run": {"seed": seed}}))
    if hparams is not None:
        (run / "hparams.yaml").write_text(yaml.safe_dump(hparams))
    if rows:
        columns = sorted({k for r in rows for k in r})
        with (run / "metrics.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    if summary is not None:
        base = {"method": method, "dataset": DATASET, "epochs": 2, "global_step": 20, "fit_seconds": 10.0,
                "world_size": 1}
        (run / "summary.json").write_text(summary if isinstance(summary, str) else json.dumps({**base, **summary}))
    if record is not None:
        (sweep / "_sweep" / "cells").mkdir(parents=True, exist_ok=True)
        (sweep / "_sweep" / "cells" / f"{cell}.json").write_text(json.dumps({"cell": cell, **record}))
    return cell


def curve_rows(knn_steps=(19,), rankme=10.0, entropy=-45.0, knn=40.0):
    """Monitor rows every 5 steps (entropy, rankme) and k-NN rows at ``knn_steps`` (its own rows, as
    Lightning's validation logs them)."""
    rows = [{"epoch": s // 10, "step": s, "rankme": rankme + s / 10, "entropy": entropy} for s in range(4, 20, 5)]
    rows += [{"epoch": s // 10, "step": s, "val_knn_top1": knn + s / 10} for s in knn_steps]
    return rows


def figure_for(sweep):
    fig = plots.curve_figure(sweep, collect_rows(sweep), DATASET)
    assert fig is not None
    return fig, {ax.get_title().split(" ")[0]: ax for ax in fig.axes}


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    matplotlib.pyplot.close("all")


def test_twenty_methods_get_distinct_colours_and_markers(tmp_path):
    styles = plots.method_styles(reversed(METHODS_20))
    assert styles == plots.method_styles(METHODS_20)  # by name order, not by the order given
    assert len({(to_hex(c), m) for c, m in styles.values()}) == 20
    assert len({to_hex(c) for c, _ in styles.values()}) == 20
    for method in METHODS_20:
        make_cell(tmp_path, method, 0, curve_rows(), summary={})
    fig, axes = figure_for(tmp_path)
    drawn = {label: (to_hex(line.get_color()), line.get_marker())
             for label, line in lines_by_label(axes["rankme"]).items()}
    assert sorted(drawn) == sorted(METHODS_20)
    assert len(set(drawn.values())) == 20
    assert drawn["barlow_twins"][0] != drawn["simsiam"][0]  # the pair that shared one blue


def test_knn_measured_once_is_a_marker_and_several_points_a_line_through_them(tmp_path):
    make_cell(tmp_path, "simclr", 0, curve_rows(knn_steps=(19,)), summary={})
    make_cell(tmp_path, "byol", 0, curve_rows(knn_steps=(9, 19)), summary={})
    fig, axes = figure_for(tmp_path)
    knn = lines_by_label(axes["val_knn_top1"])
    once = knn["simclr"]
    assert once.get_linestyle() == "None" and once.get_marker() not in (None, "None", "")
    assert list(once.get_xdata()) == [19.0] and list(once.get_ydata()) == [pytest.approx(41.9)]
    twice = knn["byol"]
    assert twice.get_linestyle() == "-" and twice.get_marker() not in (None, "None", "")
    assert list(twice.get_xdata()) == [9.0, 19.0]  # the measured steps, nothing in between
    assert twice.get_markevery() in (None, 1)
    assert lines_by_label(axes["rankme"])["simclr"].get_linestyle() == "-"


def test_curves_over_three_seeds_have_a_min_max_band(tmp_path):
    for seed, offset in enumerate((0.0, 3.0, 9.0)):
        make_cell(tmp_path, "simclr", seed, curve_rows(rankme=10.0 + offset, knn=40.0 + offset), summary={})
    make_cell(tmp_path, "byol", 0, curve_rows(), summary={})  # one seed: no band
    fig, axes = figure_for(tmp_path)
    ax = axes["rankme"]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(10.4) and max(ys) == pytest.approx(19.0 + 1.9)
    mean = lines_by_label(ax)["simclr"]
    assert list(mean.get_ydata()) == pytest.approx([10.0 + s / 10 + 4.0 for s in range(4, 20, 5)])
    # the single k-NN point gets a min-max error bar over its seeds instead of a band
    knn_ax = axes["val_knn_top1"]
    assert not [c for c in knn_ax.collections if isinstance(c, PolyCollection)]
    bars = [c for c in knn_ax.collections if c.get_segments()]
    assert [list(s[:, 1]) for s in bars[0].get_segments()] == [[pytest.approx(41.9), pytest.approx(50.9)]]
    assert knn_ax.get_title() == "val_knn_top1 (one measurement per run)"
    assert "min-max over seeds" in fig.get_suptitle()
    assert "simclr (3 seeds)" in [t.get_text() for t in fig.legends[0].get_texts()]


def uniform_entropy(dim, n=512, seed=0):
    """The collapse monitor's entropy estimate (vMF KDE, resubstitution, kappa 10) of n directions
    drawn uniformly on S^{dim-1}."""
    import torch

    from ssl_bench.metrics.entropy import DEFAULT_KAPPA, vmf_kde_entropy

    z = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return float(vmf_kde_entropy(z, DEFAULT_KAPPA))


def test_entropy_axis_is_relative_to_the_uniform_distribution_on_the_sphere(tmp_path):
    from ssl_bench.metrics.entropy import log_sphere_area

    assert plots.log_sphere_area(64) == pytest.approx(log_sphere_area(64))
    assert plots.log_sphere_area(2048) == pytest.approx(log_sphere_area(2048))
    h64, h2048 = uniform_entropy(64), uniform_entropy(2048)
    assert abs(h64 - h2048) > 1000  # the raw nats: not one axis
    make_cell(tmp_path, "simclr", 0, curve_rows(entropy=h64), summary={}, proj_dim=64)
    # the dimension from hparams.yaml (every constructor argument) when the config leaves it out
    make_cell(tmp_path, "vicreg", 0, curve_rows(entropy=h2048), summary={}, proj_dim=None,
              hparams={"proj_dim": 2048, "lr": 0.1})
    fig, axes = figure_for(tmp_path)
    ax = axes["entropy"]
    assert ax.get_ylabel() == plots.ENTROPY_RELATIVE_LABEL and "log area(S^{d-1})" in ax.get_ylabel()
    lines = lines_by_label(ax)
    y64, y2048 = lines["simclr"].get_ydata()[0], lines["vicreg"].get_ydata()[0]
    assert y64 == pytest.approx(h64 - log_sphere_area(64)) and y2048 == pytest.approx(h2048 - log_sphere_area(2048))
    assert abs(y64 - y2048) < 1.5 and -math.log(512) - 1 < min(y64, y2048) and max(y64, y2048) < 1


def test_entropy_of_unknown_dimension_stays_in_raw_nats_and_says_so(tmp_path):
    make_cell(tmp_path, "simclr", 0, curve_rows(entropy=-45.0), summary={}, proj_dim=64)
    make_cell(tmp_path, "mystery", 0, curve_rows(entropy=-45.0), summary={}, proj_dim=None)
    fig, axes = figure_for(tmp_path)
    lines = lines_by_label(axes["entropy"])
    assert lines["mystery"].get_ydata()[0] == pytest.approx(-45.0)
    assert lines["simclr"].get_ydata()[0] == pytest.approx(-45.0 - plots.log_sphere_area(64))
    assert "raw nats" in axes["entropy"].get_ylabel()
    assert any("mystery" in t.get_text() and "raw nats" in t.get_text() for t in fig.legends[0].get_texts())


def test_embedding_dim_of_dino_is_its_bottleneck(tmp_path):
    make_cell(tmp_path, "dino", 0, summary={}, proj_dim=None, hparams={"bottleneck_dim": 96, "out_dim": 256})
    make_cell(tmp_path, "simclr", 0, summary={}, proj_dim=32, hparams={"proj_dim": 128})
    assert plots.embedding_dim(tmp_path / f"dino-{DATASET}-s0") == 96
    assert plots.embedding_dim(tmp_path / f"simclr-{DATASET}-s0") == 128  # hparams.yaml: what the run built


def test_corrupt_summary_is_reported_and_left_out_of_the_mean(tmp_path):
    for seed, knn in enumerate((40.0, 50.0)):
        make_cell(tmp_path, "simclr", seed, curve_rows(), summary={"val_knn_top1": knn})
    bad = make_cell(tmp_path, "simclr", 2, curve_rows(), summary='{"val_knn_top1": 99.0, "epo')
    (tmp_path / bad / "checkpoints").mkdir()
    (tmp_path / bad / "checkpoints" / "last.ckpt").write_bytes(b"")  # as if interrupted before
    build_report(tmp_path)
    with (tmp_path / "results.csv").open(newline="") as f:
        rows = {r["cell"]: r for r in csv.DictReader(f)}
    assert rows[bad]["status"] == CORRUPT == "corrupt summary.json"
    assert "summary.json unreadable" in rows[bad]["error"]
    md = (tmp_path / "results.md").read_text()
    assert f"Left out of the means (1 cell, see \"Not finished\"): {bad} (corrupt summary.json)." in md
    assert "| simclr | 2 | **45.00 +- 7.07** |" in md  # the mean of the two readable seeds
    assert f"| {bad} | corrupt summary.json | summary.json unreadable" in md
    assert (tmp_path / "plots" / f"curves_{DATASET}.png").is_file()
    fig, _ = figure_for(tmp_path)  # the curves are those of the cells the means are over
    assert [t.get_text() for t in fig.legends[0].get_texts()][0] == "simclr (2 seeds)"


def test_no_line_about_left_out_cells_when_every_cell_finished(tmp_path):
    make_cell(tmp_path, "simclr", 0, curve_rows(), summary={"val_knn_top1": 40.0})
    build_report(tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "Left out" not in md and "Not finished" not in md


def test_wall_time_is_the_one_of_the_process_that_ran_the_cell(tmp_path):
    now = time.time()
    # two launches ran the cell: the other launch's process finished it (its record: wall_s 60);
    # this runner's process lost the race, and the runner stamped its own slot time on that record
    raced = make_cell(tmp_path, "simclr", 0, summary={"fit_seconds": 50.0},
                      record={"status": "failed", "attempt": "a", "state_before": "new", "started": now - 61,
                              "ended": now + 1, "wall_s": 60.0, "runner_wall_s": 4.2,
                              "error": "cell process exited with code 0"})
    # a launch that found the training finished and only evaluated it: training + its own time
    evaluated = make_cell(tmp_path, "simclr", 1, summary={"fit_seconds": 50.0},
                          record={"status": "finished", "state_before": "finished", "started": now - 3,
                                  "ended": now + 1, "wall_s": 3.0, "runner_wall_s": 7.0})
    # a record of an earlier failed attempt; the run was then finished by a process writing no record
    stale = make_cell(tmp_path, "simclr", 2, summary={"fit_seconds": 50.0},
                      record={"status": "failed", "started": now - 4000, "ended": now - 3990, "wall_s": 10.0,
                              "runner_wall_s": 12.0, "error": "boom"})
    # an older record without wall_s: ended - started
    plain = make_cell(tmp_path, "simclr", 3, summary={"fit_seconds": 50.0},
                      record={"status": "finished", "started": now - 70, "ended": now + 1})
    killed = make_cell(tmp_path, "simclr", 4, record={"status": "failed", "started": now - 9, "runner_wall_s": 9.5,
                                                        "error": "cell process exited with code -9"})
    os.utime(tmp_path / stale / "summary.json", (now, now))
    rows = {r["cell"]: r for r in collect_rows(tmp_path)}
    assert rows[raced]["wall_time_s"] == 60.0 and rows[raced]["status"] == "finished"
    assert rows[evaluated]["wall_time_s"] == 53.0
    assert rows[stale]["wall_time_s"] == 50.0 and rows[stale]["status"] == "finished"
    assert rows[plain]["wall_time_s"] == pytest.approx(71.0)
    assert rows[killed]["wall_time_s"] == 9.5 and rows[killed]["status"] == "failed"


def test_random_init_rows_of_two_networks_are_reported_apart(tmp_path):
    """Two networks' random-init rows stay two rows (never one mean over different networks), are
    named after their network's first method, are not ranked, and get a dashed line each."""
    make_cell(tmp_path, "simclr", 0, curve_rows(knn=40.0), summary={"val_knn_top1": 40.0})
    make_cell(tmp_path, "random_init", 0, summary={"val_knn_top1": 20.0})
    make_cell(tmp_path, "random_init_for_mae", 0, summary={"val_knn_top1": 30.0})
    build_report(tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "| simclr | 1 | **40.00** |" in md
    assert "| random init (baseline) | 1 | 20.00 |" in md
    assert "| random init (mae's network) | 1 | 30.00 |" in md
    _, axes = figure_for(tmp_path)
    lines = lines_by_label(axes["val_knn_top1"])
    assert lines["random init (baseline)"].get_ydata()[0] == 20.0
    assert lines["random init (mae's network)"].get_ydata()[0] == 30.0
    assert lines["random init (baseline)"].get_linestyle() != lines["random init (mae's network)"].get_linestyle()
