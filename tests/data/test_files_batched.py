"""The files pipelines (``files_batched``, ``files_gpu``): crop law, reduced-size decoding, the
augmentation after the crop, the GPU decode's logic on the CPU, corrupt files and the data module."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ssl_bench.data.batched_augment import BatchedViewAugment
from ssl_bench.data.datamodule import SSLDataModule
from ssl_bench.data.file_decode import decode_crops, draft_factor, open_lazy
from ssl_bench.data.files_batched import EncodedViews, FileViewBatches, PrecroppedViewAugment, sample_view_boxes
from ssl_bench.data.gpu_decode import decode_views_on_device
from ssl_bench.data.recipes import IMAGENET_MEAN, IMAGENET_STD, ViewAugment, build_recipe
from ssl_bench.data.sources import CorruptImageError, load_source

# Reduced-size (draft) decoding against a full decode + torchvision resized_crop of the same box,
# in /255 per channel: mean absolute difference per crop, and its 99th percentile.
DRAFT_MEAN_TOL, DRAFT_P99_TOL = 1.5, 8


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _photo(width: int, height: int, index: int = 0, quality: int = 90, fmt: str = "JPEG") -> bytes:
    from sklearn.datasets import load_sample_images

    img = Image.fromarray(load_sample_images().images[index]).resize((width, height), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _full_decode(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))).permute(2, 0, 1)


def _tree(root: Path, n: int = 4, corrupt: bytes | None = None) -> Path:
    sizes = [(500, 375), (375, 500), (320, 240), (240, 320)]
    for split in ("train", "val"):
        for c in (0, 1):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{i}.jpg").write_bytes(_photo(*sizes[i % 4], index=c))
    if corrupt is not None:
        (root / "train" / "class1" / "broken.jpg").write_bytes(corrupt)
    return root


# ----------------------------------------------------------------------------- crop law

def test_crops_are_distributed_as_torchvisions_random_resized_crop():
    """Boxes drawn on a 500x375 image (global and small-crop views) vs torchvision's own
    RandomResizedCrop.make_params: two-sample KS on area fraction and aspect ratio."""
    h, w = 375, 500
    views = [ViewAugment(size=224), ViewAugment(size=96, crop_scale=(0.05, 0.14))]
    n = 2000
    ours = np.array([sample_view_boxes(h, w, views, _gen(i)) for i in range(n)])   # (n, 2, 4)
    torch.manual_seed(0)
    for k, v in enumerate(views):
        tv = v2.RandomResizedCrop(v.size, scale=v.crop_scale, ratio=v.crop_ratio)
        ref = np.array([[p["top"], p["left"], p["height"], p["width"]]
                        for p in (tv.make_params([torch.zeros(3, h, w)]) for _ in range(n))])
        top, left, bh, bw = ours[:, k].T
        assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
        for stat in (lambda b: b[:, 2] * b[:, 3] / (h * w), lambda b: b[:, 3] / b[:, 2]):   # area, aspect
            assert stats.ks_2samp(stat(ours[:, k]), stat(ref)).pvalue > 1e-3
        assert abs(np.mean(bh * bw / (h * w)) - np.mean(ref[:, 2] * ref[:, 3] / (h * w))) < 0.02


def test_dataset_samples_boxes_on_the_full_image_size(tmp_path):
    """The boxes come from the header size (not a reduced decode), and cover the whole image in law."""
    src = load_source("folder", str(_tree(tmp_path)))
    recipe = build_recipe({"name": "byol", "crop_scale": [0.9, 1.0]}, 64, IMAGENET_MEAN, IMAGENET_STD)
    ds = FileViewBatches(src.train, recipe, output="encoded", generator=_gen(0))
    enc, labels = ds[list(range(len(src.train)))]
    assert isinstance(enc, EncodedViews) and labels.tolist() == src.train.labels.tolist()
    for i, f in enumerate(enc.files):
        width, height = Image.open(f).size
        for boxes in enc.boxes:
            top, left, bh, bw = boxes[i]
            assert 0 <= top and top + bh <= height and 0 <= left and left + bw <= width
            assert bh * bw >= 0.85 * height * width   # scale (0.9, 1): a box of this image, not of a smaller one


# ----------------------------------------------------------------------------- decoding

@pytest.mark.parametrize("size", [(1280, 854), (500, 375)])
def test_reduced_size_decoding_stays_within_tolerance(size):
    width, height = size
    data = _photo(width, height)
    full = _full_decode(data)
    views = [ViewAugment(size=64, crop_scale=(0.3, 1.0))] * 2
    g, factors = _gen(0), []
    for _ in range(40):
        boxes = sample_view_boxes(height, width, views, g)
        factors.append(draft_factor(boxes, [64, 64]))
        reduced = decode_crops(open_lazy(data, "x.jpg"), boxes, [64, 64], "x.jpg")
        exact = decode_crops(open_lazy(data, "x.jpg"), boxes, [64, 64], "x.jpg", reduce=False)
        for box, r, e in zip(boxes, reduced, exact):
            ref = TF.resized_crop(full, *box, [64, 64], antialias=True).permute(1, 2, 0).numpy().astype(int)
            assert np.abs(e.astype(int) - ref).max() <= 1            # full size: torchvision's crop, to rounding
            d = np.abs(r.astype(int) - ref)
            assert d.mean() <= DRAFT_MEAN_TOL and np.percentile(d, 99) <= DRAFT_P99_TOL, (box, d.mean())
    assert max(factors) >= 4 if width > 1000 else max(factors) == 2   # the reduced decode did happen


def test_draft_factor_keeps_every_view_downscaled_twice():
    assert draft_factor([(0, 0, 500, 600)], [224]) == 1            # 500 / 224 < 2 * 2
    assert draft_factor([(0, 0, 900, 900)], [224]) == 2
    assert draft_factor([(0, 0, 1800, 1800), (0, 0, 300, 300)], [224, 32]) == 4   # the tightest view decides
    assert draft_factor([(0, 0, 1800, 1800), (0, 0, 100, 100)], [224, 32]) == 1
    assert draft_factor([(0, 0, 4000, 3000)], [96]) == 8


def test_device_decode_logic_on_cpu_matches_the_cpu_path(tmp_path):
    """gpu_decode run with device="cpu" (libjpeg instead of nvjpeg): JPEGs decoded in one batched
    call and cropped on tensors agree with the PIL path; a PNG falls back to the PIL path exactly."""
    jpeg, png = _photo(500, 375), _photo(320, 240, fmt="PNG")
    views = [ViewAugment(size=48), ViewAugment(size=24, crop_scale=(0.05, 0.14))]
    g = _gen(1)
    boxes = [sample_view_boxes(375, 500, views, g), sample_view_boxes(240, 320, views, g)]
    enc = EncodedViews([jpeg, png], [np.array([b[v] for b in boxes]) for v in range(2)], [48, 24], ["a.jpg", "b.png"])
    out = decode_views_on_device(enc, torch.device("cpu"))
    assert [tuple(o.shape) for o in out] == [(2, 3, 48, 48), (2, 3, 24, 24)] and out[0].dtype == torch.uint8
    for i, data in enumerate([jpeg, png]):
        pil = decode_crops(open_lazy(data, "f"), boxes[i], [48, 24], "f", reduce=False)
        for v in range(2):
            diff = (out[v][i].int() - torch.from_numpy(pil[v]).permute(2, 0, 1).int()).abs()
            assert diff.max() <= (1 if i == 0 else 0)


# ----------------------------------------------------------------------------- augmentation after the crop

def test_precropped_augment_is_the_batched_augment_after_its_crop():
    """On views already at the output size, PrecroppedViewAugment equals BatchedViewAugment with
    whole-image boxes (an identity resize) and the same appearance parameters."""
    view = ViewAugment(size=16, grayscale_prob=0.3, blur_prob=0.5, solarize_prob=0.5, mean=IMAGENET_MEAN,
                       std=IMAGENET_STD)
    x = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=_gen(0))
    pre = PrecroppedViewAugment(view, generator=_gen(3))
    p = pre.sample_params(32)
    assert "top" not in p and p["flip"].any() and p["jitter"].any()
    full_box = {"top": torch.zeros(32, dtype=torch.long), "left": torch.zeros(32, dtype=torch.long),
                "height": torch.full((32,), 16), "width": torch.full((32,), 16)}
    ref = BatchedViewAugment(view).apply(x, {**full_box, **p})
    assert (pre.apply(x, p) - ref).abs().max() < 1e-4
    assert torch.equal(x, x.clone())  # input untouched
    # the parent draws the same appearance parameters after its crop box (one code path for both)
    a = BatchedViewAugment(view, generator=_gen(4)).sample_params(32, 40, 50)
    g = _gen(4)
    from ssl_bench.data.batched_augment import sample_crop_boxes
    sample_crop_boxes(32, 40, 50, view.crop_scale, view.crop_ratio, g)
    b = BatchedViewAugment(view, generator=g).sample_appearance(32)
    assert all(torch.equal(a[k], b[k]) for k in b)


# ----------------------------------------------------------------------------- data module and errors

def test_files_batched_is_the_default_for_image_trees(tmp_path):
    root = _tree(tmp_path)
    dm = SSLDataModule("folder", root=str(root), batch_size=4, num_workers=0,
                       augment={"name": "byol", "num_small_crops": 2, "small_crop_size": 32})
    assert dm.hparams.pipeline == "files_batched"
    views, labels = next(iter(dm.train_dataloader()))
    assert [tuple(v.shape) for v in views] == [(4, 3, 224, 224)] * 2 + [(4, 3, 32, 32)] * 2
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in views)
    assert abs(torch.cat([v.flatten() for v in views]).mean().item()) < 1.0   # normalised, roughly
    assert labels.dtype == torch.int64 and len(labels) == 4
    assert SSLDataModule("digits").hparams.pipeline == "batched"
    with pytest.raises(ValueError, match="files_batched reads image trees") as err:
        SSLDataModule("digits", pipeline="files_batched")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="files_gpu decodes on the GPU"):
        SSLDataModule("folder", root=str(root), pipeline="files_gpu", batch_size=4, num_workers=0).train_dataloader()


def test_gpu_run_hands_uint8_crops_to_the_device_transform(tmp_path):
    """On a GPU run the workers return uint8 crops and on_after_batch_transfer augments them (here
    with a stand-in trainer whose device is the CPU, to run the same code)."""
    from types import SimpleNamespace

    dm = SSLDataModule("folder", root=str(_tree(tmp_path)), batch_size=4, num_workers=0, image_size=32)
    crops, labels = FileViewBatches(dm.source.train, dm.recipe, output="crops")[[0, 1, 2, 3]]
    assert all(c.dtype == torch.uint8 and c.shape == (4, 3, 32, 32) for c in crops)
    dm.trainer = SimpleNamespace(training=True, strategy=SimpleNamespace(root_device=torch.device("cpu")))
    views, out_labels = dm.on_after_batch_transfer((crops, labels), 0)
    assert all(v.dtype == torch.float32 and v.shape == (4, 3, 32, 32) for v in views)
    assert torch.equal(out_labels, labels)


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_file_is_one_line_naming_it(tmp_path, kind):
    bad = b"this is not an image" if kind == "garbage" else _photo(500, 375)[:4000]
    root = _tree(tmp_path, corrupt=bad)
    dm = SSLDataModule("folder", root=str(root), batch_size=9, num_workers=0, image_size=32)
    with pytest.raises(CorruptImageError) as err:
        next(iter(dm.train_dataloader()))
    msg = str(err.value)
    assert "broken.jpg" in msg and "\n" not in msg and msg.startswith("cannot decode image")
    # skip-and-count: the batch keeps its size, the warning names the file and counts
    dm = SSLDataModule("folder", root=str(root), batch_size=9, num_workers=0, image_size=32, skip_corrupt_images=True)
    with pytest.warns(RuntimeWarning, match=r"broken\.jpg.*skipped \(\d+ corrupt"):
        views, labels = next(iter(dm.train_dataloader()))
    assert views[0].shape == (9, 3, 32, 32) and len(labels) == 9
    # the GPU path's per-image fallback reports the same file
    enc = EncodedViews([bad], [np.array([[0, 0, 8, 8]])], [8], ["tree/broken.jpg"])
    with pytest.raises(CorruptImageError, match="broken.jpg"):
        decode_views_on_device(enc, torch.device("cpu"))


def test_cuda_decode_matches_cpu_decode():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU (nvjpeg)")
    data = [_photo(500, 375), _photo(375, 500, index=1), _photo(64, 48, fmt="PNG")]
    views = [ViewAugment(size=64)]
    boxes = [sample_view_boxes(h, w, views, _gen(i)) for i, (h, w) in enumerate([(375, 500), (500, 375), (48, 64)])]
    enc = EncodedViews(data, [np.array([b[0] for b in boxes])], [64], ["a", "b", "c"])
    gpu, cpu = decode_views_on_device(enc, torch.device("cuda")), decode_views_on_device(enc, torch.device("cpu"))
    assert gpu[0].device.type == "cuda" and (gpu[0].cpu().int() - cpu[0].int()).abs().float().mean() < 2
    assert math.isfinite(float(gpu[0].float().mean()))


_FAULTS_SCRIPT = """
import resource, sys, torch
from ssl_bench.data.files_batched import PrecroppedMultiView
from ssl_bench.data.recipes import IMAGENET_MEAN, IMAGENET_STD, build_recipe
from ssl_bench.data.worker_memory import keep_freed_memory
torch.set_num_threads(1)
if sys.argv[1] == "keep":
    assert keep_freed_memory()
augment = PrecroppedMultiView(build_recipe({"name": "byol"}, 224, IMAGENET_MEAN, IMAGENET_STD), chunk=16)
crops = [torch.randint(0, 256, (32, 3, 224, 224), dtype=torch.uint8) for _ in range(2)]
augment(crops)                                    # the first batch faults its working set in
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    augment(crops)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
"""


@pytest.mark.skipif(not __import__("platform").libc_ver()[0] == "glibc", reason="mallopt is glibc's")
def test_workers_keep_freed_memory_instead_of_faulting_it_in_again(tmp_path):
    """The workers' ``worker_init_fn``: after it, augmenting a 224 px batch re-uses the previous
    batch's freed memory; without it glibc unmaps and faults it in again (measured: 500-950 against
    16,000-18,000 page faults per batch of 32)."""
    import subprocess
    import sys

    faults = {mode: float(subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], capture_output=True,
                                       text=True, check=True).stdout) for mode in ("keep", "default")}
    assert faults["keep"] * 5 < faults["default"], faults
    dm = SSLDataModule("folder", root=str(_tree(tmp_path)), batch_size=4, num_workers=1, image_size=32)
    from ssl_bench.data.worker_memory import keep_freed_memory
    assert dm.train_dataloader().worker_init_fn is keep_freed_memory
    assert all(loader.worker_init_fn is keep_freed_memory for loader in dm.val_dataloader())
