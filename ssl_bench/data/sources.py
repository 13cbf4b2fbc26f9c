"""Dataset sources: train / val splits by name, in memory (uint8 tensors) or as image files.

``load_source(name, root, **opts)`` downloads nothing unless asked (``download=True``, the config's
``data.download``: CIFAR-10/100 and STL-10 through torchvision's dataset classes, into ``root``).
Known names and what must be under ``root``:

- ``cifar10``: torchvision's ``cifar-10-batches-py/`` (preferred: the original lossless pixels) or
  the JPEG archive ``cifar10-jpeg.tar.gz`` (decoded once, cached; see ``cifar_archive.py``).
- ``cifar100``: torchvision's ``cifar-100-python/`` (fine labels, 100 classes).
- ``stl10``: torchvision's ``stl10_binary/`` (Coates et al., 2011): 5k labelled train, 8k test,
  96x96; ``unlabeled=True`` adds the 100k unlabelled images as ``train_unlabeled`` (label -1).
- ``folder``, ``imagenet``, ``imagenet100``: an image tree ``train/<class>/*`` and ``val/<class>/*``,
  listed in torchvision's ``find_classes``/``make_dataset`` order (see ``_class_files``: directory
  links are followed at the class level only) and decoded per image later. ``val/`` may be missing
  (an empty val split, or ``val_fraction``: a class-stratified part of train held out as val), and
  images without class folders (directly in ``train/``, or in ``root`` itself when there is no
  ``train/``) are unlabelled: label -1, no classes, no val split.
- ``digits``: scikit-learn's bundled 8x8 digits, for tests (see ``_digits``).

When ``root`` is None the data directory is searched in this order: ``../shared/data`` relative to
the working directory, ``../shared/data`` relative to the repository root, then ``$SSL_BENCH_DATA``.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, SSLBenchError
from .recipes import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger("ssl_bench")

IMAGE_TREE_DATASETS = ("folder", "imagenet", "imagenet100")
#: datasets torchvision can download: name -> (torchvision class, the folder it makes under root, size)
DOWNLOADABLE = {"cifar10": ("CIFAR10", "cifar-10-batches-py", "about 170 MB"),
                "cifar100": ("CIFAR100", "cifar-100-python", "about 170 MB"),
                "stl10": ("STL10", "stl10_binary", "about 2.6 GB")}
DIGITS_SIZE = 16  # the 8x8 digits are upsampled (nearest) to 16x16 so that random crops stay meaningful
DIGITS_SPLIT_SEED = 0  # the 80/20 train/val split of digits is part of the dataset definition


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they were looked for; the message is one line."""


class CorruptImageError(SSLBenchError, OSError):
    """An image file that cannot be decoded; the message names the file and the options."""


def open_image(path: str) -> Image.Image:
    """Decode one image file to RGB with PIL, or raise ``CorruptImageError`` naming the file."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise CorruptImageError(f"cannot decode image {path}: {' '.join(str(err).split())}; remove or replace it, "
                                f"or set data.skip_corrupt_images: true (skips and counts unreadable images; "
                                f"data.check_images: true checks every image before training)") from None


@dataclass(frozen=True)
class Split:
    """One split: ``labels`` int64 (N,) always, plus either ``images`` uint8 (N, 3, H, W) or ``files``."""

    labels: torch.Tensor
    images: torch.Tensor | None = None
    files: list[str] | None = None

    def __len__(self) -> int:
        return int(self.labels.numel())

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def subset(self, indices: torch.Tensor) -> "Split":
        """The samples at ``indices`` (an int64 tensor), in that order."""
        return Split(
            labels=self.labels[indices],
            images=None if self.images is None else self.images[indices],
            files=None if self.files is None else [self.files[i] for i in indices.tolist()],
        )


@dataclass(frozen=True)
class Source:
    """A dataset's splits and the constants a pipeline needs."""

    name: str
    train: Split
    val: Split
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: tuple[str, ...]
    origin: str  # what was read (path and format): say which CIFAR-10 variant results come from
    train_unlabeled: Split | None = None

    @property
    def in_memory(self) -> bool:
        return self.train.in_memory


# ----------------------------------------------------------------------------- names

_NAME = re.compile(r"\w[\w.+-]*")


def dataset_name(data: dict[str, Any]) -> str:
    """The dataset's name where people read it (run and sweep-cell names, ``summary.json``, the
    sweep report's sections, the random-init baseline's directory), from a config's ``data`` section:
    ``data.name`` when set, else for ``folder`` the name of ``data.root``'s last folder
    (``/data/flowers`` -> ``flowers``), else ``data.dataset`` (registered datasets, as before).
    A ``data.name`` that cannot name a directory is one ``ConfigError`` line."""
    name = data.get("name")
    if name is None:
        dataset, root = str(data.get("dataset", "data")), data.get("root")
        if dataset != "folder" or not root:
            return dataset
        return Path(os.path.abspath(os.path.expanduser(str(root)))).name or dataset
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"data.name {name!r} names run directories: use letters, digits and _ . + - "
                          f"(starting with a letter, digit or _)")
    return name


# ----------------------------------------------------------------------------- root and errors

def candidate_roots(root: str | os.PathLike | None) -> list[Path]:
    """Directories to search: ``[root]`` when given, else the defaults in the module docstring."""
    if root is not None:
        return [Path(root).expanduser()]
    import ssl_bench

    roots = [Path.cwd() / "../shared/data", Path(ssl_bench.__file__).resolve().parents[1] / "../shared/data"]
    if os.environ.get("SSL_BENCH_DATA"):
        roots.append(Path(os.environ["SSL_BENCH_DATA"]).expanduser())
    unique: dict[Path, None] = {}
    for r in roots:
        unique.setdefault(Path(os.path.normpath(r.absolute())), None)
    return list(unique)


def _not_found(name: str, roots: list[Path], needs: str) -> DatasetNotFoundError:
    where = ", ".join(str(r) for r in roots)
    if name not in DOWNLOADABLE:
        return DatasetNotFoundError(f"{name}: found {needs} under {where}; put one there or set data.root "
                                    f"(or $SSL_BENCH_DATA); nothing is downloaded")
    _, folder, size = DOWNLOADABLE[name]
    return DatasetNotFoundError(f"{name}: found {needs} under {where}; put one there or set data.root "
                                f"(or $SSL_BENCH_DATA), or set data.download: true to fetch {_url(name)} ({size}) "
                                f"into <data.root>/{folder}/ with torchvision (offline: download that file "
                                f"elsewhere and extract it in data.root)")


def _url(name: str) -> str:
    import torchvision.datasets

    return str(getattr(torchvision.datasets, DOWNLOADABLE[name][0]).url)


def download(name: str, root: str | os.PathLike | None) -> Path:
    """Fetch dataset ``name`` (a key of ``DOWNLOADABLE``) into ``root`` (default: $SSL_BENCH_DATA)
    with torchvision's dataset class (``download=True``: downloads, checks and extracts the archive;
    nothing happens when its files are already there and intact). Returns the directory it went to.
    A failed download (no network) is one ``DatasetNotFoundError`` line naming the directory."""
    import torchvision.datasets

    cls_name, folder, size = DOWNLOADABLE[name]
    if root is None and not os.environ.get("SSL_BENCH_DATA"):
        raise DatasetNotFoundError(f"{name}: data.download needs the directory to put {folder}/ in: set data.root "
                                   f"(or $SSL_BENCH_DATA)")
    target = Path(root if root is not None else os.environ["SSL_BENCH_DATA"]).expanduser()
    cls = getattr(torchvision.datasets, cls_name)
    log.info(f"{name}: downloading {cls.url} ({size}) into {target / folder} (data.download)")
    try:
        target.mkdir(parents=True, exist_ok=True)
        if name == "stl10":  # one archive holds every split
            cls(str(target), split="train", download=True)
        else:
            cls(str(target), train=True, download=True)
    except (OSError, RuntimeError) as err:  # URLError and socket errors are OSErrors; RuntimeError: md5 check
        why = " ".join(str(err).split()) or type(err).__name__
        raise DatasetNotFoundError(f"{name}: downloading {cls.url} into {target} failed ({why}); with no network, "
                                   f"download that file elsewhere and extract it in {target} (it holds "
                                   f"{folder}/), then run again") from None
    return target


# ----------------------------------------------------------------------------- subsets

def stratified_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of a deterministic class-stratified subset of size ``n`` (sorted ascending).

    Each class gets ``floor(n * n_c / N)`` samples; the remaining slots go to the classes with the
    largest fractional parts (ties: lower class id). Within a class the samples are the first of a
    permutation drawn from ``torch.Generator().manual_seed(seed)``.
    """
    total = labels.numel()
    if not 0 < n <= total:
        raise ValueError(f"subset size must be in 1..{total}, got {n}")
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / total
    take = exact.floor().long()
    remainder = n - int(take.sum())
    if remainder:
        order = sorted(range(len(classes)), key=lambda i: (-(exact[i] - take[i]).item(), i))
        for i in order[:remainder]:
            take[i] += 1
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c, k in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(labels == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.cat(chosen).sort().values


# ----------------------------------------------------------------------------- loaders

def _memory_split(images: np.ndarray | torch.Tensor, labels: Any, channels_last: bool) -> Split:
    x = torch.as_tensor(np.asarray(images))
    if channels_last:
        x = x.permute(0, 3, 1, 2)
    return Split(labels=torch.as_tensor(np.asarray(labels), dtype=torch.int64), images=x.contiguous())


def _cifar10(roots: list[Path], cache_dir: str | None = None) -> Source:
    from .cifar_archive import ARCHIVE_NAME, load_archive

    for r in roots:
        if (r / "cifar-10-batches-py").is_dir():
            return _torchvision_cifar("cifar10", r, "cifar-10-batches-py")
        archive = r if r.is_file() else r / ARCHIVE_NAME
        if archive.is_file():
            a = load_archive(archive, Path(cache_dir).expanduser() if cache_dir else None)
            return Source("cifar10", _memory_split(a["train_x"], a["train_y"], False),
                          _memory_split(a["val_x"], a["val_y"], False), len(a["classes"]), a["train_x"].shape[-1],
                          CIFAR_MEAN, CIFAR_STD, tuple(str(c) for c in a["classes"]),
                          f"{archive} (JPEG re-encoded CIFAR-10)")
    raise _not_found("cifar10", roots, f"neither {ARCHIVE_NAME} nor cifar-10-batches-py/")


def _cifar100(roots: list[Path]) -> Source:
    for r in roots:
        if (r / "cifar-100-python").is_dir():
            return _torchvision_cifar("cifar100", r, "cifar-100-python")
    raise _not_found("cifar100", roots, "no cifar-100-python/ (torchvision's pickles)")


def _torchvision_cifar(name: str, root: Path, folder: str) -> Source:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    try:
        train, val = cls(str(root), train=True), cls(str(root), train=False)
    except RuntimeError as err:  # torchvision's md5 check failed
        raise DatasetNotFoundError(f"{name}: {root / folder} is incomplete or corrupt ({err})") from None
    # CIFAR-100 statistics differ slightly from CIFAR-10's; the CIFAR-10 constants are the usual choice
    return Source(name, _memory_split(train.data, train.targets, True), _memory_split(val.data, val.targets, True),
                  len(train.classes), 32, CIFAR_MEAN, CIFAR_STD, tuple(train.classes), str(root / folder))


def _stl10(roots: list[Path], unlabeled: bool = False) -> Source:
    from torchvision.datasets import STL10

    # torchvision's integrity check wants every file, unlabeled_X.bin included, even for split="train"
    needed = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin"]
    for r in roots:
        d = r / "stl10_binary"
        if all((d / f).is_file() for f in needed):
            try:
                train, val = STL10(str(r), split="train"), STL10(str(r), split="test")
                extra = STL10(str(r), split="unlabeled") if unlabeled else None
            except RuntimeError as err:
                raise DatasetNotFoundError(f"stl10: {d} is incomplete or corrupt ({err})") from None
            return Source("stl10", _memory_split(train.data, train.labels, False),
                          _memory_split(val.data, val.labels, False), 10, 96, IMAGENET_MEAN, IMAGENET_STD,
                          tuple(getattr(train, "classes", None) or map(str, range(10))), str(d),
                          _memory_split(extra.data, extra.labels, False) if extra is not None else None)
    raise _not_found("stl10", roots, f"no stl10_binary/ with {', '.join(needed)}")


def unreadable_images(files: list[str] | None, threads: int = 1) -> list[int]:
    """Indices of the files PIL cannot decode (threads: PIL releases the GIL while decoding)."""
    from concurrent.futures import ThreadPoolExecutor

    def readable(path: str) -> bool:
        try:
            open_image(path)
            return True
        except CorruptImageError:
            return False

    with ThreadPoolExecutor(max(1, threads)) as pool:
        ok = list(pool.map(readable, files or []))
    return [i for i, good in enumerate(ok) if not good]


MAX_INFERRED_SIZE = 224


def infer_image_size(files: list[str], sample: int = 32) -> int:
    """The median shorter side of up to ``sample`` images spread over ``files`` (headers only),
    capped at ``MAX_INFERRED_SIZE``: small images train at their own size, not upsampled to 224."""
    step = max(1, len(files) // sample)
    sides = []
    for path in files[::step][:sample]:
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except (OSError, ValueError, SyntaxError):
            continue  # a corrupt file is reported when it is read
    if not sides:
        return MAX_INFERRED_SIZE
    return min(MAX_INFERRED_SIZE, sorted(sides)[len(sides) // 2])


#: a one-class or unlabelled image tree: k-NN and the linear probe (torchmetrics) need at least two
#: classes. The loader cannot see whether they are on (model.knn / model.linear_probe):
#: ``build.check_model_input`` refuses them in one line (both off, such a tree pretrains fine)
def _class_folders(name: str, split_dir: str) -> list[str]:
    """The class folders directly under ``split_dir``, sorted, as torchvision's ``find_classes`` finds
    them: directories and links to directories (ImageNet-100 subsets are often built by linking class
    folders). A link that resolves to ``split_dir`` itself or one of its ancestors is refused: reading
    it would read the whole tree again, under one class."""
    split_real = os.path.realpath(split_dir)
    names = []
    with os.scandir(split_dir) as entries:
        for entry in entries:
            if not entry.is_dir():  # follows a link, as find_classes does
                continue
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if os.path.commonpath([split_real, target]) == target:
                    what = "the split folder itself" if target == split_real else f"an ancestor of {split_dir}"
                    raise ValueError(f"{name}: class folder {entry.path} is a link to {target}, {what}, so the "
                                     f"tree would be read again under one class; point it at that class's own "
                                     f"image folder, or remove it")
            names.append(entry.name)
    return sorted(names)


def _class_files(class_dir: str, extensions: tuple[str, ...], skipped: list[str]) -> list[str]:
    """The image files under ``class_dir`` (extensions matched case-insensitively), in torchvision's
    ``make_dataset`` order: folders sorted by path, files sorted by name within each folder.

    Written here rather than calling ``make_dataset``, which walks with ``os.walk(followlinks=True)``
    and so follows every directory link: a link back up (``train/bag/loop -> ..``) made it read the
    whole tree again under ``bag``, 120 files became 4,920 and the other classes' images were
    labelled ``bag``. Below the class folder, directory links are not followed (appended to
    ``skipped``); links to files are read like files."""
    files = []
    for dirpath, dirnames, filenames in sorted(os.walk(class_dir), key=lambda walked: walked[0]):
        skipped.extend(os.path.join(dirpath, d) for d in sorted(dirnames) if os.path.islink(os.path.join(dirpath, d)))
        files.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(extensions))
    return files


def _tree_items(split_dir: str, class_to_idx: dict[str, int], extensions: tuple[str, ...], skipped: list[str],
                allow_empty: bool = False) -> list[tuple[str, int]]:
    """``(path, class index)`` of every image of the classes in ``class_to_idx`` under ``split_dir``,
    classes in name order; a class without images is a ``FileNotFoundError`` (as in ``make_dataset``)
    unless ``allow_empty``."""
    items: list[tuple[str, int]] = []
    empty = []
    for cls in sorted(class_to_idx):
        class_dir = os.path.join(split_dir, cls)
        files = _class_files(class_dir, extensions, skipped) if os.path.isdir(class_dir) else []
        if not files:
            empty.append(cls)
        items.extend((f, class_to_idx[cls]) for f in files)
    if empty and not allow_empty:
        raise FileNotFoundError(f"found no image file for the class(es) {', '.join(empty)} in {split_dir}; "
                                f"extensions read: {', '.join(extensions)}")
    return items


def _empty_split() -> Split:
    return Split(labels=torch.zeros(0, dtype=torch.int64), files=[])


def _has_images(directory: Path, extensions: tuple[str, ...]) -> bool:
    """Image files directly in ``directory`` (a flat folder of unlabelled images)."""
    with os.scandir(directory) as entries:
        return any(e.is_file() and e.name.lower().endswith(extensions) for e in entries)


def _image_tree(name: str, roots: list[Path], image_size: int | None = None,
                drop_unknown_val_classes: bool = False) -> Source:
    """The image tree under the first root that holds one: ``train/<class>/*`` with ``val/<class>/*``
    or without ``val/`` (an empty val split), or unlabelled images (no class folders) in ``train/``,
    or in the root itself when it has no ``train/``."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    complete = [r for r in roots if (r / "train").is_dir() and (r / "val").is_dir()]
    for r in complete + [r for r in roots if r not in complete]:  # a whole tree first, as before
        skipped: list[str] = []
        unlabelled: Path | None = None
        if (r / "train").is_dir():
            try:
                classes = _class_folders(name, str(r / "train"))
                if not classes and not _has_images(r / "train", IMG_EXTENSIONS):
                    raise FileNotFoundError(f"found no class folder and no image in {r / 'train'}; put the images "
                                            f"in train/<class>/ (and val/<class>/), or directly in train/ when "
                                            f"they have no labels")
                if not classes:
                    unlabelled = r / "train"
                else:
                    class_to_idx = {c: i for i, c in enumerate(classes)}
                    has_val = (r / "val").is_dir()
                    val_classes = _class_folders(name, str(r / "val")) if has_val else []
                    splits = []
                    for part in ("train", "val") if has_val else ("train",):
                        items = _tree_items(str(r / part), class_to_idx, IMG_EXTENSIONS, skipped)
                        splits.append(Split(labels=torch.tensor([c for _, c in items], dtype=torch.int64),
                                            files=[p for p, _ in items]))
                    extra = sorted(set(val_classes) - set(classes))
                    dropped = len(_tree_items(str(r / "val"), {c: 0 for c in extra}, IMG_EXTENSIONS, skipped,
                                              allow_empty=True)) if extra else 0
            except FileNotFoundError as err:  # no class folders, or a class without images
                raise DatasetNotFoundError(f"{name}: {r}: {err}".replace("\n", " ")) from None
        elif r.is_dir() and _has_images(r, IMG_EXTENSIONS):
            unlabelled = r
        else:
            continue
        if unlabelled is not None:
            files = _class_files(str(unlabelled), IMG_EXTENSIONS, skipped)
            splits = [Split(labels=torch.full((len(files),), -1, dtype=torch.int64), files=files)]
            classes, extra = [], []
            note = " (val/ is not read)" if (r / "val").is_dir() else ""
            log.info(f"{name}: {unlabelled} has no class folders: {len(files)} unlabelled images (label -1), no "
                     f"val split{note}; k-NN and the linear probe need labels (model.knn, model.linear_probe false)")
        if skipped:
            shown = ", ".join(os.path.relpath(p, r) for p in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
            log.warning(f"{name}: skipped {len(skipped)} directory link(s) inside class folders ({shown}); "
                        f"links are not followed below the class level")
        if extra:
            shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
            what = f"{name}: {len(extra)} val class(es) not in train ({shown}; {dropped} images)"
            if not drop_unknown_val_classes:
                raise ValueError(f"{what}: k-NN and the probe cannot predict them; remove them, or set "
                                 f"data.drop_unknown_val_classes: true to leave them out")
            log.info(f"{what} left out (data.drop_unknown_val_classes)")
        if image_size is None:
            image_size = infer_image_size(splits[0].files)  # type: ignore[arg-type]
            log.info(f"{name}: data.image_size not set; training at {image_size}, the median shorter side "
                     f"of sampled training images (at most {MAX_INFERRED_SIZE})")
        val = splits[1] if len(splits) > 1 else _empty_split()
        return Source(name, splits[0], val, len(classes), image_size, IMAGENET_MEAN, IMAGENET_STD,
                      tuple(classes), str(r))
    raise _not_found(name, roots, "no image tree (train/<class>/*, with or without val/<class>/*) and no "
                                  "folder of images")


def hold_out_val(source: Source, fraction: float, seed: int = 0) -> Source:
    """``data.val_fraction``: for a labelled image tree without ``val/``, ``round(fraction * N)`` of
    the training images become the val split, class-stratified and seeded (``stratified_subset``:
    the same images for the same ``seed``); train keeps the others (disjoint)."""
    what = f"{source.name}: data.val_fraction {fraction}"
    if len(source.val):
        raise ValueError(f"{what}: {source.origin} has a val/ folder, which is the val split; remove "
                         f"data.val_fraction (it holds out part of train when there is no val/)")
    if source.num_classes == 0:
        raise ValueError(f"{what}: {source.origin} holds unlabelled images (no class folders), which k-NN and the "
                         f"probe cannot score; remove data.val_fraction and set model.knn false and "
                         f"model.linear_probe false")
    total = len(source.train)
    n = round(fraction * total)
    if not 0 < n < total:
        raise ValueError(f"{what} of {total} training images holds out {n}; choose a fraction that leaves "
                         f"images on both sides")
    val_idx = stratified_subset(source.train.labels, n, seed)
    keep = torch.ones(total, dtype=torch.bool)
    keep[val_idx] = False
    log.info(f"{what}: {n} of {total} training images held out as the val split (class-stratified, seed {seed})")
    return replace(source, train=source.train.subset(keep.nonzero().flatten()), val=source.train.subset(val_idx))


def _digits() -> Source:
    """scikit-learn's 8x8 digits (1,797 images, bundled, no download), as a 10-class toy dataset.

    Pixel values 0..16 become round(v * 255 / 16) in uint8, the grey image is replicated to 3
    channels and upsampled to 16x16 with nearest-neighbour interpolation (each pixel becomes a 2x2
    block). Split: stratified 80/20 (``train_test_split``, random_state=0). mean/std: of the train split.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).astype(np.uint8))[:, None]
    x = torch.nn.functional.interpolate(x, size=(DIGITS_SIZE, DIGITS_SIZE), mode="nearest").expand(-1, 3, -1, -1)
    y = torch.from_numpy(d.target.astype(np.int64))
    tr, va = train_test_split(np.arange(len(y)), test_size=0.2, stratify=d.target, random_state=DIGITS_SPLIT_SEED)
    tr, va = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
    train = Split(labels=y[tr], images=x[tr].contiguous())
    val = Split(labels=y[va], images=x[va].contiguous())
    pixels = train.images[:, 0].double() / 255
    mean, std = float(pixels.mean()), float(pixels.std())
    return Source("digits", train, val, 10, DIGITS_SIZE, (mean,) * 3, (std,) * 3,
                  tuple(str(i) for i in range(10)), "sklearn.datasets.load_digits")


_TREE_OPTIONS = ("image_size", "drop_unknown_val_classes", "val_fraction")
_LOADERS: dict[str, tuple[Callable[..., Source], tuple[str, ...]]] = {
    # name -> (loader, the dataset-specific options it accepts; val_fraction and download are
    # handled by load_source)
    "cifar10": (lambda roots, **o: _cifar10(roots, **o), ("cache_dir", "download")),
    "cifar100": (lambda roots, **o: _cifar100(roots), ("download",)),
    "stl10": (lambda roots, **o: _stl10(roots, **o), ("unlabeled", "download")),
    "folder": (lambda roots, **o: _image_tree("folder", roots, **o), _TREE_OPTIONS),
    "imagenet": (lambda roots, **o: _image_tree("imagenet", roots, **o), _TREE_OPTIONS),
    "imagenet100": (lambda roots, **o: _image_tree("imagenet100", roots, **o), _TREE_OPTIONS),
    "digits": (lambda roots, **o: _digits(), ()),
}
KNOWN_DATASETS = tuple(_LOADERS)
SUBSET_OPTIONS = ("train_subset", "val_subset", "seed")


def load_source(name: str, root: str | os.PathLike | None = None, **opts: Any) -> Source:
    """Load dataset ``name`` (see the module docstring); nothing is downloaded unless ``download``.

    Options: ``train_subset`` / ``val_subset`` (int: a class-stratified subset, see
    ``stratified_subset``), ``seed`` (for the subsets and ``val_fraction``, default 0), and per
    dataset ``cache_dir`` (cifar10), ``unlabeled`` (stl10), ``download`` (cifar10, cifar100, stl10:
    fetch the dataset into ``root`` when it is not found there, see ``download``), ``image_size``
    (image trees; default: inferred from the images, at most 224), ``drop_unknown_val_classes``
    (image trees: leave out val classes not in train, which otherwise is an error) and
    ``val_fraction`` (image trees without ``val/``: see ``hold_out_val``; applied before the subsets).
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset '{name}'; known: {', '.join(KNOWN_DATASETS)}")
    loader, own = _LOADERS[name]
    unknown = set(opts) - set(own) - set(SUBSET_OPTIONS)
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {sorted(unknown)}; allowed: {sorted(own + SUBSET_OPTIONS)}")
    if name == "folder" and root is None:
        raise DatasetNotFoundError("folder: no root given; set data.root to a directory holding train/<class>/* "
                                   "and val/<class>/*")
    train_n, val_n, seed = opts.pop("train_subset", None), opts.pop("val_subset", None), opts.pop("seed", 0)
    val_fraction, fetch = opts.pop("val_fraction", None), opts.pop("download", False)
    roots = candidate_roots(root)
    if name in IMAGE_TREE_DATASETS and root is None:  # default roots hold the tree in a folder named after it
        roots = [r / name for r in roots]
    kwargs = {k: v for k, v in opts.items() if v is not None}
    try:
        source = loader(roots, **kwargs)
    except DatasetNotFoundError:
        if not fetch:
            raise
        source = loader([download(name, root)], **kwargs)
    if val_fraction is not None:
        source = hold_out_val(source, float(val_fraction), seed)
    if train_n is not None:
        source = replace(source, train=source.train.subset(stratified_subset(source.train.labels, int(train_n), seed)))
    if val_n is not None:
        source = replace(source, val=source.val.subset(stratified_subset(source.val.labels, int(val_n), seed)))
    return source
