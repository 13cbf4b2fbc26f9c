"""Every registered method trained as a user runs it on 2 processes: ``ssl-bench pretrain --config
configs/digits/<method>.yaml --trainer.max_epochs 1 --trainer.devices 2 --trainer.strategy ddp
--trainer.accelerator cpu`` (progress bar on), each under a time limit. Prints one row per config:
exit code, seconds, and the finite summary metrics; a method without a digits config is run from the
SimCLR one with ``--model <name>``.

    python benchmarks/ddp_cli.py --out runs/ddp-cli        # about 15 s a method on 2 CPU cores
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEYS = ("val_knn_top1", "val_linear_top1", "train_loss", "rankme", "z_std", "entropy", "reconstruction")


def configs() -> list[tuple[str, Path, list[str]]]:
    """(name, config, extra arguments) for every digits config and every registered method without one."""
    sys.path.insert(0, str(REPO))
    from ssl_bench.methods import METHODS

    runs = [(p.stem, p, []) for p in sorted((REPO / "configs/digits").glob("*.yaml"))]
    have = {name for name, _, _ in runs}
    runs += [(m, REPO / "configs/digits/simclr.yaml", ["--model", m]) for m in sorted(METHODS) if m not in have]
    return runs


def run_one(name: str, config: Path, extra: list[str], out: Path, limit: float) -> dict:
    args = [sys.executable, "-m", "ssl_bench.cli", "pretrain", "--config", str(config), *extra,
            "--trainer.max_epochs", "1", "--trainer.devices", "2", "--trainer.strategy", "ddp",
            "--trainer.accelerator", "cpu", "--run.dir", str(out), "--run.name", name, "--run.overwrite", "true"]
    start = time.monotonic()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=limit, cwd=REPO)
        code, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired:
        code, err = "timeout", ""
    row = {"config": name, "exit": code, "seconds": round(time.monotonic() - start, 1)}
    summary = out / name / "summary.json"
    if code == 0 and summary.is_file():
        s = json.loads(summary.read_text())
        row.update({k: s.get(k) for k in KEYS}, world_size=s.get("world_size"))
        row["finite"] = all(isinstance(s.get(k), (int, float)) and math.isfinite(s[k]) for k in KEYS)
    else:
        row["error"] = (err.strip().splitlines() or [""])[-1][:200]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="run directories (default: a temporary folder)")
    parser.add_argument("--limit", type=float, default=300, help="seconds allowed per run")
    parser.add_argument("--only", nargs="*", help="config names to run")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ddp-cli-"))
    rows = [run_one(n, c, e, out, args.limit) for n, c, e in configs() if not args.only or n in args.only]
    print("| config | exit | s | k-NN top-1 | probe top-1 | rankme | all finite |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        fmt = (lambda k: f"{r[k]:.2f}" if isinstance(r.get(k), (int, float)) else "-")
        print(f"| {r['config']} | {r['exit']} | {r['seconds']} | {fmt('val_knn_top1')} | {fmt('val_linear_top1')} | "
              f"{fmt('rankme')} | {r.get('finite', r.get('error', ''))} |")
    (out / "ddp_cli.json").write_text(json.dumps(rows, indent=2))
    return 0 if all(r["exit"] == 0 and r.get("finite") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
