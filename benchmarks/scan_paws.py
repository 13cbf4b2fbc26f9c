"""SCAN and PAWS on a CIFAR-10 subset with the tiny CNN, over seeds (issue #12).

For each seed: pretrain SimCLR with the learning-test settings
(tests/learning/test_learning_simclr_byol_simsiam_barlow.py: 4,000 training images, tiny_cnn width 16,
40 epochs for SCAN), run SCAN on its checkpoint (k-means on the same frozen features is the
baseline), pretrain PAWS with 10% of the labels, and train the same
backbone supervised-only on the same labelled images, and the PAWS backbone fine-tuned on them with
that same recipe. Writes ``<out>/results.json`` and prints a
table. Runs that already have a summary.json in ``<out>`` are reused.

    OMP_NUM_THREADS=1 python benchmarks/scan_paws.py --seeds 0 1 2 --out runs/bench-scan-paws [--parts scan paws]
        [--paws-args '{"support_per_class": 4}']   (replaces model arguments of configs/cifar10-tiny/paws.yaml; use its own --out)
        [--finetune-seeds 1 2]   (PAWS part: also fine-tune both sides with these seeds, same checkpoint and labels)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # ssl_bench without an install (scan_paws_runs: this script's own folder)

from scan_paws_runs import (PAWS_EPOCHS, SCAN_SETTINGS, paws_config, paws_finetuned,  # noqa: E402
                                     simclr_checkpoint, supervised_baseline)

from ssl_bench.pretrain import pretrain  # noqa: E402
from ssl_bench.eval.scan import run_scan  # noqa: E402


def one_seed(seed: int, out: Path, parts: list[str], paws_args: dict, finetune_seeds: list[int]) -> dict:
    row: dict = {"seed": seed}
    t = time.perf_counter()
    if "scan" in parts:
        row.update(scan_part(seed, out))
    if "paws" in parts:
        row.update(paws_part(seed, out, paws_args, finetune_seeds))
    row["seconds"] = round(time.perf_counter() - t, 1)
    return row


def scan_part(seed: int, out: Path) -> dict:
    row: dict = {}
    ckpt = simclr_checkpoint(out / f"seed{seed}", seed)
    scan_dir = out / f"seed{seed}" / "scan"
    if (scan_dir / "summary.json").is_file():
        scan = json.loads((scan_dir / "summary.json").read_text())
    else:
        scan = run_scan(ckpt, SCAN_SETTINGS(seed), out=scan_dir)
    row.update({f"{stage}_{k}": scan[stage][k] for stage in ("kmeans", "scan", "self_label")
                for k in ("acc", "nmi", "ari")})
    row["neighbor_accuracy"] = scan["neighbor_accuracy"]
    return row


def paws_part(seed: int, out: Path, paws_args: dict, finetune_seeds: list[int]) -> dict:
    paws_dir = out / f"seed{seed}" / "paws"
    cfg = paws_config(paws_dir, seed, paws_args)
    summary_file = paws_dir / cfg["run"]["name"] / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else pretrain(cfg)
    metrics = summary["all_metrics"]
    row = {"paws_snn": metrics["val_snn_top1"], "paws_linear": metrics["val_fewlabel_linear_top1"],
           "paws_knn": metrics["val_knn_top1"], "paws_finetuned": paws_finetuned(paws_dir, seed),
           "supervised": supervised_baseline(seed)}
    for f in finetune_seeds:  # the fine-tuning's own spread: same checkpoint and labels, other head start and views
        row[f"paws_finetuned_ft{f}"] = paws_finetuned(paws_dir, seed, f)
        row[f"supervised_ft{f}"] = supervised_baseline(seed, f)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/bench-scan-paws")
    parser.add_argument("--parts", nargs="+", choices=["scan", "paws"], default=["scan", "paws"])
    parser.add_argument("--paws-args", type=json.loads, default={},
                        help="JSON object of PAWS model arguments replacing those of configs/cifar10-tiny/paws.yaml")
    parser.add_argument("--finetune-seeds", type=int, nargs="*", default=[],
                        help="PAWS part: also fine-tune PAWS and supervised-only with these seeds")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        rows.append(one_seed(seed, out, args.parts, args.paws_args, args.finetune_seeds))
        print(json.dumps(rows[-1]), flush=True)
        (out / f"results-{'-'.join(args.parts)}.json").write_text(json.dumps({"paws_epochs": PAWS_EPOCHS, "rows": rows}, indent=2))
    cols = ["seed", "kmeans_acc", "scan_acc", "scan_nmi", "scan_ari", "self_label_acc", "self_label_nmi",
            "self_label_ari", "paws_snn", "paws_linear", "paws_finetuned", "supervised"]
    cols = [c for c in cols if c in rows[0]]
    print("| " + " | ".join(cols) + " |")
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.1f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
