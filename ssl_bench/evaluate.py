"""Offline evaluation of a frozen backbone from a pretraining checkpoint: k-NN or linear.

``ssl-bench eval --ckpt runs/x/checkpoints/last.ckpt --protocol knn|linear`` reads the run's
``config.yaml`` (beside ``checkpoints/``) for the method and data, extracts un-augmented features
of the train split (the k-NN bank / linear training set, ``data.eval_train_subset`` of it if set)
and of the val split, and writes ``eval_<protocol>.json`` into the run directory.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import load_config, resolve_class
from .errors import ConfigError
from .methods import METHODS, BaseMethod
from .metrics import knn_accuracy, weighted_knn_predict
from .pretrain import build_datamodule

PROTOCOLS = ("knn", "linear")


@torch.no_grad()
def extract_features(model: BaseMethod, dm: Any, loader_index: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Backbone features and labels of one evaluation loader (0: val split, 1: train split)."""
    model.eval().to(device)
    feats, labels = [], []
    for batch in dm.val_dataloader()[loader_index]:
        images, y = dm.on_after_batch_transfer([t.to(device) for t in batch], loader_index)
        feats.append(model(images).float())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def train_linear(train_x: Tensor, train_y: Tensor, num_classes: int, epochs: int = 100, batch_size: int = 256,
                 lr: float = 0.1, weight_decay: float = 0.0, seed: int = 0) -> nn.Linear:
    """Linear classifier on frozen, batch-normalised (no affine) features: SGD + Nesterov, cosine lr
    (the "frozen features" protocol of e.g. MoCo v3 / DINO, without augmentation)."""
    gen = torch.Generator().manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    head = nn.Linear(train_x.shape[1], num_classes).to(train_x.device)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(train_x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    x = (train_x - mean) / std
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).to(x.device).split(batch_size):
            loss = F.cross_entropy(head(x[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    head.feature_mean, head.feature_std = mean, std  # type: ignore[assignment]
    return head


def evaluate(ckpt: str | Path, protocol: str, data_overrides: dict[str, Any] | None = None,
             k: int = 20, temperature: float = 0.07, epochs: int = 100) -> dict[str, Any]:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{protocol}'; allowed: {', '.join(PROTOCOLS)}")
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise ConfigError(f"checkpoint not found: {ckpt}")
    run_dir = ckpt.resolve().parent.parent
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"no config.yaml in {run_dir} (expected the run directory of {ckpt})")
    cfg = load_config(run_dir / "config.yaml")
    dm = build_datamodule({**cfg["data"], **(data_overrides or {})})
    cls = resolve_class(str(cfg["model"]["name"]), METHODS, BaseMethod, "method")
    model = cls.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    val_x, val_y = extract_features(model, dm, 0, device)
    train_x, train_y = extract_features(model, dm, 1, device)
    if protocol == "knn":
        scores = weighted_knn_predict(train_x, train_y, val_x, dm.num_classes, k=k, temperature=temperature)
    else:
        with torch.enable_grad():
            head = train_linear(train_x, train_y, dm.num_classes, epochs=epochs)
        with torch.no_grad():
            scores = head((val_x - head.feature_mean) / head.feature_std)
    acc = knn_accuracy(scores, val_y, top_k=(1, 5))
    result = {"protocol": protocol, "checkpoint": str(ckpt), "method": cls.__name__,
              "dataset": cfg["data"]["dataset"], "train_size": len(train_y), "val_size": len(val_y),
              f"{protocol}_top1": acc[1], f"{protocol}_top5": acc[5]}
    (run_dir / f"eval_{protocol}.json").write_text(json.dumps(result, indent=2))
    return result
