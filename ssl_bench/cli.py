"""The ``ssl-bench`` command.

    ssl-bench pretrain --config configs/cifar10/simclr.yaml --trainer.max_epochs 1 --data.batch_size 64
    ssl-bench pretrain --config my.yaml --model my_pkg.my_module.MyMethod
    ssl-bench eval --ckpt runs/simclr-cifar10-seed0/checkpoints/last.ckpt --protocol knn
    ssl-bench eval --random-init --config configs/cifar10/simclr.yaml --protocol knn
    ssl-bench sweep configs/sweeps/digits-small.yaml
    ssl-bench report runs/sweeps/digits-small

Errors in the user's input end in one line on stderr (exit code 2); set SSL_BENCH_DEBUG=1 for the
full traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from .errors import SSLBenchError

USAGE_ERRORS = (SSLBenchError, FileNotFoundError, ValueError, TypeError, ImportError)


def _pretrain(args: argparse.Namespace, overrides: list[str]) -> int:
    from .config import apply_overrides, load_config
    from .pretrain import pretrain, summary_line

    cfg = apply_overrides(load_config(args.config), overrides)
    summary = pretrain(cfg)
    if summary.get("is_global_zero", True):
        print(summary_line(summary))
    return 0


def _eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from .config import SECTIONS, apply_overrides
    from .evaluate import evaluate

    given = apply_overrides({s: {} for s in SECTIONS}, overrides)
    if given["trainer"]:
        raise ValueError("ssl-bench eval takes --data.<key>, --model.<key> and --run.<key> overrides only")
    result = evaluate(args.ckpt, args.protocol, given["data"], k=args.k, temperature=args.temperature,
                      epochs=args.epochs, config=args.config, random_init=args.random_init,
                      label_fraction=args.label_fraction, label_indices_file=args.label_indices,
                      model_overrides=given["model"], run_overrides=given["run"])
    labels = "" if result["labelled_size"] == result["train_size"] else f", {result['labelled_size']} labelled"
    print(f"{result['method']} on {result['dataset']}: {args.protocol} top-1 {result[args.protocol + '_top1']:.2f}% "
          f"(train {result['train_size']}{labels}, val {result['val_size']} images) -> {result['path']}")
    return 0


def _sweep(args: argparse.Namespace, overrides: list[str]) -> int:
    import yaml

    from .sweep.runner import run_sweep

    if overrides:
        raise ValueError(f"unexpected argument(s) {' '.join(overrides)}; ssl-bench sweep takes SPEC.yaml "
                         "and --dir/--dry-run/--backend/--parallel/--only/--methods/--seeds/--set")
    sets = {}
    for item in args.set or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--set {item}: use --set section.key=value")
        sets[key] = yaml.safe_load(value)
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        raise ValueError(f"--seeds {args.seeds}: use comma-separated integers, e.g. 0,1,2") from None
    return run_sweep(args.spec, sweep_dir=args.dir, dry_run=args.dry_run, backend=args.backend,
                     parallel=args.parallel, only=args.only, methods=args.methods.split(",") if args.methods else None,
                     seeds=seeds, overrides=sets)


def _report(args: argparse.Namespace, overrides: list[str]) -> int:
    from .sweep.report import build_report

    if overrides:
        raise ValueError(f"unexpected argument(s) {' '.join(overrides)}; usage: ssl-bench report SWEEP_DIR")
    paths = build_report(args.sweep_dir, wandb=args.wandb)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssl-bench", description="Multi-view self-supervised learning benchmark")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pretrain", help="pretrain one method on one dataset",
                       description="Any config key can be overridden: --trainer.max_epochs 1, "
                                   "--data.batch_size 64, --model my_pkg.module.MyMethod")
    p.add_argument("--config", help="YAML config with sections model, data, trainer, run")
    p.set_defaults(func=_pretrain)
    e = sub.add_parser("eval", help="evaluate the frozen backbone of a checkpoint (k-NN or linear)",
                       description="Reads config.yaml of the checkpoint's run (or --config); --data.<key>, "
                                   "--model.<key>, --run.<key> overrides apply. Results go to "
                                   "<run dir>/evals/, one file per setting.")
    e.add_argument("--ckpt", help="a checkpoint written by ssl-bench pretrain")
    e.add_argument("--config", help="the method/backbone/data asked for (default: the run's config.yaml)")
    e.add_argument("--random-init", action="store_true",
                   help="evaluate the --config's backbone untrained (same seed): the baseline to beat")
    e.add_argument("--label-fraction", type=float, help="few-label evaluation: a seeded class-balanced "
                   "fraction of the train labels (e.g. 0.01, 0.1)")
    e.add_argument("--label-indices", help="few-label evaluation: a file of train indices (JSON list or one per line)")
    e.add_argument("--protocol", required=True, choices=["knn", "linear"])
    e.add_argument("--k", type=int, default=20, help="k-NN neighbours (default 20)")
    e.add_argument("--temperature", type=float, default=0.07, help="k-NN vote temperature (default 0.07)")
    e.add_argument("--epochs", type=int, default=100, help="linear protocol: epochs over the features")
    e.set_defaults(func=_eval)
    s = sub.add_parser("sweep", help="run methods x datasets x seeds from a sweep spec; results table and plots",
                       description="See configs/sweeps/digits-small.yaml for the spec format.")
    s.add_argument("spec", help="sweep spec (YAML)")
    s.add_argument("--dir", help="sweep directory (default: the spec's dir)")
    s.add_argument("--dry-run", action="store_true", help="print the plan (cells, done, would resume) and exit")
    s.add_argument("--backend", choices=["local", "submitit"], help="override the spec's launch.backend")
    s.add_argument("--parallel", type=int, help="cells at once (local backend; default: one per GPU, else 1)")
    s.add_argument("--only", help="run only cells whose name contains this text")
    s.add_argument("--methods", help="comma-separated methods instead of the spec's (e.g. simclr,byol)")
    s.add_argument("--seeds", help="comma-separated seeds instead of the spec's (e.g. 0,1)")
    s.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="an override for every cell, applied last (repeatable): --set trainer.max_epochs=2")
    s.set_defaults(func=_sweep)
    r = sub.add_parser("report", help="rebuild results.csv, results.md and plots of a sweep directory")
    r.add_argument("sweep_dir")
    r.add_argument("--wandb", action="store_true", help="also log the cells and the results table to W&B")
    r.set_defaults(func=_report)
    return parser


def _quiet_libraries() -> None:
    """Keep the terminal to what a user acts on: Lightning's tips and data-loader hints off."""
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*")
    os.environ.setdefault("WANDB_SILENT", "true")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    _quiet_libraries()
    try:
        return args.func(args, overrides)
    except USAGE_ERRORS as err:
        if os.environ.get("SSL_BENCH_DEBUG"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"ssl-bench: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ssl-bench: interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
