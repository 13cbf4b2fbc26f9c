"""CIFAR-10 from the JPEG archive ``cifar10-jpeg.tar.gz``, decoded once and cached as uint8 arrays.

The archive (see ``../shared/data/README.md``) holds ``train/<class>/NNNN.jpg`` (50,000 images) and
``test/<class>/NNNN.jpg`` (10,000); class folders sort alphabetically into the official CIFAR-10
label order (Krizhevsky, 2009: airplane=0 ... truck=9). The tar is streamed (no extraction to disk)
and each JPEG is decoded with ``torchvision.io.decode_image`` (libjpeg-turbo; pixel-identical to
PIL here and about three times faster). The decoded arrays are written once to an uncompressed
``.npz`` under the cache directory, keyed by the archive's size and mtime, so later loads take well
under a second. The data root is never written to.
"""
from __future__ import annotations

import os
import tarfile
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image

ARCHIVE_NAME = "cifar10-jpeg.tar.gz"
CACHE_VERSION = 1  # bump when the decoded layout changes, so stale caches are ignored
SPLITS = {"train": "train", "test": "val"}  # archive folder -> split name used by ssl-bench


def default_cache_dir() -> Path:
    """``$SSL_BENCH_CACHE``, else ``~/.cache/ssl_bench``."""
    return Path(os.environ.get("SSL_BENCH_CACHE", "~/.cache/ssl_bench")).expanduser()


def cache_path(archive: Path, cache_dir: Path | None = None) -> Path:
    """Cache file for ``archive``: its name, size and mtime (ns) make the key."""
    st = archive.stat()
    key = f"{archive.name.split('.')[0]}-v{CACHE_VERSION}-{st.st_size}-{st.st_mtime_ns}.npz"
    return (cache_dir or default_cache_dir()) / key


def decode_archive(archive: Path) -> dict[str, np.ndarray]:
    """Stream-decode the archive into ``{train_x, train_y, val_x, val_y, classes}``.

    Images come out as uint8 (N, 3, H, W) in (class, file name) order, labels as int64.
    """
    blobs: dict[str, list[tuple[str, str, torch.Tensor]]] = {s: [] for s in SPLITS}
    with tarfile.open(archive, mode="r|gz") as tf:
        for member in tf:
            if not member.isfile():
                continue
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if len(parts) != 3 or parts[0] not in SPLITS:
                continue
            data = tf.extractfile(member).read()  # type: ignore[union-attr]
            blobs[parts[0]].append((parts[1], parts[2], torch.frombuffer(bytearray(data), dtype=torch.uint8)))
    classes = sorted({c for c, _, _ in blobs["train"]})
    if not classes or sorted({c for c, _, _ in blobs["test"]}) != classes:
        raise ValueError(f"{archive}: expected train/<class>/*.jpg and test/<class>/*.jpg with the same classes")
    index = {c: i for i, c in enumerate(classes)}
    out: dict[str, np.ndarray] = {"classes": np.array(classes)}
    for folder, split in SPLITS.items():
        items = sorted(blobs[folder], key=lambda t: (index[t[0]], t[1]))
        images = torch.stack([_decode(b, f"{archive}:{folder}/{c}/{n}") for c, n, b in items])
        out[f"{split}_x"] = images.numpy()
        out[f"{split}_y"] = np.array([index[c] for c, _, _ in items], dtype=np.int64)
    return out


def _decode(data: torch.Tensor, name: str) -> torch.Tensor:
    try:
        return decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError as err:
        raise ValueError(f"corrupt image {name}: {err}") from err


def load_archive(archive: Path, cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Decoded arrays of ``archive``, from the cache when present, else decoded and cached."""
    path = cache_path(archive, cache_dir)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            pass  # a truncated or foreign file: decode again and overwrite it
    arrays = decode_archive(archive)
    _write_atomically(path, arrays)
    return arrays


def _write_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write to a temporary file beside ``path`` then rename, so concurrent readers never see half a file."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as err:  # a read-only or full cache dir only costs the next load another decode
        warnings.warn(f"could not write the decoded-image cache {path}: {err}", stacklevel=3)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
