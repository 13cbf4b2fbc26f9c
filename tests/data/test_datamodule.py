"""Sources, samplers and SSLDataModule: each checked against an independent computation."""
from __future__ import annotations

import io
import os
import tarfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.data import _set_sampler_epoch
from PIL import Image

from ssl_bench.data import cifar_archive
from ssl_bench.data.datamodule import SSLDataModule
from ssl_bench.data.samplers import ContiguousEvalSampler, ShuffledBatchSampler, trim_gathered
from ssl_bench.data.sources import (CorruptImageError, DatasetNotFoundError, load_source, stratified_subset)
from ssl_bench.data.worker_memory import keep_freed_memory

SHARED = Path(__file__).resolve().parents[2] / "../shared/data"
ARCHIVE = SHARED / "cifar10-jpeg.tar.gz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ----------------------------------------------------------------------------- CIFAR-10 archive

@pytest.fixture(scope="session")
def cifar10(tmp_path_factory):
    """The real archive decoded once into a fresh cache (the first-load time is printed)."""
    if not ARCHIVE.is_file():
        pytest.skip(f"{ARCHIVE} not present")
    cache = tmp_path_factory.mktemp("cifar_cache")
    t0 = time.perf_counter()
    source = load_source("cifar10", str(SHARED), cache_dir=str(cache))
    print(f"\ncifar10 first load (decode + cache write): {time.perf_counter() - t0:.1f} s")
    yield source, cache
    for f in cache.iterdir():
        f.unlink()


def test_cifar10_archive_contents(cifar10):
    source, _ = cifar10
    assert source.classes == CIFAR10_CLASSES and source.num_classes == 10 and source.image_size == 32
    assert source.train.images.shape == (50000, 3, 32, 32) and source.train.images.dtype == torch.uint8
    assert source.val.images.shape == (10000, 3, 32, 32)
    assert Counter(source.train.labels.tolist()) == {c: 5000 for c in range(10)}
    assert Counter(source.val.labels.tolist()) == {c: 1000 for c in range(10)}
    mean = source.train.images.double().mean((0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.491, 0.482, 0.447], dtype=torch.float64), atol=2e-3)
    # independent decode of two files with PIL: cat/0007 is train image 3 * 5000 + 7, test/airplane/0004 val 4
    wanted = {"train/cat/0007.jpg": (source.train, 15007), "test/airplane/0004.jpg": (source.val, 4)}
    with tarfile.open(ARCHIVE, "r|gz") as tf:
        for member in tf:
            if member.name in wanted:
                split, index = wanted.pop(member.name)
                pil = np.array(Image.open(io.BytesIO(tf.extractfile(member).read())).convert("RGB"))
                assert split.labels[index] == CIFAR10_CLASSES.index(member.name.split("/")[1])
                assert torch.equal(split.images[index], torch.from_numpy(pil).permute(2, 0, 1))
                if not wanted:
                    break
    assert not wanted


def test_cifar10_second_load_hits_cache(cifar10, monkeypatch):
    source, cache = cifar10
    assert len(list(cache.glob("*.npz"))) == 1

    def no_decode(*_):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(cifar_archive, "decode_archive", no_decode)
    t0 = time.perf_counter()
    again = load_source("cifar10", str(SHARED), cache_dir=str(cache), train_subset=1000, seed=3)
    assert time.perf_counter() - t0 < 5  # about 0.3 s; generous for a loaded 2-core machine
    idx = stratified_subset(source.train.labels, 1000, seed=3)
    assert torch.equal(again.train.images, source.train.images[idx])
    assert torch.equal(again.val.images, source.val.images)
    # with no root, the archive is found in ../shared/data (of the working directory or the repository)
    default = load_source("cifar10", cache_dir=str(cache))
    assert Path(default.origin.split(" ")[0]).resolve() == ARCHIVE.resolve()
    assert "JPEG" in default.origin  # results must be able to say which CIFAR-10 they used


def _jpeg_bytes(color: tuple[int, int, int], size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write_tiny_archive(path: Path) -> dict[str, bytes]:
    """train/{b,a}/000{0,1}.jpg and test/{a,b}/0000.jpg, added out of order on purpose."""
    files = {f"train/{c}/000{i}.jpg": _jpeg_bytes((40 * i + (0 if c == "a" else 150), 90, 200))
             for c in ("b", "a") for i in (1, 0)}
    files |= {f"test/{c}/0000.jpg": _jpeg_bytes((10, 200 if c == "a" else 20, 30)) for c in ("a", "b")}
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return files


def test_tiny_archive_order_decode_and_cache_key(tmp_path, monkeypatch):
    files = _write_tiny_archive(tmp_path / "cifar10-jpeg.tar.gz")
    cache = tmp_path / "cache"
    s = load_source("cifar10", str(tmp_path), cache_dir=str(cache))
    assert s.classes == ("a", "b") and s.train.labels.tolist() == [0, 0, 1, 1] and s.val.labels.tolist() == [0, 1]
    order = ["train/a/0000.jpg", "train/a/0001.jpg", "train/b/0000.jpg", "train/b/0001.jpg"]
    for i, name in enumerate(order):
        pil = np.array(Image.open(io.BytesIO(files[name])).convert("RGB"))
        assert torch.equal(s.train.images[i], torch.from_numpy(pil).permute(2, 0, 1))
    assert not list(tmp_path.glob("*.npz")), "must never write into the data root"
    # a changed archive (new mtime) is decoded again; an unchanged one is read from the cache
    calls = []
    real = cifar_archive.decode_archive
    monkeypatch.setattr(cifar_archive, "decode_archive", lambda p: calls.append(p) or real(p))
    load_source("cifar10", str(tmp_path), cache_dir=str(cache))
    assert calls == []
    os.utime(tmp_path / "cifar10-jpeg.tar.gz", ns=(1, 10**18))
    load_source("cifar10", str(tmp_path), cache_dir=str(cache))
    assert len(calls) == 1
    # root may also name the archive itself
    assert load_source("cifar10", str(tmp_path / "cifar10-jpeg.tar.gz"), cache_dir=str(cache)).classes == ("a", "b")


# ----------------------------------------------------------------------------- digits and subsets

def test_digits_shapes_split_and_scaling():
    from sklearn.datasets import load_digits

    s = load_source("digits")
    assert s.num_classes == 10 and s.image_size == 16 and s.in_memory
    assert s.train.images.shape == (1437, 3, 16, 16) and s.val.images.shape == (360, 3, 16, 16)
    assert s.train.images.dtype == torch.uint8 and s.train.labels.dtype == torch.int64
    x = torch.cat([s.train.images, s.val.images])
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])  # grey replicated
    for dy in (0, 1):  # nearest upsampling: every 2x2 block is constant
        for dx in (0, 1):
            assert torch.equal(x[:, :, dy::2, dx::2], x[:, :, ::2, ::2])
    # train + val is exactly the bundled set, each original pixel v (0..16) scaled to round(v * 255 / 16)
    d = load_digits()
    want = sorted(bytes(round(v * 255 / 16) for v in img.flatten()) for img in d.images)
    got = sorted(bytes(img[0, ::2, ::2].flatten().tolist()) for img in x)
    assert got == want
    # stratified 80/20: every class in val is 20% of that class, to rounding
    full, val = Counter(d.target.tolist()), Counter(s.val.labels.tolist())
    assert all(abs(val[c] - 0.2 * full[c]) <= 1 for c in range(10))
    # mean / std normalise the train split
    z = (s.train.images.double() / 255 - torch.tensor(s.mean).view(1, 3, 1, 1)) / torch.tensor(s.std).view(1, 3, 1, 1)
    assert abs(z.mean().item()) < 1e-6 and abs(z.std().item() - 1) < 1e-3


def test_stratified_subset_hand_counts_and_determinism():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)[torch.randperm(100, generator=torch.Generator().manual_seed(1))]
    for n, want in ((10, [5, 3, 2]), (7, [4, 2, 1]), (100, [50, 30, 20])):  # 7: floors 3,2,1 + largest remainder (.5)
        idx = stratified_subset(labels, n, seed=0)
        assert len(idx) == n and len(set(idx.tolist())) == n and torch.all(idx[1:] > idx[:-1])
        assert [int((labels[idx] == c).sum()) for c in range(3)] == want
    assert torch.equal(stratified_subset(labels, 10, seed=4), stratified_subset(labels, 10, seed=4))
    assert not torch.equal(stratified_subset(labels, 10, seed=4), stratified_subset(labels, 10, seed=5))
    with pytest.raises(ValueError):
        stratified_subset(labels, 101)
    s = load_source("digits", train_subset=100, val_subset=50, seed=2)
    assert len(s.train) == 100 and len(s.val) == 50
    assert all(abs(n - 10) <= 1 for n in Counter(s.train.labels.tolist()).values())
    again = load_source("digits", train_subset=100, val_subset=50, seed=2)
    assert torch.equal(s.train.images, again.train.images)


# ----------------------------------------------------------------------------- samplers

def _epoch(sampler: ShuffledBatchSampler) -> list[list[int]]:
    return [list(b) for b in sampler]


def test_batch_sampler_partitions_each_epoch_across_ranks():
    n, bs, world = 40, 5, 2
    ranks = [ShuffledBatchSampler(n, bs, world, r, seed=7) for r in range(world)]
    seen = []
    for epoch in (0, 1):
        for s in ranks:
            s.set_epoch(epoch)
        per_rank = [_epoch(s) for s in ranks]
        assert [len(b) for b in per_rank] == [4, 4] == [len(s) for s in ranks]
        flat = sorted(i for batches in per_rank for b in batches for i in b)
        assert flat == list(range(n))  # every index exactly once per epoch
        # layout by hand: global batch j = perm[10j:10j+10], rank r takes its r-th slice of 5
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(7 + epoch)).tolist()
        for r in range(world):
            assert per_rank[r] == [perm[10 * j + 5 * r: 10 * j + 5 * r + 5] for j in range(4)]
        seen.append(per_rank)
    assert seen[0] != seen[1]
    assert _epoch(ShuffledBatchSampler(40, 5, 2, 0, seed=8)) != seen[0][0]


def test_batch_sampler_drops_incomplete_global_batch():
    ranks = [ShuffledBatchSampler(43, 5, 2, r) for r in range(2)]
    flat = [i for s in ranks for b in _epoch(s) for i in b]
    assert len(flat) == 40 == len(set(flat)) and all(0 <= i < 43 for i in flat)


def test_batch_sampler_state_dict_resumes_mid_epoch_and_after_epoch():
    ref = ShuffledBatchSampler(60, 4, seed=3)
    ref.set_epoch(2)
    full = _epoch(ref)
    s = ShuffledBatchSampler(60, 4, seed=3)
    s.set_epoch(2)
    it = iter(s)
    head = [next(it) for _ in range(6)]
    state = s.state_dict()
    assert state["epoch"] == 2 and state["batches_yielded"] == 6 and state["samples_yielded"] == 24
    resumed = ShuffledBatchSampler(60, 4, seed=3)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # Lightning calls this with the same epoch: the position must survive
    assert len(resumed) == 15  # full-epoch length: Lightning counts the resumed batches itself
    assert head + _epoch(resumed) == full
    assert _epoch(resumed) == full  # the resume offset applies to one iteration only
    # another global batch size continues with the unseen part of the same permutation
    wide = [ShuffledBatchSampler(60, 6, 2, r, seed=3) for r in range(2)]
    for w in wide:
        w.load_state_dict(state)
    rest = sorted(i for w in wide for b in _epoch(w) for i in b)
    assert rest == sorted(i for b in full[6:] for i in b)
    # a finished epoch resumes at the start of the next one
    done = ShuffledBatchSampler(60, 4, seed=3)
    done.load_state_dict({"epoch": 2, "batches_yielded": 15, "samples_yielded": 60})
    ref.set_epoch(3)
    assert done.epoch == 3 and _epoch(done) == _epoch(ref)


def test_eval_sampler_contiguous_padded_and_trimmed():
    got = [list(ContiguousEvalSampler(10, 3, r)) for r in range(3)]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 9, 9]]
    assert list(ContiguousEvalSampler(5, 1, 0)) == [0, 1, 2, 3, 4]
    gathered = torch.tensor(got)  # what all_gather of per-rank index tensors returns: (world, per_rank)
    assert trim_gathered(gathered, 10).tolist() == list(range(10))


# ----------------------------------------------------------------------------- data module

def _stub_trainer(training: bool) -> SimpleNamespace:
    return SimpleNamespace(training=training)


def _check_views(views, labels, batch, size):
    assert isinstance(views, list) and len(views) == 2
    for v in views:
        assert v.shape == (batch, 3, size, size) and v.dtype == torch.float32
    assert labels.shape == (batch,) and labels.dtype == torch.int64


def test_datamodule_per_image_batches():
    dm = SSLDataModule("digits", batch_size=32, eval_batch_size=100, num_workers=0, pipeline="per_image",
                       eval_train_subset=200, augment={"name": "simclr", "crop_scale": [0.5, 1.0]})
    assert dm.num_classes == 10 and dm.image_size == 16 and dm.recipe.views[0].size == 16
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert len(loader) == 1437 // 32
    views, labels = next(iter(loader))
    _check_views(views, labels, 32, 16)
    assert abs(torch.stack(views).mean().item()) < 0.5  # normalised, roughly
    val, bank = dm.val_dataloader()
    x = torch.cat([b[0] for b in val])
    assert x.shape == (360, 3, 16, 16) and x.dtype == torch.float32
    assert abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1
    assert sum(len(b[1]) for b in bank) == 200
    ref = (dm.source.val.images.float() / 255 - torch.tensor(dm.mean).view(1, 3, 1, 1)) / torch.tensor(dm.std).view(1, 3, 1, 1)
    assert torch.allclose(x, ref, atol=1e-5)  # in-memory eval images: only normalised


def test_datamodule_batched_batches_match_contract():
    from ssl_bench.data.batched_augment import BatchedMultiView  # noqa: F401  (the real one, no stand-in)

    dm = SSLDataModule("digits", batch_size=64, eval_batch_size=128, num_workers=0, pipeline="batched",
                       augment={"name": "byol"})
    dm.setup("fit")
    val_loader, bank_loader = dm.val_dataloader()
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (64, 3, 16, 16) and labels.dtype == torch.int64
    # the batch is the raw images at the sampler's first indices
    first = next(iter(ShuffledBatchSampler(1437, 64, seed=0)))
    assert torch.equal(images, dm.source.train.images[first]) and torch.equal(labels, dm.source.train.labels[first])
    dm.trainer = _stub_trainer(training=True)
    views, out_labels = dm.on_after_batch_transfer((images, labels), 0)
    _check_views(views, out_labels, 64, 16)
    assert abs(torch.stack(views).mean().item()) < 0.5
    dm.trainer = _stub_trainer(training=False)
    x, y = dm.on_after_batch_transfer(next(iter(val_loader)), 0)
    ref = (dm.source.val.images[:128].float() / 255 - torch.tensor(dm.mean).view(1, 3, 1, 1)) / torch.tensor(dm.std).view(1, 3, 1, 1)
    assert torch.allclose(x, ref, atol=1e-6) and torch.equal(y, dm.source.val.labels[:128])
    assert sum(len(b[1]) for b in bank_loader) == 1437


def test_lightning_sets_the_sampler_epoch():
    dm = SSLDataModule("digits", batch_size=64, num_workers=0)
    loader = dm.train_dataloader()
    _set_sampler_epoch(loader, 3)  # what the fit loop calls at every epoch start
    assert loader.sampler.epoch == 3


def test_storage_device_and_loader_options_follow_the_trainer():
    gpu_trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 1)))
    dm = SSLDataModule("digits", num_workers=3)
    assert dm.storage_device() == torch.device("cpu")  # no trainer: CPU
    dm.trainer = gpu_trainer
    assert dm.storage_device() == torch.device("cuda", 1)  # auto: this rank's GPU
    on_gpu = SimpleNamespace(images=torch.empty(2, 3, 4, 4, device="meta"))
    assert dm._loader_kwargs(on_gpu) == {"num_workers": 0, "persistent_workers": False, "worker_init_fn": None,
                                         "pin_memory": False}
    on_cpu = SimpleNamespace(images=torch.empty(2, 3, 4, 4))
    assert dm._loader_kwargs(on_cpu) == {"num_workers": 3, "persistent_workers": True,
                                         "worker_init_fn": keep_freed_memory, "pin_memory": True}
    for kw in ({"in_memory_device": "cpu"}, {"pipeline": "per_image"}):
        other = SSLDataModule("digits", **kw)
        other.trainer = gpu_trainer
        assert other.storage_device() == torch.device("cpu")
    cuda = SSLDataModule("digits", in_memory_device="cuda")
    cuda.trainer = gpu_trainer
    assert cuda.storage_device() == torch.device("cuda", 1)


class _Tiny(pl.LightningModule):
    """A linear model on the first view; records which raw batches it trained on."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(3 * 16 * 16, 10)

    def training_step(self, batch, batch_idx):
        views, labels = batch
        assert len(views) == 2 and views[0].dtype == torch.float32 and labels.dtype == torch.int64
        return torch.nn.functional.cross_entropy(self.net(views[0].flatten(1)), labels)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        images, labels = batch
        assert images.dtype == torch.float32 and images.shape[1:] == (3, 16, 16)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class _RecordingDM(SSLDataModule):
    """Fingerprints (per-sample pixel sums) of the raw training batches, in training order.

    The order is under test, not the augmentation: views are the normalised batch, twice (cheap on CPU).
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen: list[tuple[int, ...]] = []

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if self.trainer.training:
            self.seen.append(tuple(batch[0].sum((1, 2, 3)).tolist()))
        return super().on_after_batch_transfer(batch, dataloader_idx)

    def train_batch_transform(self, images):
        return [self.eval_batch_transform(images)] * 2


def _fit(tmp_path, max_epochs=2, max_steps=-1, ckpt_path=None, callbacks=(), val=False, workers=0):
    dm = _RecordingDM(dataset="digits", batch_size=128, eval_batch_size=256, num_workers=workers, seed=5,
                      train_subset=1024)
    trainer = pl.Trainer(max_epochs=max_epochs, max_steps=max_steps, accelerator="cpu", devices=1,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         use_distributed_sampler=False, default_root_dir=tmp_path, callbacks=list(callbacks),
                         limit_val_batches=1.0 if val else 0, num_sanity_val_steps=1 if val else 0,
                         enable_checkpointing=bool(callbacks))
    trainer.fit(_Tiny(), dm, ckpt_path=ckpt_path)
    return dm.seen


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The training order of an uninterrupted 2-epoch run (with validation on both eval loaders)."""
    return _fit(tmp_path_factory.mktemp("full"), val=True)


@pytest.mark.parametrize("stop_step", [3, 8])  # mid-epoch and exactly at the end of epoch 0 (8 batches)
def test_trainer_resume_continues_the_training_order(tmp_path, uninterrupted, stop_step):
    full = uninterrupted
    assert len(full) == 16 and full[:8] != full[8:]
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=stop_step, save_top_k=-1)
    head = _fit(tmp_path / "a", max_steps=stop_step, callbacks=[ckpt], workers=1)  # workers draw ahead
    tail = _fit(tmp_path / "b", ckpt_path=str(next((tmp_path / "ck").glob(f"*step={stop_step}.ckpt"))))
    assert head == full[:stop_step] and tail == full[stop_step:]


# ----------------------------------------------------------------------------- image trees and errors

def _tree(root: Path, corrupt: bool = False) -> None:
    for split, n in (("train", 3), ("val", 2)):
        for c, color in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (20, 24), color).save(d / f"{i}.png")
    if corrupt:
        (root / "train" / "dog" / "broken.jpg").write_bytes(b"this is not a jpeg")


def test_folder_source_and_per_image_pipeline(tmp_path):
    _tree(tmp_path)
    s = load_source("folder", str(tmp_path), image_size=16)
    assert not s.in_memory and s.classes == ("cat", "dog") and s.num_classes == 2 and s.image_size == 16
    assert s.train.labels.tolist() == [0, 0, 0, 1, 1, 1] and s.val.labels.tolist() == [0, 0, 1, 1]
    assert s.train.files[0].endswith("train/cat/0.png")
    with pytest.raises(ValueError, match="per_image"):
        SSLDataModule("folder", root=str(tmp_path), pipeline="batched")
    dm = SSLDataModule("folder", root=str(tmp_path), pipeline="per_image", batch_size=4, eval_batch_size=4,
                       num_workers=0, image_size=16)
    views, labels = next(iter(dm.train_dataloader()))
    _check_views(views, labels, 4, 16)
    images, labels = next(iter(dm.val_dataloader()[0]))
    assert images.shape == (4, 3, 16, 16)
    # resize to 18 (= 16 * 8 / 7) then centre crop: a flat red image stays flat red, normalised
    red = (torch.tensor([200, 30, 30]) / 255 - torch.tensor(dm.mean)) / torch.tensor(dm.std)
    assert torch.allclose(images[0], red.view(3, 1, 1).expand(3, 16, 16), atol=1e-5)


def test_corrupt_image_error_names_the_file(tmp_path):
    from torch._utils import ExceptionWrapper

    _tree(tmp_path, corrupt=True)
    dm = SSLDataModule("folder", root=str(tmp_path), pipeline="per_image", batch_size=7, num_workers=0,
                       image_size=16)
    with pytest.raises(CorruptImageError, match="broken.jpg") as err:
        next(iter(dm.train_dataloader()))
    # from a worker process the DataLoader re-raises it the way ExceptionWrapper does (a real worker
    # is not used here: after an error in a forked worker under pytest, its shutdown waits 5 s)
    try:
        raise err.value
    except CorruptImageError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(CorruptImageError, match="broken.jpg"):
        wrapped.reraise()


def test_default_roots_order(monkeypatch, tmp_path):
    from ssl_bench.data.sources import candidate_roots

    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SSL_BENCH_DATA", str(tmp_path / "elsewhere"))
    # cwd/../shared/data, then <repo>/../shared/data, then $SSL_BENCH_DATA
    assert candidate_roots(None) == [Path(os.getcwd()).parent / "shared/data",
                                     Path(__file__).resolve().parents[3] / "shared/data", tmp_path / "elsewhere"]
    assert candidate_roots("/x/y") == [Path("/x/y")]


def test_missing_dataset_is_one_line(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_source("cifar10", str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("cifar10:") and str(tmp_path) in msg
    assert "cifar10-jpeg.tar.gz" in msg and "cifar-10-batches-py" in msg
    for name in ("cifar100", "stl10", "imagenet", "folder"):
        with pytest.raises(DatasetNotFoundError) as err:
            load_source(name, str(tmp_path))
        assert "\n" not in str(err.value) and str(err.value).startswith(f"{name}:")
    (tmp_path / "cifar-10-batches-py").mkdir()  # present but not torchvision's files
    with pytest.raises(DatasetNotFoundError, match="incomplete or corrupt"):
        load_source("cifar10", str(tmp_path))


def test_unknown_names_are_one_line():
    with pytest.raises(ValueError) as err:
        load_source("mnist")
    assert "\n" not in str(err.value) and "cifar10" in str(err.value) and "digits" in str(err.value)
    with pytest.raises(ValueError) as err:
        SSLDataModule("mnist")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="pipeline"):
        SSLDataModule("digits", pipeline="gpu")
    with pytest.raises(ValueError, match="unknown option"):
        load_source("digits", cache_dir="/tmp")
