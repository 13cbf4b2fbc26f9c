"""The learning tests' settings over several seeds: the README's k-NN ranges and the ER table.

Runs ``pretrain`` with the learning tests' config of every method and variant
(``configs/cifar10-tiny/<row>.yaml``, the files ``tests/learning/test_learning*.py`` read) for every seed, plus the random-init baseline of each seed (and CMC's own, which has two
encoders, and ``random_init_<row>`` for a row with another backbone: the ViT rows), and writes one JSON file per run to ``--out`` (existing ones are reused, so an interrupted
run continues) and a markdown table to stdout. CI runs seed 0 of every method; this script is how
the other seeds are measured. ``--linear ROW ...`` also measures the ``linear`` protocol (100 epochs on
the frozen features) of those rows and of their random-init baselines (I-JEPA's learning test uses it).

    OMP_NUM_THREADS=1 python benchmarks/learning_seeds.py --seeds 1 2 --out runs/learning-seeds
    OMP_NUM_THREADS=1 python benchmarks/learning_seeds.py --seeds 0 1 2 --only ijepa --linear ijepa --out runs/ls
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ssl_bench.build import untrained_knn
from ssl_bench.config import dump_config, load_config
from ssl_bench.eval import evaluate
from ssl_bench.pretrain import pretrain

TINY = Path(__file__).resolve().parents[1] / "configs" / "cifar10-tiny"
SKIP = {"paws"}  # semi-supervised, measured against supervised-only by benchmarks/scan_paws.py


def row_config(row: str, folder: Path, seed: int, name: str) -> dict:
    """``configs/cifar10-tiny/<row>.yaml`` (what the learning test of ``row`` runs) in ``folder``."""
    cfg = load_config(TINY / f"{row}.yaml")
    cfg["run"].update(seed=seed, dir=str(folder), name=name)
    return cfg


def run_configs(folder: Path, seed: int) -> dict[str, dict]:
    """Every row of the table: its name and the run config the learning tests use."""
    rows = sorted(p.stem for p in TINY.glob("*.yaml") if p.stem not in SKIP)
    return {row: row_config(row, folder, seed, f"{row}-s{seed}") for row in rows}


def own_network(cfg: dict, reference: dict) -> bool:
    """True when ``cfg`` trains another backbone than ``reference`` (so it needs its own random init)."""
    keys = ("backbone", "backbone_kwargs")
    return any(cfg["model"].get(k) != reference["model"].get(k) for k in keys)


def linear_top1(cfg: dict, run_dir: Path, trained: bool) -> float:
    """The ``linear`` protocol's top-1 on the run's last checkpoint, or on its network untrained."""
    config = run_dir / "config.yaml"
    if not trained:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, config)
    ckpt = run_dir / "checkpoints" / "last.ckpt" if trained else None
    return float(evaluate(ckpt, "linear", config=config, random_init=not trained, out=run_dir / "linear")["linear_top1"])


def measure(name: str, cfg: dict, folder: Path, out: Path, linear: bool = False) -> dict:
    """Pretrain (or, for ``random_init*`` rows, only evaluate) once; cached in ``out/<name>.json``
    (``linear``: with the linear protocol's top-1, added to a cached record that lacks it)."""
    target = out / f"{cfg['run']['name']}.json"
    record = json.loads(target.read_text()) if target.exists() else None
    run_dir = folder / cfg["run"]["name"]
    baseline = name.startswith("random_init")
    if record is None:
        start = time.perf_counter()
        knn = untrained_knn(cfg, run_dir) if baseline else pretrain(cfg)["val_knn_top1"]
        record = {"name": name, "seed": cfg["run"]["seed"], "val_knn_top1": float(knn),
                  "wall_s": round(time.perf_counter() - start, 1)}
        print(f"{cfg['run']['name']}: k-NN top-1 {knn:.2f}% ({record['wall_s']} s)", flush=True)
    if linear and "linear_top1" not in record:
        record["linear_top1"] = linear_top1(cfg, run_dir, trained=not baseline)
        print(f"{cfg['run']['name']}: linear top-1 {record['linear_top1']:.2f}%", flush=True)
    target.write_text(json.dumps(record, indent=1))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", default=None, help="row names (default: every row)")
    parser.add_argument("--linear", nargs="*", default=[], help="rows also measured with the linear protocol")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    folder = args.out / "runs"
    table: dict[str, dict[int, float]] = {}
    linear: dict[str, dict[int, float]] = {}
    for seed in args.seeds:
        rows = run_configs(folder, seed)
        baselines = {"random_init": row_config("simclr", folder, seed, f"random_init-s{seed}"),
                     "random_init_cmc": row_config("cmc", folder, seed, f"random_init_cmc-s{seed}")}
        for row, cfg in rows.items():  # a network other than the tiny CNN (the ViT rows): its own baseline
            if row != "cmc" and own_network(cfg, baselines["random_init"]) and (args.only is None or row in args.only):
                baselines[f"random_init_{row}"] = row_config(row, folder, seed, f"random_init_{row}-s{seed}")
        for name, cfg in {**baselines, **rows}.items():
            if args.only is None or name in args.only or name.startswith("random_init"):
                with_linear = name in args.linear or name.removeprefix("random_init_") in args.linear
                record = measure(name, cfg, folder, args.out, with_linear)
                table.setdefault(name, {})[seed] = record["val_knn_top1"]
                if with_linear:
                    linear.setdefault(name, {})[seed] = record["linear_top1"]
    for title, values in (("k-NN top-1", table), ("linear top-1", linear)):
        if values:
            print(f"\n{title}\n\n| row | " + " | ".join(f"seed {s}" for s in args.seeds) + " |")
            print("|---|" + "---:|" * len(args.seeds))
            for name, by_seed in values.items():
                print(f"| {name} | " + " | ".join(f"{by_seed[s]:.2f}" if s in by_seed else "" for s in args.seeds) + " |")


if __name__ == "__main__":
    main()
