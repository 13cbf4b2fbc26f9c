"""Frozen features of the evaluation splits, extracted once per checkpoint and cached on disk.

k-NN over a grid of k and T, a linear probe, and few-label variants all read the same features;
extracting them is the only forward pass. The cache file is ``<run dir>/features/<key>.pt`` where
the key hashes what determines the features (the checkpoint file's path, size and modification
time, or the random-init model config and seed; and the data settings that pick the images). It
holds plain tensors and is loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

# data keys that change only training, not which images are evaluated or how they are resized
TRAINING_ONLY_DATA_KEYS = ("batch_size", "eval_batch_size", "num_workers", "augment", "in_memory_device",
                           "use_unlabeled")

#: forward passes over an evaluation split in this process (tests read it: a cache hit adds none)
EXTRACTIONS = 0


@dataclass
class FeatureSet:
    """Backbone features and labels of the evaluation train split (bank) and the val split."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor

    def as_dict(self) -> dict[str, Tensor]:
        return {"train_x": self.train_x, "train_y": self.train_y, "val_x": self.val_x, "val_y": self.val_y}


@torch.no_grad()
def extract_split(model: torch.nn.Module, dm: Any, loader_index: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Backbone features and labels of one evaluation loader (0: val split, 1: train split)."""
    global EXTRACTIONS
    EXTRACTIONS += 1
    model.eval().to(device)
    feats, labels = [], []
    for batch in dm.val_dataloader()[loader_index]:
        images, y = dm.on_after_batch_transfer([t.to(device) for t in batch], loader_index)
        feats.append(model(images).float().cpu())
        labels.append(y.cpu())
    return torch.cat(feats), torch.cat(labels)


def extract(model: torch.nn.Module, dm: Any, device: torch.device | None = None) -> FeatureSet:
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    val_x, val_y = extract_split(model, dm, 0, device)
    train_x, train_y = extract_split(model, dm, 1, device)
    return FeatureSet(train_x, train_y, val_x, val_y)


def eval_data_settings(data_cfg: dict[str, Any]) -> dict[str, Any]:
    """The data settings that determine the evaluated images (recorded with every result)."""
    return {k: v for k, v in sorted(data_cfg.items()) if k not in TRAINING_ONLY_DATA_KEYS}


def checkpoint_identity(ckpt: str | Path) -> dict[str, Any]:
    st = Path(ckpt).resolve().stat()
    return {"checkpoint": str(Path(ckpt).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cache_key(source: dict[str, Any], data_cfg: dict[str, Any]) -> str:
    blob = json.dumps({"source": source, "data": eval_data_settings(data_cfg)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_features(cache_dir: str | Path, source: dict[str, Any], data_cfg: dict[str, Any],
                    compute: Callable[[], FeatureSet]) -> tuple[FeatureSet, bool]:
    """The features for ``source`` x ``data_cfg`` from the cache, or ``compute()`` them and store
    them (atomically: a killed process never leaves a half-written cache file). Returns
    ``(features, was_cached)``."""
    path = Path(cache_dir) / f"{cache_key(source, data_cfg)}.pt"
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return FeatureSet(**blob["features"]), True
    feats = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"features": feats.as_dict(), "source": json.dumps(source, default=str),
                "data": json.dumps(eval_data_settings(data_cfg), default=str)}, tmp)
    os.replace(tmp, path)
    return feats, False
