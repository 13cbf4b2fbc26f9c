"""The ``ssl-bench`` command.

    ssl-bench pretrain --config configs/cifar10/simclr.yaml --trainer.max_epochs 1 --data.batch_size 64
    ssl-bench pretrain --config my.yaml --model my_pkg.my_module.MyMethod
    ssl-bench eval --ckpt runs/simclr-cifar10-seed0/checkpoints/last.ckpt --protocol knn
    ssl-bench scan --ckpt runs/simclr-cifar10-seed0/checkpoints/last.ckpt --scan_epochs 20

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
    from .config import apply_overrides, load_config
    from .evaluate import evaluate

    data = apply_overrides(load_config(None), overrides)
    if any(data[s] for s in ("model", "trainer")):
        raise ValueError("ssl-bench eval takes only --data.<key> overrides")
    result = evaluate(args.ckpt, args.protocol, data["data"], k=args.k, temperature=args.temperature,
                      epochs=args.epochs)
    print(f"{result['method']} on {result['dataset']}: {args.protocol} top-1 {result[args.protocol + '_top1']:.2f}% "
          f"(train {result['train_size']}, val {result['val_size']} images)")
    return 0


def _scan(args: argparse.Namespace, overrides: list[str]) -> int:
    from .config import apply_overrides, load_config
    from .scan import run_scan, settings_from_args

    data = apply_overrides(load_config(None), overrides)
    if any(data[s] for s in ("model", "trainer")):
        raise ValueError("ssl-bench scan takes only --data.<key> overrides")
    summary = run_scan(args.ckpt, settings_from_args(args), out=args.out, overwrite=args.overwrite,
                       data_overrides=data["data"], device=args.device)
    print(f"SCAN on {summary['method']} / {summary['dataset']}: results in {summary['out_dir']}")
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
                       description="Reads config.yaml of the checkpoint's run; --data.<key> overrides apply")
    e.add_argument("--ckpt", required=True, help="a checkpoint written by ssl-bench pretrain")
    e.add_argument("--protocol", required=True, choices=["knn", "linear"])
    e.add_argument("--k", type=int, default=20, help="k-NN neighbours (default 20)")
    e.add_argument("--temperature", type=float, default=0.07, help="k-NN vote temperature (default 0.07)")
    e.add_argument("--epochs", type=int, default=100, help="linear protocol: epochs over the features")
    e.set_defaults(func=_eval)
    from .scan import add_arguments as scan_arguments

    c = sub.add_parser("scan", help="SCAN clustering (neighbours, SCAN heads, self-labelling) on a checkpoint",
                       description="Reads config.yaml of the checkpoint's run; --data.<key> overrides apply")
    scan_arguments(c)
    c.set_defaults(func=_scan)
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
