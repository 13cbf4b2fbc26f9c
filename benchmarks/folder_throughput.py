"""Image-tree training-data throughput: a per-image PIL pipeline (PIL's blur) vs ``files_batched`` and others.

On a temporary tree of ImageNet-sized JPEGs (the two photographs scikit-learn ships, cut at random
and resized to about 500x375, both orientations and a few other sizes, re-encoded at quality
80-95), for a recipe's 2 global views (224 by default) plus ``--small-crops`` small crops, one
process measures, per DataLoader epoch (workers = cores, persistent, the first epoch not timed):

1. ``pil_blur`` (the reference): ``torchvision.datasets.ImageFolder`` (PIL decode) with a
   ``torchvision.transforms`` (v1, on PIL images) pipeline per view built from the same
   ``ViewAugment`` values, the Gaussian blur done by ``PIL.ImageFilter.GaussianBlur`` (radius =
   sigma drawn uniformly in the recipe's range, applied with the recipe's probability), then
   ToTensor/Normalize: the per-image pipeline peers use (lightly blurs in PIL this way);
2. ``torchvision``: the same, with ``torchvision.transforms.GaussianBlur``, which converts the PIL
   image to a tensor and runs a full 2-D convolution (23x23 at 224 px): a weaker baseline, kept for
   comparison with earlier results;
3. ``per_image``: ``SSLDataModule(pipeline="per_image")`` (PIL decode, transforms.v2 on tensors);
4. ``files_batched``: ``SSLDataModule(pipeline="files_batched")`` as a CPU run builds it (decode once,
   reduced-size where the crops allow, crop + resize per view, batched augmentation in the workers).

Each epoch reports images/s (wall) and images per CPU-second, the CPU time being that of this
process (``resource.getrusage``) plus its worker processes (``/proc/<pid>/stat``) over the epoch, so
that other load on a shared machine does not count. The pipelines take turns for ``--rounds`` rounds;
medians over rounds and ratios against (1), ``pil_blur``, are printed (and, in extra columns, against
(2), ``torchvision``), with the load average before and after.
``--breakdown`` adds single-thread CPU milliseconds per image of each pipeline's parts.

    python benchmarks/folder_throughput.py                      # writes benchmarks/out/folder_throughput.json
    python benchmarks/folder_throughput.py --small-crops 6 --recipe simclr
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torchvision
from PIL import Image, ImageFilter
from torch.utils.data import DataLoader

from ssl_bench.data.datamodule import SSLDataModule
from ssl_bench.data.recipes import IMAGENET_MEAN, IMAGENET_STD, MultiViewRecipe, ViewAugment, build_recipe

REPO = Path(__file__).resolve().parents[1]
PIPELINES = ("pil_blur", "torchvision", "per_image", "files_batched")
REFERENCE, OLD_REFERENCE = "pil_blur", "torchvision"  # ratios against the first, extra columns against the second
SIZES = [(500, 375), (375, 500), (500, 333), (480, 360), (512, 384), (400, 300), (640, 480), (333, 500)]


# ------------------------------------------------------------------ data

def make_tree(root: Path, n: int, seed: int = 0) -> Path:
    """``root/train/<photo>/*.jpg``: ``n`` random cuts of sklearn's two photographs, resized to
    ``SIZES`` in turn and JPEG-encoded at quality 80-95; also an (empty-class-free) ``val`` copy of a few."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(p) for p in load_sample_images().images]  # 640x427 each
    for split, count in (("train", n), ("val", 4)):
        for i in range(count):
            photo = photos[i % 2]
            w, h = SIZES[i % len(SIZES)]
            cw = int(rng.integers(320, 641))
            ch = min(427, int(round(cw * h / w)))
            cw = int(round(ch * w / h))
            x, y = int(rng.integers(0, 640 - cw + 1)), int(rng.integers(0, 427 - ch + 1))
            img = photo.crop((x, y, x + cw, y + ch)).resize((w, h), Image.Resampling.BICUBIC)
            d = root / split / f"photo{i % 2}"
            d.mkdir(parents=True, exist_ok=True)
            img.save(d / f"{i:05d}.jpg", quality=int(rng.integers(80, 96)))
    return root


# ------------------------------------------------------------------ pipelines

class PILGaussianBlur:
    """With probability ``p``, ``PIL.ImageFilter.GaussianBlur`` with a radius (PIL's name for the
    standard deviation) drawn uniformly in ``sigma``: how per-image SSL pipelines such as lightly's
    blur, in PIL's box-blur approximation rather than a convolution."""

    def __init__(self, sigma: tuple[float, float], p: float) -> None:
        self.sigma, self.p = sigma, p

    def __call__(self, img: Image.Image) -> Image.Image:
        if self.p < 1.0 and float(torch.rand(1)) >= self.p:
            return img
        radius = float(torch.empty(1).uniform_(self.sigma[0], self.sigma[1]))
        return img.filter(ImageFilter.GaussianBlur(radius=radius))


def torchvision_view(v: ViewAugment, blur: str = "tensor") -> Callable:
    """torchvision.transforms (v1) on PIL images for one view, with the recipe's values; the blur is
    torchvision's (``"tensor"``: a 2-D convolution on a tensor copy) or PIL's (``"pil"``)."""
    T = torchvision.transforms
    ops = [T.RandomResizedCrop(v.size, scale=v.crop_scale, ratio=v.crop_ratio),
           T.RandomHorizontalFlip(v.hflip_prob),
           T.RandomApply([T.ColorJitter(v.brightness, v.contrast, v.saturation, v.hue)], p=v.jitter_prob),
           T.RandomGrayscale(v.grayscale_prob)]
    if v.blur_prob > 0 and blur == "pil":
        ops.append(PILGaussianBlur(v.blur_sigma, v.blur_prob))
    elif v.blur_prob > 0:
        ops.append(T.RandomApply([T.GaussianBlur(v.blur_kernel_size, v.blur_sigma)], p=v.blur_prob))
    if v.solarize_prob > 0:
        ops.append(T.RandomSolarize(round(v.solarize_threshold * 255), p=v.solarize_prob))
    return T.Compose(ops + [T.ToTensor(), T.Normalize(v.mean, v.std)])


class MultiView:
    def __init__(self, recipe: MultiViewRecipe, no_blur: bool = False, blur: str = "tensor") -> None:
        from dataclasses import replace
        self.transforms = [torchvision_view(replace(v, blur_prob=0.0) if no_blur else v, blur)
                           for v in recipe.all_views()]

    def __call__(self, img: Image.Image) -> list[torch.Tensor]:
        return [t(img) for t in self.transforms]


def loaders(root: Path, recipe_cfg: dict, batch: int, workers: int) -> dict[str, Callable[[], DataLoader]]:
    def dm(pipeline: str) -> DataLoader:
        return SSLDataModule("folder", root=str(root), batch_size=batch, num_workers=workers, pipeline=pipeline,
                             augment=recipe_cfg).train_dataloader()

    def tv(blur: str) -> DataLoader:
        recipe = build_recipe(recipe_cfg, 224, IMAGENET_MEAN, IMAGENET_STD)
        ds = torchvision.datasets.ImageFolder(str(root / "train"), transform=MultiView(recipe, blur=blur))
        return DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                          persistent_workers=workers > 0)

    return {"pil_blur": lambda: tv("pil"), "torchvision": lambda: tv("tensor"), "per_image": lambda: dm("per_image"),
            "files_batched": lambda: dm("files_batched")}


# ------------------------------------------------------------------ timing

def _children_cpu() -> float:
    """user + system seconds of the live child processes (DataLoader workers) of this process."""
    me, total, tick = str(os.getpid()), 0.0, os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[1] == me:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime + _children_cpu()


def time_epoch(loader: DataLoader) -> dict[str, float]:
    """One epoch from ``iter()`` to exhaustion: images, wall seconds, CPU seconds (self + workers)."""
    c0, t0, n = _cpu(), time.perf_counter(), 0
    for views, labels in loader:
        n += len(labels)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return {"images": n, "wall_s": wall, "cpu_s": cpu, "img_per_s": n / wall, "img_per_cpu_s": n / cpu}


def breakdown(root: Path, recipe_cfg: dict, n: int = 48) -> dict[str, float]:
    """Single-thread CPU ms per image (2 views + small crops) of each pipeline's parts, in this process."""
    from ssl_bench.data.files_batched import FileViewBatches, PrecroppedMultiView
    from ssl_bench.data.per_image import PerImageMultiView
    from ssl_bench.data.sources import load_source, open_image

    torch.set_num_threads(1)
    src = load_source("folder", str(root))
    files = src.train.files[:n]
    recipe = build_recipe(recipe_cfg, 224, IMAGENET_MEAN, IMAGENET_STD)

    def ms(fn: Callable[[], Any]) -> float:
        fn()
        t0 = time.process_time()
        fn()
        return (time.process_time() - t0) / n * 1e3

    tv, tv_nb, per_image = MultiView(recipe), MultiView(recipe, no_blur=True), PerImageMultiView(recipe)
    pil = MultiView(recipe, blur="pil")
    crops_ds = FileViewBatches(src.train, recipe, output="crops")
    crops = crops_ds[list(range(n))][0]
    aug = PrecroppedMultiView(recipe, chunk=16)
    return {
        "pil_decode": ms(lambda: [open_image(f) for f in files]),
        "pil_blur": ms(lambda: [pil(open_image(f)) for f in files]),
        "torchvision": ms(lambda: [tv(open_image(f)) for f in files]),
        "torchvision_without_blur": ms(lambda: [tv_nb(open_image(f)) for f in files]),
        "per_image": ms(lambda: [per_image(open_image(f)) for f in files]),
        "files_batched_decode_crop": ms(lambda: crops_ds[list(range(n))]),
        "files_batched_decode_crop_full_size": ms(
            lambda: FileViewBatches(src.train, recipe, output="crops", reduce=False)[list(range(n))]),
        "files_batched_augment": ms(lambda: aug(crops)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="byol", choices=("byol", "simclr"))
    parser.add_argument("--small-crops", type=int, default=0)
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--out", default=str(REPO / "benchmarks/out/folder_throughput.json"))
    args = parser.parse_args()
    recipe_cfg = {"name": args.recipe, "num_small_crops": args.small_crops}
    names = args.pipelines.split(",")
    unknown = sorted(set(names) - set(PIPELINES))
    if unknown:
        parser.error(f"unknown pipeline(s) {', '.join(unknown)}; choose from {', '.join(PIPELINES)}")
    load = [os.getloadavg()]
    results: dict[str, list[dict[str, float]]] = {k: [] for k in names}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_tree(Path(tmp), args.images)
        makers = loaders(root, recipe_cfg, args.batch_size, args.workers)
        extra = breakdown(root, recipe_cfg) if args.breakdown else None
        torch.set_num_threads(os.cpu_count() or 1)
        for r in range(args.rounds):
            for name in names:
                loader = makers[name]()
                time_epoch(loader)  # warm-up: worker start-up, page cache, first allocations
                res = time_epoch(loader)
                results[name].append(res)
                print(f"round {r} {name:14s} {res['img_per_s']:7.1f} img/s  {res['img_per_cpu_s']:7.1f} img/CPU-s  "
                      f"(load {os.getloadavg()[0]:.2f})", flush=True)
                del loader
    load.append(os.getloadavg())
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("img_per_s", "img_per_cpu_s")}
           for k, v in results.items()}
    ratios = {ref: {k: {m: v[m] / med[ref][m] for m in v} for k, v in med.items()} if ref in med else None
              for ref in (REFERENCE, OLD_REFERENCE)}
    print(f"\nrecipe {args.recipe}, 2 x 224 + {args.small_crops} small crops, {args.images} JPEGs, batch "
          f"{args.batch_size}, {args.workers} workers, {args.rounds} rounds; load average {load[0]} -> {load[1]}")
    print(f"ratios: x pil = against {REFERENCE} (the reference), x tv = against {OLD_REFERENCE} (its tensor blur)")
    print(f"{'pipeline':14s} {'img/s':>8s} {'img/CPU-s':>10s} {'x pil (s)':>10s} {'x pil (CPU)':>11s} "
          f"{'x tv (s)':>9s} {'x tv (CPU)':>10s}")
    for k, m in med.items():
        cells = []
        for ref, widths in ((REFERENCE, (10, 11)), (OLD_REFERENCE, (9, 10))):
            r = ratios[ref][k] if ratios[ref] else None
            cells += [f"{r[m]:{w}.2f}" if r else f"{'-':>{w}s}" for m, w in zip(("img_per_s", "img_per_cpu_s"), widths)]
        print(f"{k:14s} {m['img_per_s']:8.1f} {m['img_per_cpu_s']:10.1f} " + " ".join(cells))
    if extra:
        print("\nsingle-thread CPU ms per image: " + ", ".join(f"{k} {v:.2f}" for k, v in extra.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "load": load, "rounds": results, "median": med,
                               "reference": REFERENCE, "ratios": ratios,
                               "breakdown": extra, "machine": platform.processor() or platform.machine(),
                               "cpus": os.cpu_count(), "torch": torch.__version__,
                               "torchvision": torchvision.__version__}, indent=1))


if __name__ == "__main__":
    main()
