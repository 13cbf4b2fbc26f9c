"""Augmentation throughput: per-image torchvision in DataLoader workers vs kornia vs BatchedMultiView.

For the SimCLR and BYOL recipes at CIFAR size (32x32, 2 views, ``recipes.build_recipe``), in one
process, images/s (one image = both of its views) of:

1. ``per_image``: ``per_image.PerImageMultiView`` in a torch DataLoader over an in-memory uint8
   tensor dataset, ``num_workers = os.cpu_count()``, batch ``--batch-size``, default collation;
   the first ``workers * prefetch_factor + 2`` batches (worker start-up, full prefetch queue) are
   not timed;
2. ``kornia``: one ``kornia.augmentation.AugmentationSequential`` per view (RandomResizedCrop,
   RandomHorizontalFlip, ColorJitter, RandomGrayscale, RandomGaussianBlur and RandomSolarize where
   the recipe's probability is > 0, Normalize) on the whole batch, uint8 -> float included;
3. ``batched``: ``batched_augment.BatchedMultiView`` on the whole uint8 batch.

(2) and (3) run on the CPU and, when there is one, on CUDA (synchronised). The three are timed in
turn for ``--rounds`` rounds (the machine may be shared: interleaving spreads any outside load over
all three) and each reports the median over rounds of ``batches * batch_size / seconds``. Data:
random uint8 of CIFAR shape by default (augmentation cost does not depend on content), or the first
images of the CIFAR-10 JPEG archive with ``--data cifar10``.

``--ops`` adds a per-op table at the same batch size: each kornia augmentation vs the batched op
used for it (the measurements quoted in ``ssl_bench/data/batched_ops.py``).

    python benchmarks/augment_throughput.py                   # writes benchmarks/out/augment_throughput.json
    python benchmarks/augment_throughput.py --ops --device cpu
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path
from typing import Callable

import kornia
import kornia.augmentation as K
import numpy as np
import torch
import torchvision
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler

from ssl_bench.data import batched_ops as ops
from ssl_bench.data.batched_augment import BatchedMultiView, BatchedViewAugment
from ssl_bench.data.per_image import PerImageMultiView
from ssl_bench.data.recipes import CIFAR_MEAN, CIFAR_STD, MultiViewRecipe, ViewAugment, build_recipe

REPO = Path(__file__).resolve().parents[1]
CIFAR_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
RECIPES = ("simclr", "byol")


# ------------------------------------------------------------------ data

def random_images(n: int, seed: int = 0) -> Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def cifar_images(n: int, archive: Path = CIFAR_ARCHIVE) -> Tensor:
    """The first ``n`` training images of the CIFAR-10 JPEG archive (see shared/data/README.md)."""
    from PIL import Image

    out = []
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and "train/" in member.name and member.name.endswith(".jpg"):
                img = Image.open(BytesIO(tar.extractfile(member).read())).convert("RGB")  # type: ignore[union-attr]
                out.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
                if len(out) == n:
                    break
    return torch.stack(out)


class PerImageDataset(Dataset):
    """In-memory uint8 images; each item is the per-image views and a dummy label."""

    def __init__(self, images: Tensor, recipe: MultiViewRecipe) -> None:
        self.images, self.transform = images, PerImageMultiView(recipe)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), 0


# ------------------------------------------------------------------ pipelines

def kornia_view(v: ViewAugment) -> K.AugmentationSequential:
    """The view's recipe with kornia.augmentation (ops with probability 0 left out)."""
    augs: list = [K.RandomResizedCrop((v.size, v.size), scale=v.crop_scale, ratio=v.crop_ratio),
                  K.RandomHorizontalFlip(p=v.hflip_prob)]
    if v.jitter_prob > 0:
        augs.append(K.ColorJitter(v.brightness, v.contrast, v.saturation, v.hue, p=v.jitter_prob))
    if v.grayscale_prob > 0:
        augs.append(K.RandomGrayscale(p=v.grayscale_prob))
    if v.blur_prob > 0:
        k = v.blur_kernel_size
        augs.append(K.RandomGaussianBlur((k, k), v.blur_sigma, p=v.blur_prob))
    if v.solarize_prob > 0:  # thresholds=0: exactly 0.5, kornia draws from 0.5 +- thresholds
        augs.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=v.solarize_prob))
    augs.append(K.Normalize(torch.tensor(v.mean), torch.tensor(v.std)))
    return K.AugmentationSequential(*augs)


class KorniaMultiView(torch.nn.Module):
    def __init__(self, recipe: MultiViewRecipe) -> None:
        super().__init__()
        self.views = torch.nn.ModuleList(kornia_view(v) for v in recipe.all_views())

    def forward(self, images: Tensor) -> list[Tensor]:
        x = images.float().div_(255)
        return [view(x) for view in self.views]


# ------------------------------------------------------------------ timing

def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_batched(fn: Callable[[Tensor], list[Tensor]], images: Tensor, batch_size: int, batches: int,
                 device: str, warmup: int = 2) -> float:
    """images/s of ``fn`` over ``batches`` consecutive batches already on ``device``."""
    x = images.to(device)
    chunks = [x[(i * batch_size) % len(x):][:batch_size] for i in range(warmup + batches)]
    with torch.no_grad():
        for c in chunks[:warmup]:
            fn(c)
        _sync(device)
        t = time.perf_counter()
        for c in chunks[warmup:]:
            fn(c)
        _sync(device)
    return batches * batch_size / (time.perf_counter() - t)


def time_per_image(recipe: MultiViewRecipe, images: Tensor, batch_size: int, batches: int,
                   workers: int) -> float:
    """images/s of the per-image pipeline in a DataLoader with ``workers`` worker processes."""
    prefetch = 2
    warmup = workers * prefetch + 2
    sampler = RandomSampler(range(len(images)), replacement=True, num_samples=(warmup + batches) * batch_size,
                            generator=torch.Generator().manual_seed(0))
    loader = DataLoader(PerImageDataset(images, recipe), batch_size=batch_size, sampler=sampler,
                        num_workers=workers, prefetch_factor=prefetch if workers else None)
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batches * batch_size / (time.perf_counter() - t)
    del it  # shuts the workers down before the next measurement
    return rate


def throughput(images: Tensor, batch_size: int, batches: int, rounds: int, devices: list[str],
               workers: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name in RECIPES:
        recipe = build_recipe({"name": name}, 32, CIFAR_MEAN, CIFAR_STD)
        runs: dict[str, list[float]] = {"per_image_cpu": []}
        modules = {}
        for dev in devices:
            modules[f"kornia_{dev}"] = (KorniaMultiView(recipe).to(dev), dev)
            modules[f"batched_{dev}"] = (BatchedMultiView(recipe).to(dev), dev)
            runs.update({f"kornia_{dev}": [], f"batched_{dev}": []})
        for r in range(rounds):
            runs["per_image_cpu"].append(time_per_image(recipe, images, batch_size, batches, workers))
            for key, (module, dev) in modules.items():
                runs[key].append(time_batched(module, images, batch_size, batches, dev))
            print(f"  {name} round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in runs.items()),
                  flush=True)
        res = {k: statistics.median(v) for k, v in runs.items()}
        for dev in devices:
            res[f"ratio_batched_{dev}_vs_per_image_cpu"] = res[f"batched_{dev}"] / res["per_image_cpu"]
            res[f"ratio_batched_{dev}_vs_kornia_{dev}"] = res[f"batched_{dev}"] / res[f"kornia_{dev}"]
        res["runs"] = runs  # type: ignore[assignment]
        results[name] = res
    return results


# ------------------------------------------------------------------ per-core cost

def per_core(images: Tensor, batch_size: int, rounds: int) -> dict[str, dict[str, float]]:
    """Images per CPU-second of each pipeline on one thread in this process (``time.process_time``,
    best of ``rounds`` batches): the per-image transforms + default collation of a batch, kornia and
    BatchedMultiView on the batch. CPU time is what the pipelines cost whatever else runs on the
    machine, so this comparison holds on a shared machine where wall-clock rates swing."""
    from torch.utils.data import default_collate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x = images[:batch_size]
    out: dict[str, dict[str, float]] = {}
    try:
        for name in RECIPES:
            recipe = build_recipe({"name": name}, 32, CIFAR_MEAN, CIFAR_STD)
            per_image, korn, batched = PerImageMultiView(recipe), KorniaMultiView(recipe), BatchedMultiView(recipe)
            fns = {"per_image": lambda: default_collate([(per_image(img), 0) for img in x]),
                   "kornia": lambda: korn(x), "batched": lambda: batched(x)}
            best = {k: math.inf for k in fns}
            with torch.no_grad():
                for f in fns.values():
                    f()
                for _ in range(rounds):
                    for k, f in fns.items():
                        t = time.process_time()
                        f()
                        best[k] = min(best[k], time.process_time() - t)
            res = {f"{k}_images_per_cpu_s": batch_size / v for k, v in best.items()}
            res["ratio_batched_vs_per_image"] = best["per_image"] / best["batched"]
            res["ratio_batched_vs_kornia"] = best["kornia"] / best["batched"]
            out[name] = res
    finally:
        torch.set_num_threads(threads)
    return out


# ------------------------------------------------------------------ per-op table

def _time_op(fn: Callable[[], object], device: str, reps: int, rounds: int) -> float:
    """Median over rounds of the mean time of ``reps`` calls, in ms."""
    times = []
    with torch.no_grad():
        fn()
        for _ in range(rounds):
            _sync(device)
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            _sync(device)
            times.append((time.perf_counter() - t) / reps * 1e3)
    return statistics.median(times)


def op_table(batch_size: int, device: str, reps: int = 10, rounds: int = 5) -> dict[str, dict[str, float]]:
    """Each kornia augmentation vs the batched op standing in for it, BYOL's second view (the one
    with solarisation) at CIFAR size; blur with p=1 and SimCLR's 3x3 kernel (blur is off at 32x32)."""
    v = build_recipe({"name": "byol"}, 32, CIFAR_MEAN, CIFAR_STD).views[1]
    x8 = random_images(batch_size).to(device)
    x = x8.float().div_(255)
    aug = BatchedViewAugment(v)
    p = aug.sample_params(batch_size, 32, 32)
    no_flip = {**p, "flip": torch.zeros(batch_size, dtype=torch.bool)}
    rows: dict[str, tuple[Callable[[], object] | None, Callable[[], object] | None]] = {}
    rrc = K.RandomResizedCrop((32, 32), scale=v.crop_scale, ratio=v.crop_ratio).to(device)
    flip = K.RandomHorizontalFlip(p=v.hflip_prob).to(device)
    rows["resized_crop (incl. box sampling)"] = (
        lambda: rrc(x), lambda: aug.crop(x8, {**aug.sample_params(batch_size, 32, 32), "flip": no_flip["flip"]}))
    rows["horizontal_flip (batched: folded into the crop)"] = (lambda: flip(x), None)
    rows["resized_crop + flip"] = (lambda: flip(rrc(x)), lambda: aug.crop(x8, aug.sample_params(batch_size, 32, 32)))
    jitter = K.ColorJitter(v.brightness, v.contrast, v.saturation, v.hue, p=v.jitter_prob).to(device)
    rows["color_jitter p=0.8"] = (lambda: jitter(x), lambda: aug.jitter(x.clone(), p))
    gray = K.RandomGrayscale(p=v.grayscale_prob).to(device)
    rows["grayscale p=0.2"] = (lambda: gray(x), lambda: aug.grayscale(x, p))
    blur = K.RandomGaussianBlur((3, 3), v.blur_sigma, p=1.0).to(device)
    sigma = p["sigma"].to(device)
    rows["gaussian_blur p=1 k=3 (batched: kornia.filters)"] = (lambda: blur(x), lambda: ops.gaussian_blur(x, 3, sigma))
    sol = K.RandomSolarize(thresholds=0.0, additions=0.0, p=v.solarize_prob).to(device)
    rows["solarize p=0.2"] = (lambda: sol(x), lambda: aug.solarize(x.clone(), p))
    norm = K.Normalize(torch.tensor(v.mean), torch.tensor(v.std)).to(device)
    rows["normalize (batched: torchvision's, in place)"] = (
        lambda: norm(x), lambda: ops.normalize(x.clone(), v.mean, v.std))
    rows["(batch clone, inside the batched jitter/solarize/normalize rows)"] = (None, lambda: x.clone())
    table = {}
    for name, (kornia_fn, ours) in rows.items():
        table[name] = {"kornia_ms": _time_op(kornia_fn, device, reps, rounds) if kornia_fn else None,
                       "batched_ms": _time_op(ours, device, reps, rounds) if ours else None}
    return table


# ------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--batches", type=int, default=10, help="timed batches per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="where kornia and the batched pipeline run: auto = cpu, plus cuda if available")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="per-image DataLoader workers")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads for kornia and the batched pipeline (default: torch's, = cores)")
    ap.add_argument("--data", default="random", choices=["random", "cifar10"])
    ap.add_argument("--ops", action="store_true", help="also time each op, kornia vs batched")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "augment_throughput.json")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "auto" and torch.cuda.is_available() else [
        "cpu" if args.device == "auto" else args.device]
    n = max(args.batch_size * 4, 4096)
    images = cifar_images(n) if args.data == "cifar10" else random_images(n)
    info = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": f"first {n} CIFAR-10 train images (JPEG archive)" if args.data == "cifar10"
        else f"{n} random uint8 images of CIFAR shape (3x32x32)",
        "batch_size": args.batch_size, "batches": args.batches, "rounds": args.rounds,
        "per_image_workers": args.workers, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "kornia": kornia.__version__},
    }
    print(json.dumps(info, indent=1), flush=True)
    out = {"info": info, "throughput_images_per_s": throughput(images, args.batch_size, args.batches,
                                                              args.rounds, devices, args.workers)}
    if "cpu" in devices:
        out["per_core_cpu_time"] = per_core(images, args.batch_size, max(5, args.rounds))
    if args.ops:
        out["ops_ms_per_batch"] = {dev: op_table(args.batch_size, dev) for dev in devices}

    print("\nimages/s (median over rounds; one image = its 2 views)")
    for name, res in out["throughput_images_per_s"].items():
        cols = [k for k in res if k != "runs" and not k.startswith("ratio")]
        print(f"{name:7s} " + "  ".join(f"{k} {res[k]:>9,.0f}" for k in cols))
        print(" " * 8 + "  ".join(f"{k} {res[k]:.2f}x" for k in res if k.startswith("ratio")))
    print("\nper CPU core (one thread, process CPU time, best of rounds): images per CPU-second")
    for name, res in out.get("per_core_cpu_time", {}).items():
        print(f"{name:7s} " + "  ".join(f"{k} {v:,.1f}" if k.startswith("ratio") else f"{k} {v:,.0f}"
                                        for k, v in res.items()))
    for dev, table in out.get("ops_ms_per_batch", {}).items():
        print(f"\nms per batch of {args.batch_size} on {dev} (median)" + " " * 33 + "kornia batched")
        for name, row in table.items():
            cells = ["      -" if row[k] is None else f"{row[k]:7.2f}" for k in ("kornia_ms", "batched_ms")]
            print(f"  {name:66s} {cells[0]} {cells[1]}")
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    print(f"load average (1 min) at start {info['load_average_1min_at_start']}, at end "
          f"{info['load_average_1min_at_end']} on {os.cpu_count()} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {args.out}")
    return out


if __name__ == "__main__":
    main()
