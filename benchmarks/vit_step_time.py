"""Training-step time of the ViT-era methods relative to DINO at the same ViT size, in one process.

Each method is built with the same patch-token ViT (``--vit``, default: the CPU learning tests'
width 64, depth 4, 4 heads, 32x32 images in 4x4 patches) and its own heads at the sizes of
``configs/cifar10-tiny/<method>.yaml``; one step is the method's loss on a batch of two random
32x32 views, backward, an AdamW step and (for teacher-student methods) the EMA update, timed after
warm-up steps, median over the timed steps. DINO runs the two global views only (no small crops),
so the ratio compares the objectives at equal input. MAE and I-JEPA encode one view (the first).

    OMP_NUM_THREADS=1 python benchmarks/vit_step_time.py --steps 20
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from ssl_bench.config import load_config
from ssl_bench.methods import METHODS
from ssl_bench.methods.momentum import BaseMomentumMethod, ema_update_

TINY = Path(__file__).resolve().parents[1] / "configs" / "cifar10-tiny"
VIT = {"img_size": 32, "patch_size": 4, "embed_dim": 64, "depth": 4, "num_heads": 4}
HEADS = {  # heads of configs/cifar10-tiny/<m>.yaml (DINO's at the tiny CNN's settings)
    "dino": {"proj_hidden_dim": 256, "bottleneck_dim": 64, "out_dim": 256, "head_batch_norm": True},
}
MODEL_KEYS = {"proj_hidden_dim", "proj_dim", "proj_layers", "pred_hidden_dim", "temperature", "mask_ratio",
              "decoder_dim", "decoder_depth", "decoder_heads", "pred_dim", "pred_depth", "pred_heads",
              "num_prototypes", "lambd", "num_slices",
              "bottleneck_dim", "out_dim", "patch_out_dim", "head_batch_norm", "separate_heads"}


def build(method: str, vit: dict) -> torch.nn.Module:
    heads = HEADS.get(method)
    if heads is None:
        model_cfg = load_config(TINY / f"{method}.yaml")["model"]
        heads = {k: v for k, v in model_cfg.items() if k in MODEL_KEYS}
    torch.manual_seed(0)
    return METHODS[method](backbone="vit", backbone_kwargs=dict(vit), linear_probe=False, knn=False,
                           collapse_monitor=False, **heads)


def step_times(model: torch.nn.Module, batch: int, steps: int, warmup: int) -> list[float]:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    views = [torch.randn(batch, 3, 32, 32, generator=gen) for _ in range(2)]
    model.train()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        _, out = model.compute_ssl_loss(views)
        loss = out["loss"] if isinstance(out, dict) else out
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if isinstance(model, BaseMomentumMethod):
            for online, teacher in model.momentum_pairs:
                ema_update_(teacher, online, 0.99)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["dino", "mocov3", "mae", "ijepa"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--depth", type=int, default=VIT["depth"])
    parser.add_argument("--embed-dim", type=int, default=VIT["embed_dim"])
    args = parser.parse_args()
    vit = {**VIT, "depth": args.depth, "embed_dim": args.embed_dim}
    print(f"ViT {vit}, batch {args.batch}, {torch.get_num_threads()} thread(s), median of {args.steps} steps")
    medians = {}
    for method in ["dino", *[m for m in args.methods if m != "dino"]]:
        medians[method] = statistics.median(step_times(build(method, vit), args.batch, args.steps, args.warmup))
    print("| method | step (ms) | relative to DINO-ViT |\n|---|---|---|")
    for method, t in medians.items():
        print(f"| {method} | {1000 * t:.1f} | {t / medians['dino']:.2f} |")


if __name__ == "__main__":
    main()
