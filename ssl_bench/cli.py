"""The ``ssl-bench`` command.

    ssl-bench pretrain --config configs/cifar10/simclr.yaml --trainer.max_epochs 1 --data.batch_size 64
    ssl-bench pretrain --config my.yaml --model my_pkg.my_module.MyMethod
    ssl-bench pretrain --config configs/digits/simclr.yaml --print-config
    ssl-bench eval --ckpt runs/simclr-cifar10-seed0/checkpoints/last.ckpt --protocol knn --eval.knn.k 200
    ssl-bench list
    ssl-bench eval --random-init --config configs/cifar10/simclr.yaml --protocol knn
    ssl-bench eval --ckpt runs/paws-cifar10-seed0/checkpoints/last.ckpt --protocol finetune --label-fraction 0.1
    ssl-bench sweep configs/sweeps/digits-small.yaml
    ssl-bench report runs/sweeps/digits-small
    ssl-bench scan --ckpt runs/simclr-cifar10-seed0/checkpoints/last.ckpt --scan.scan_epochs 20
    ssl-bench scan --config configs/scan/cifar10.yaml

Errors in the user's input end in one line on stderr (exit code 2); set SSL_BENCH_DEBUG=1 for the
full traceback. Ctrl-C ends with one line saying which checkpoint was kept (exit code 130).
"""
from __future__ import annotations

import argparse
import errno
import os
import re
import sys

from . import __version__
from .errors import RUN_NOTE, USAGE_ERRORS
from .terminal import quiet_libraries
from .stopping import SIGTERM_EXIT_CODE, Stopped

KEYS_HELP = """\
config keys: a config has four sections, each key overridable as --section.key VALUE
  model    the method (model.name: a registered name or pkg.module.Class) and its constructor
           arguments plus BaseMethod's (ssl_bench/methods/base.py): lr, optimizer, backbone, ...
  data     SSLDataModule's arguments (ssl_bench/data/datamodule.py): dataset, batch_size, augment, ...
  trainer  pytorch_lightning.Trainer's arguments: max_epochs, precision, devices, ...
  run      dir, name, seed, logger, wandb_project, resume, overwrite, ckpt_every_n_steps,
           ckpt_every_minutes, collective_timeout_minutes (README.md, "Configs and run directories")
Evaluation settings are eval.<protocol>.<setting> (ssl-bench eval, a sweep's eval:), SCAN's scan.<setting>.
See every key with its default: ssl-bench pretrain --config FILE --print-config (eval, scan, sweep too)
Names: ssl-bench list"""


def _pretrain(args: argparse.Namespace, overrides: list[str]) -> int:
    from .config import apply_overrides, load_config, to_yaml
    from .build import resolved_config
    from .pretrain import pretrain, summary_line

    cfg = apply_overrides(load_config(args.config), overrides)
    if args.print_config:
        print(to_yaml(resolved_config(cfg)), end="")
        return 0
    summary = pretrain(cfg)
    if summary.get("is_global_zero", True):
        print(summary_line(summary))
    return 0


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"'{text}' is not true or false")


_ARG_TYPES = {int: int, float: float, str: str, bool: _bool}


def _or_none(kind: type):
    """A flag's type for a ``T | None`` setting: ``none`` or ``null`` gives None."""
    def parse(text: str):
        return None if text.lower() in ("none", "null") else _ARG_TYPES[kind](text)
    parse.__name__ = kind.__name__
    return parse


def protocol_flags() -> dict[str, dict]:
    """Every setting of the registered protocols as one ``--<setting>`` flag of ``ssl-bench eval``
    (a name two protocols share is one flag): name -> {"type", "help", "defaults": {protocol: default}}."""
    from .eval.registry import PROTOCOLS, setting_specs

    flags: dict[str, dict] = {}
    for name, cls in PROTOCOLS.items():
        for spec in setting_specs(cls):
            flag = flags.setdefault(spec.name, {"type": spec.type, "optional": False, "help": spec.help,
                                                "defaults": {}})
            flag["optional"] |= spec.optional
            flag["defaults"][name] = spec.default
    return flags


def _add_protocol_arguments(e: argparse.ArgumentParser) -> None:
    """``--protocol`` and one ``--<setting>`` flag per setting of the registered protocols."""
    from .eval.registry import PROTOCOLS

    names = "; ".join(f"{name}: {cls.help}" for name, cls in PROTOCOLS.items())
    e.add_argument("--protocol", required=True, metavar="{" + ",".join(PROTOCOLS) + "}",
                   help=f"{names}; or an importable my_pkg.module.Class (an EvalProtocol subclass; its settings "
                        "as --<setting> VALUE)")
    group = e.add_argument_group("protocol settings", "each applies to the protocols named in brackets; "
                                                      "unset: the protocol's default")
    for name, flag in protocol_flags().items():
        defaults = flag["defaults"]
        shown = (f"default {next(iter(defaults.values()))}" if len(set(map(repr, defaults.values()))) == 1
                 else "defaults: " + ", ".join(f"{p} {d}" for p, d in defaults.items()))
        kind = _or_none(flag["type"]) if flag["optional"] else _ARG_TYPES[flag["type"]]
        group.add_argument(f"--{name}", type=kind, default=None, metavar=name.upper(),
                           help=f"[{', '.join(defaults)}] {flag['help']} ({shown})")


def _protocol_settings(args: argparse.Namespace, overrides: list[str], protocol: str) -> tuple[dict, list[str]]:
    """(the protocol settings given, the other arguments). The config language's name of a setting
    is ``eval.<protocol>.<setting>`` (as in a sweep spec's ``eval:`` section): ``--eval.knn.k 200``.
    The registered protocols' ``--<setting>`` flags (parsed already) and ``--<name> VALUE`` of a
    protocol given by import path (read here, as YAML) are the short forms."""
    from .config import SECTIONS, parse_value

    settings = {name: getattr(args, name) for name in protocol_flags() if getattr(args, name, None) is not None}
    rest, i = [], 0
    while i < len(overrides):
        arg = overrides[i]
        key, eq, value = arg[2:].partition("=")
        section = key.split(".", 1)[0]
        if not arg.startswith("--") or ("." in key and section != "eval") or key in SECTIONS:
            rest.append(arg)
            i += 1
            continue
        if not eq:
            if i + 1 >= len(overrides):
                raise ValueError(f"--{key} needs a value")
            value, i = overrides[i + 1], i + 1
        i += 1
        if section == "eval":
            parts = key.split(".")
            if len(parts) != 3 or parts[1] != protocol:
                raise ValueError(f"--{key}: protocol settings are --eval.{protocol}.<setting> (the protocol "
                                 f"given by --protocol)")
            key = parts[2]
        settings[key] = parse_value(value)
    return settings, rest


def _eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from .config import SECTIONS, apply_overrides, to_yaml
    from .eval import evaluate
    from .eval.registry import resolve_protocol

    settings, overrides = _protocol_settings(args, overrides, args.protocol)
    given = apply_overrides({s: {} for s in SECTIONS}, overrides)
    if given["trainer"]:
        raise ValueError("ssl-bench eval takes --data.<key>, --model.<key> and --run.<key> overrides only")
    cls = resolve_protocol(args.protocol)
    if args.print_config:
        from .eval.run import resolved_eval_config

        print(to_yaml(resolved_eval_config(args.ckpt, args.protocol, given, config=args.config,
                                           random_init=args.random_init, settings=settings)), end="")
        return 0
    result = evaluate(args.ckpt, args.protocol, given["data"], config=args.config, random_init=args.random_init,
                      label_fraction=args.label_fraction, label_indices_file=args.label_indices,
                      model_overrides=given["model"], run_overrides=given["run"], out=args.out, settings=settings)
    labels = "" if result["labelled_size"] == result["train_size"] else f", {result['labelled_size']} labelled"
    value = result[f"{cls.name}_{cls.metric}"]
    shown = f"top-{cls.metric[3:]} {value:.2f}%" if re.fullmatch(r"top\d+", cls.metric) else f"{cls.metric} {value:.4g}"
    print(f"{result['method']} on {result['dataset']}: {cls.name} {shown} "
          f"(train {result['train_size']}{labels}, val {result['val_size']} images) -> {result['path']}")
    return 0


def _sweep(args: argparse.Namespace, overrides: list[str]) -> int:
    from .config import SECTIONS, parse_overrides, parse_value
    from .sweep.runner import run_sweep

    # --section.key VALUE, as pretrain takes them, as the dotted keys of a spec's overrides
    sets = {".".join(path): value for path, value in parse_overrides(overrides, SECTIONS)}
    for item in args.set or []:  # the earlier form, --set section.key=value
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--set {item}: use --set section.key=value (or --section.key VALUE)")
        sets[key] = parse_value(value)  # as ssl-bench pretrain reads --section.key VALUE: 1e-3 is a float
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        raise ValueError(f"--seeds {args.seeds}: use comma-separated integers, e.g. 0,1,2") from None
    methods = args.methods.split(",") if args.methods else None
    if args.print_config:
        from .config import to_yaml
        from .sweep.spec import resolved_spec

        print(to_yaml(resolved_spec(args.spec, args.dir, methods=methods, seeds=seeds, overrides=sets)), end="")
        return 0
    return run_sweep(args.spec, sweep_dir=args.dir, dry_run=args.dry_run, backend=args.backend,
                     parallel=args.parallel, only=args.only, methods=methods, seeds=seeds, overrides=sets)


def _report(args: argparse.Namespace, overrides: list[str]) -> int:
    from .sweep.publish import build_report

    if overrides:
        raise ValueError(f"unexpected argument(s) {' '.join(overrides)}; usage: ssl-bench report SWEEP_DIR")
    paths = build_report(args.sweep_dir, wandb=args.wandb)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _list(args: argparse.Namespace, overrides: list[str]) -> int:
    from .backbones import available_backbones
    from .data.recipes import RECIPES
    from .data.sources import KNOWN_DATASETS
    from .methods import METHODS

    if overrides:
        raise ValueError(f"ssl-bench list takes no arguments, got {' '.join(overrides)}")

    def doc(obj: object, width: int = 90) -> str:
        """The docstring's first paragraph on one line, cut at a word boundary."""
        text = " ".join((obj.__doc__ or "").strip().split("\n\n")[0].split())
        return text if len(text) <= width else text[:width].rsplit(" ", 1)[0] + " ..."

    print("methods (model.name, or any importable pkg.module.Class subclassing BaseMethod):")
    for name, cls in sorted(METHODS.items()):
        print(f"  {name:14s} {doc(cls)}")
    print("backbones (model.backbone, or any timm model name):")
    print("  " + ", ".join(available_backbones()))
    print("datasets (data.dataset):")
    print("  " + ", ".join(KNOWN_DATASETS))
    print("augmentation recipes (data.augment.name):")
    print("  " + ", ".join(sorted(RECIPES)))
    return 0


def _scan(args: argparse.Namespace, overrides: list[str]) -> int:
    from .config import apply_overrides, to_yaml
    from .errors import ConfigError
    from .eval.scan import load_job, run_scan, settings_from_args

    given = apply_overrides({"scan": {}, "data": {}}, overrides)  # --scan.<setting> and --data.<key>
    job = load_job(args.config) if args.config else {}
    ckpt = args.ckpt or job.get("ckpt")
    settings = settings_from_args(args, {**job.get("scan", {}), **given["scan"]})
    data = {**job.get("data", {}), **given["data"]}
    out, device = args.out or job.get("out"), args.device or job.get("device")
    if args.print_config:
        from dataclasses import asdict

        settings.check()
        print(to_yaml({"ckpt": ckpt, "out": out, "device": device, "data": data, "scan": asdict(settings)}), end="")
        return 0
    if not ckpt:
        raise ConfigError("ssl-bench scan needs a checkpoint: --ckpt CKPT, or a --config file with 'ckpt: CKPT'")
    summary = run_scan(ckpt, settings, out=out, overwrite=args.overwrite, data_overrides=data, device=device)
    print(f"SCAN on {summary['method']} / {summary['dataset']}: results in {summary['out_dir']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssl-bench", description="Multi-view self-supervised learning benchmark")
    parser.add_argument("--version", action="version", version=f"ssl-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pretrain", help="pretrain one method on one dataset",
                       description="Pretrain one method on one dataset. Any config key can be overridden: "
                                   "--trainer.max_epochs 1, --data.batch_size 64, --model my_pkg.module.MyMethod",
                       epilog=KEYS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config with sections model, data, trainer, run")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config with every default and exit (nothing is trained or written)")
    p.set_defaults(func=_pretrain)
    e = sub.add_parser("eval", help="evaluate the backbone of a checkpoint (k-NN, linear, fine-tuning, ...)",
                       description="Reads config.yaml of the checkpoint's run (or --config); --data.<key>, "
                                   "--model.<key>, --run.<key> overrides apply. Results go to "
                                   "<run dir>/evals/, one file per setting. Protocols and their settings come "
                                   "from the registry (ssl_bench.eval.PROTOCOLS).")
    e.add_argument("--ckpt", help="a checkpoint written by ssl-bench pretrain")
    e.add_argument("--config", help="the method/backbone/data asked for (default: the run's config.yaml)")
    e.add_argument("--random-init", action="store_true",
                   help="evaluate the --config's backbone untrained (same seed): the baseline to beat")
    e.add_argument("--label-fraction", type=float, help="few-label evaluation: a seeded class-balanced "
                   "fraction of the train labels (e.g. 0.01, 0.1)")
    e.add_argument("--label-indices", help="few-label evaluation: a file of train indices (JSON list or one per line)")
    _add_protocol_arguments(e)
    e.add_argument("--print-config", action="store_true",
                   help="print what would be evaluated (model, data, the protocol's settings with every default) "
                        "and exit; nothing is loaded beyond the config")
    e.add_argument("--out", help="write results (evals/) and cached features here instead of the run directory "
                                 "(e.g. for a read-only shared checkpoint)")
    e.set_defaults(func=_eval)
    ls = sub.add_parser("list", help="list the registered methods, backbones, datasets and recipes")
    ls.set_defaults(func=_list)
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
                   help="an override for every cell, applied last (repeatable): --set trainer.max_epochs=2; "
                        "the same as --trainer.max_epochs 2")
    s.add_argument("--print-config", action="store_true",
                   help="print the resolved spec (each cell's config with the overrides) and exit")
    s.set_defaults(func=_sweep)
    r = sub.add_parser("report", help="rebuild results.csv, results.md and plots of a sweep directory")
    r.add_argument("sweep_dir")
    r.add_argument("--wandb", action="store_true", help="also log the cells and the results table to W&B")
    r.set_defaults(func=_report)
    from .eval.scan import add_arguments as scan_arguments

    c = sub.add_parser("scan", help="SCAN clustering (neighbours, SCAN heads, self-labelling) on a checkpoint",
                       description="Reads config.yaml of the checkpoint's run; settings from --config (a SCAN job "
                                   "file), then --<setting> and --data.<key> on the command line")
    scan_arguments(c)
    c.set_defaults(func=_scan)
    return parser


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line. An error re-raised from a DataLoader worker carries the
    worker's traceback in its message: keep its last line, without the exception's class name."""
    text = str(err).strip()
    if "Traceback (most recent call last)" in text:
        last = text.splitlines()[-1]
        text = re.sub(r"^[\w.]+(Error|Exception|Interrupt)\w*: ", "", last)
    return " ".join(text.split()) or type(err).__name__


#: file-system errors a user can act on (a read-only directory, a full disk, a file where a directory
#: belongs): one line naming the path; other OSErrors keep their traceback
_USER_OS_ERRORS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                   errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
                   errno.EDQUOT: "disk quota exceeded", errno.EEXIST: "a file is in the way",
                   errno.ENOTDIR: "a file is in the way (not a directory)", errno.EISDIR: "is a directory"}


def os_error_line(err: OSError, kept_note: str = "") -> str | None:
    """``cannot write <path>: read-only file system`` for the errors in ``_USER_OS_ERRORS``; ``kept_note``
    (what pretrain did with the run's files) replaces the advice to resume."""
    what = _USER_OS_ERRORS.get(err.errno)  # type: ignore[arg-type]
    if what is None:
        return None
    path = err.filename or "a file"
    resume = "; free space and resume with --run.resume auto (a checkpoint is replaced only by a complete one)"
    advice = {errno.EACCES: "; for a shared checkpoint, eval --out DIR writes elsewhere",
              errno.EROFS: "; for a shared checkpoint, eval --out DIR writes elsewhere",
              errno.ENOSPC: resume, errno.EDQUOT: resume}
    return f"cannot write {path}: {what}{kept_note or advice.get(err.errno, '')}"  # type: ignore[arg-type]


_INTERRUPTED = {"_eval": "interrupted; no result was written (results and cached features are written whole "
                         "or not at all)",
                "_scan": "interrupted; no result was written (SCAN writes its results whole, at the end)",
                "_pretrain": "interrupted; the last checkpoint is kept (continue with --run.resume auto)"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    quiet_libraries()
    try:
        return args.func(args, overrides)
    except USAGE_ERRORS as err:
        if os.environ.get("SSL_BENCH_DEBUG"):
            raise
        print(f"ssl-bench: error: {one_line(err)}{_note(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        line = os_error_line(err, kept_note=_note(err))
        if line is None or os.environ.get("SSL_BENCH_DEBUG"):
            _print_note(err)
            raise
        print(f"ssl-bench: error: {line}", file=sys.stderr)
        return 2
    except Stopped as err:  # SIGTERM: stopped at a step boundary, checkpoint saved
        print(f"ssl-bench: {one_line(err)}", file=sys.stderr)
        return SIGTERM_EXIT_CODE
    except KeyboardInterrupt as err:  # pretrain and sweep say what they kept; the others write nothing partial
        print(f"ssl-bench: {one_line(err) if str(err) else _INTERRUPTED.get(args.func.__name__, 'interrupted')}",
              file=sys.stderr)
        return 130
    except Exception as err:  # a crash (traceback follows): still say what happened to the run's files
        _print_note(err)
        raise


def _note(err: BaseException) -> str:
    """``pretrain``'s note on the run's files (``RUN_NOTE``), as the end of a one-line message."""
    note = getattr(err, RUN_NOTE, None)
    return f"; {note}" if note else ""


def _print_note(err: BaseException) -> None:
    if getattr(err, RUN_NOTE, None):
        print(f"ssl-bench: {getattr(err, RUN_NOTE)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
