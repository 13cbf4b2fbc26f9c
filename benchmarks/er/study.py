"""ER reproduction study at CPU scale (issue #11; Rodriguez-Galvez et al., ICML 2023, Sec. 5-6).

BYOL vs BYOL-ER and DINO vs DINO-ER across batch sizes 16 / 64 / 256 and constant EMA coefficients
0 / 0.9 / 0.99, SimSiam vs SimSiam-ER across the same batch sizes, on a CIFAR-10 subset with the
tiny CNN (42 runs;
defaults: 1,000 training images (also the k-NN bank), 5 epochs, k-NN on 1,000 test images,
seed 0; the learning tests' optimiser settings, their lrs stated at batch 64 where they were tuned and
scaled linearly with the batch size). Each run
logs the collapse monitor's entropy / reconstruction (vMF, kappa 10, resubstitution) over training;
the study writes ``results.md`` / ``results.csv`` (final k-NN top-1, minimum entropy over
training, effective number of embeddings, collapsed or not) and PNG plots of entropy and
reconstruction over training into ``--out``. Finished runs are reused, so a rerun only does what
is missing.

    OMP_NUM_THREADS=1 python benchmarks/er/study.py --out benchmarks/er/out

Collapse rule (stated before running): with the resubstitution estimator,
``N_eff = exp(H - H_floor)`` where ``H_floor = -log C_d(kappa) - kappa`` is the entropy of a batch
of identical embeddings; N_eff is the number of kernel-width clusters the monitor's 2,048-embedding
buffer looks like (1 = all equal, 2,048 = all far apart at the kernel's scale). A run is
**collapsed** when its final N_eff < 10.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import pytorch_lightning as pl

from ssl_bench.config import load_config
from ssl_bench.metrics import log_vmf_normalizer
from ssl_bench.build import build_datamodule, build_method, build_trainer
from ssl_bench.pretrain import pretrain

KAPPA = 10.0
PROJ_DIM = 64
COLLAPSE_N_EFF = 10.0
BATCH_SIZES = (16, 64, 256)
EMAS = (0.0, 0.9, 0.99)
# the learning tests' short-run settings (tests/learning/test_learning_simclr_byol_simsiam_barlow.py), ER on top
METHOD_ARGS = {
    "byol": {"optimizer": "lars", "lr": 2.0, "pred_hidden_dim": 256, "weight_decay": 1e-5},
    "simsiam": {"lr": 0.3, "pred_hidden_dim": 64, "weight_decay": 5e-4},
    # tests/learning/test_learning_dino_ressl_vicreg_wmse.py's DINO; its head's bottleneck (the monitored embedding) is PROJ_DIM
    "dino": {"optimizer": "lars", "lr": 2.0, "weight_decay": 1e-5, "bottleneck_dim": PROJ_DIM, "out_dim": 256,
             "head_batch_norm": True, "teacher_temp": 0.04, "warmup_teacher_temp_epochs": 0, "clip_grad": 3.0},
}
AUGMENT = {"byol": "byol", "simsiam": "simclr", "dino": "byol"}
EMA_METHODS = ("byol", "dino")
# ER: vMF reconstruction for the continuous heads; DINO's softmax head reconstructs the teacher's
# distribution by cross-entropy and takes the entropy of the batch-mean softmax (configs/*/dino_er.yaml)
ER_ARGS = {"er_entropy_weight": 1.0, "er_reconstruction": "vmf", "er_kappa": KAPPA}
ER_ARGS_BY_METHOD = {"dino": {"er_entropy_weight": 1.0, "er_reconstruction": "cross_entropy", "er_kappa": KAPPA}}


def runs() -> list[dict]:
    """Every cell of the study: method, ER or not, batch size, EMA (BYOL and DINO only)."""
    cells = []
    for batch in BATCH_SIZES:
        for method in EMA_METHODS:
            for ema in EMAS:
                for er in (False, True):
                    cells.append({"method": method, "er": er, "batch": batch, "ema": ema})
        for er in (False, True):
            cells.append({"method": "simsiam", "er": er, "batch": batch, "ema": None})
    return cells


def cell_name(c: dict) -> str:
    ema = "" if c["ema"] is None else f"-ema{c['ema']:g}"
    return f"{c['method']}{'_er' if c['er'] else ''}-b{c['batch']}{ema}"


def config(c: dict | None, out: Path, args: argparse.Namespace) -> dict:
    method = c["method"] if c else "simsiam"
    cfg = load_config(None)
    cfg["run"].update(seed=args.seed, dir=str(out / "runs"), name=cell_name(c) if c else "random-init")
    model = {"name": method, "backbone": "tiny_cnn", "backbone_kwargs": {"width": 16}, "proj_hidden_dim": 256,
             "proj_dim": PROJ_DIM, "warmup_epochs": 1, "optimizer": "sgd", "linear_probe": False,
             "er_kappa": KAPPA, "reference_batch_size": 64, **METHOD_ARGS[method]}  # lrs tuned at batch 64
    if c:
        steps = args.epochs * math.ceil(args.train_subset / c["batch"])
        model["monitor_every_n_steps"] = max(1, steps // 25)
        if c["ema"] is not None:
            model.update(base_tau=c["ema"], final_tau=c["ema"])  # a constant EMA coefficient
        if c["er"]:
            model.update(ER_ARGS_BY_METHOD.get(method, ER_ARGS))
    if method == "dino":  # its head has bottleneck_dim / out_dim instead of proj_dim
        model.pop("proj_dim")
    cfg["model"] = model
    cfg["data"] = {"dataset": "cifar10", "batch_size": c["batch"] if c else 64, "num_workers": 0,
                   "pipeline": "batched", "train_subset": args.train_subset, "val_subset": args.val_subset,
                   "eval_train_subset": args.train_subset,
                   "augment": {"name": AUGMENT[method], "crop_scale": [0.2, 1.0]}}
    cfg["trainer"] = {"max_epochs": args.epochs, "accelerator": "cpu", "enable_progress_bar": False,
                      "enable_model_summary": False, "check_val_every_n_epoch": args.epochs,
                      "log_every_n_steps": 1}
    return cfg


def random_init_knn(out: Path, args: argparse.Namespace) -> float:
    cfg = config(None, out, args)
    pl.seed_everything(args.seed, verbose=False)
    dm = build_datamodule(cfg["data"], seed=cfg["run"]["seed"])
    model = build_method(cfg["model"], dm.num_classes)
    trainer = build_trainer({**cfg["trainer"]}, out / "runs" / "random-init", loggers=[])
    trainer.validate(model, datamodule=dm, verbose=False)
    return float(trainer.callback_metrics["val_knn_top1"])


def monitor_series(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Per-step monitor values (step, value) of entropy and reconstruction from metrics.csv."""
    series: dict[str, list[tuple[int, float]]] = {"entropy": [], "reconstruction": []}
    with open(run_dir / "metrics.csv") as f:
        for row in csv.DictReader(f):
            for key in series:
                if row.get(key) not in (None, "") and row.get("step") not in (None, ""):
                    series[key].append((int(float(row["step"])), float(row[key])))
    return series


def plot(rows: list[dict], series: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for method in METHOD_ARGS:
        if not any(r["method"] == method for r in rows):
            continue
        fig, axes = plt.subplots(2, len(BATCH_SIZES), figsize=(5 * len(BATCH_SIZES), 7), squeeze=False)
        for col, batch in enumerate(BATCH_SIZES):
            for r in rows:
                if r["method"] != method or r["batch"] != batch:
                    continue
                s = series[r["run"]]
                style = "-" if r["er"] else "--"
                label = ("ER" if r["er"] else "plain") + ("" if r["ema"] == "" else f", ema {r['ema']}")
                for row, key in enumerate(("entropy", "reconstruction")):
                    if s[key]:
                        x, y = zip(*s[key])
                        axes[row][col].plot(x, y, style, label=label)
            axes[0][col].axhline(rows[0]["h_floor"], color="grey", lw=0.8)
            axes[0][col].set_title(f"{method}, batch {batch}")
            axes[0][col].set_ylabel("entropy (nats)")
            axes[1][col].set_ylabel("reconstruction (nats)")
            axes[1][col].set_xlabel("step")
            axes[0][col].legend(fontsize=7)
        fig.suptitle(f"{method} vs {method}-ER: monitor entropy / reconstruction (vMF, kappa {KAPPA:g}); "
                     "grey: collapsed floor")
        fig.tight_layout()
        fig.savefig(out / f"{method}_entropy_reconstruction.png", dpi=80)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/er/out"))
    parser.add_argument("--train-subset", type=int, default=1000)
    parser.add_argument("--val-subset", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="run only cells whose name contains this")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "only")}
    settings_file = args.out / "settings.json"
    if settings_file.exists() and json.loads(settings_file.read_text()) != settings:
        raise SystemExit(f"{args.out} holds runs made with other settings ({settings_file}); use another --out")
    settings_file.write_text(json.dumps(settings))
    h_floor = float(-log_vmf_normalizer(PROJ_DIM, KAPPA)) - KAPPA
    baseline_file = args.out / "random_init.json"
    if not baseline_file.exists():
        baseline_file.write_text(json.dumps({"val_knn_top1": random_init_knn(args.out, args)}))
    baseline = json.loads(baseline_file.read_text())["val_knn_top1"]
    rows, series = [], {}
    for c in runs():
        name = cell_name(c)
        if args.only and args.only not in name:
            continue
        run_dir = args.out / "runs" / name
        t0 = time.time()
        if not (run_dir / "summary.json").exists():
            pretrain(config(c, args.out, args))
            print(f"{name}: {time.time() - t0:.0f} s", flush=True)
        summary = json.loads((run_dir / "summary.json").read_text())
        series[name] = s = monitor_series(run_dir)
        entropies = [v for _, v in s["entropy"]]
        final_n_eff = math.exp(entropies[-1] - h_floor)
        rows.append({"run": name, "method": c["method"], "er": c["er"], "batch": c["batch"],
                     "ema": "" if c["ema"] is None else c["ema"], "knn": summary["val_knn_top1"],
                     "min_entropy": min(entropies), "final_entropy": entropies[-1],
                     "final_n_eff": final_n_eff, "final_reconstruction": s["reconstruction"][-1][1],
                     "rankme": summary.get("rankme"), "collapsed": final_n_eff < COLLAPSE_N_EFF,
                     "h_floor": h_floor})
    with open(args.out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"random-init k-NN top-1: {baseline:.2f}%; collapsed floor H_floor = {h_floor:.2f} nats "
             f"(d = {PROJ_DIM}, kappa = {KAPPA:g}); collapsed: final N_eff = exp(H - H_floor) < {COLLAPSE_N_EFF:g}",
             "",
             "| method | batch | EMA | k-NN top-1 (%) | min entropy | final entropy | final N_eff | "
             "final reconstruction | RankMe | collapsed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['method']}{'-ER' if r['er'] else ''} | {r['batch']} | {r['ema']} | {r['knn']:.2f} | "
                     f"{r['min_entropy']:.2f} | {r['final_entropy']:.2f} | {r['final_n_eff']:.0f} | "
                     f"{r['final_reconstruction']:.2f} | {r['rankme']:.1f} | {'yes' if r['collapsed'] else 'no'} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, series, args.out)


if __name__ == "__main__":
    main()
