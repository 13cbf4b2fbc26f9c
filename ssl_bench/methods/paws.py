"""PAWS (Assran et al., ICCV 2021)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import losses
from ..data.labelled import SupportSampler, labelled_indices
from ..distributed import gather_no_grad, gather_uneven, rank
from ..errors import ConfigError
from .base import BaseMethod
from .heads import mlp
from ..data.train_data import TrainData


class PAWS(BaseMethod):
    """Predicting view Assignments With Support samples (Assran et al. 2021).

    Every step the unlabelled multi-view batch comes with a class-balanced support batch drawn from
    a fixed labelled subset (``label_fraction`` of the train split, or ``label_indices``: a file of
    indices), augmented with the recipe's global views (``support_views``, 2 as the official CIFAR
    config). Support embeddings of every rank are gathered (with gradients). Each view's soft
    nearest-neighbour prediction against the support (Eq. 1, ``temperature`` 0.1, support labels
    smoothed by ``label_smoothing`` 0.1) is trained towards the other global view's sharpened
    prediction (Eq. 2, T = ``sharpen_temperature`` 0.25; small crops towards the mean of the two),
    plus mean-entropy maximisation over the global batch (``me_max``). Paper CIFAR-10: WRN-28-2,
    4,000 labels, 6 small crops, 96.0% top-1 with the soft-NN classifier. The official CIFAR-10
    support batch is 2.5x the unlabelled batch (640 against 256); ``support_per_class`` defaults
    to 4 only so that tiny labelled subsets (digits) work, and should be sized up to that ratio.

    Evaluation (each validation): ``val_snn_top1`` (soft-NN classifier on the projector embeddings
    against the whole labelled subset) and ``val_fewlabel_linear_top1`` (a linear head trained on the
    labelled subset's frozen backbone features). The labelled images are held as a plain attribute
    (not a buffer: they are re-derived from the data and the seed); the support generator's state
    is saved in the checkpoint (one state per rank).
    """

    def __init__(self, proj_hidden_dim: int = 2048, proj_dim: int = 128, proj_layers: int = 3,
                 temperature: float = 0.1, sharpen_temperature: float = 0.25, me_max: bool = True,
                 label_smoothing: float = 0.1, label_fraction: float | None = None,
                 label_indices: str | None = None, label_seed: int = 0, support_per_class: int = 4,
                 support_views: int = 2, **base: Any) -> None:
        super().__init__(**base)
        if not 1 <= support_views <= 2:
            raise ConfigError(f"model.support_views must be 1 or 2 (the recipe's global views), got {support_views}")
        if (label_fraction is None) == (label_indices is None):
            raise ConfigError("PAWS needs exactly one of model.label_fraction (e.g. 0.1) and model.label_indices "
                              "(a file of train-split indices)")
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=proj_layers)
        self.support_generator = torch.Generator().manual_seed(label_seed)
        self._generator_restored = False
        self.labelled_images: Tensor | None = None   # uint8 (L, 3, H, W), set in setup()
        self.labelled_labels: Tensor | None = None
        self.sampler: SupportSampler | None = None
        self._val: list[tuple[Tensor, Tensor, Tensor]] = []

    # ------------------------------------------------------------------ the labelled subset
    def attach_data(self, data: TrainData) -> None:
        """Take the labelled subset from the training split (in-memory datasets)."""
        if self.labelled_images is not None:
            return
        train = data.train
        if not train.in_memory:
            raise ConfigError(f"PAWS holds its labelled subset in memory; {data.dataset} is read from files")
        hp = self.hparams
        idx = labelled_indices(train.labels, hp.label_fraction, hp.label_indices, hp.label_seed)
        self.set_labelled(train.images[idx], train.labels[idx], data.views[: hp.support_views], data.normalise)

    def set_labelled(self, images: Tensor, labels: Tensor, views, normalise) -> None:
        """Install a labelled subset (uint8 images, labels), the support views' augmentations and
        the evaluation normalisation; ranks draw different supports (seed + rank)."""
        from ..data.batched_augment import BatchedViewAugment

        if int(labels.min()) < 0:
            raise ConfigError("the labelled subset contains unlabelled images (label -1)")
        self.labelled_images, self.labelled_labels = images, labels
        if not self._generator_restored:
            self.support_generator.manual_seed(self.hparams.label_seed + rank())
        self.sampler = SupportSampler(labels, self.hparams.support_per_class, self.support_generator)
        object.__setattr__(self, "support_augment", [BatchedViewAugment(v) for v in views])
        object.__setattr__(self, "normalise", normalise)

    @torch.no_grad()
    def support_batch(self, device: torch.device) -> tuple[list[Tensor], Tensor]:
        """One class-balanced support batch: a list of augmented views and their labels."""
        if self.sampler is None:
            raise RuntimeError("PAWS has no labelled subset: train it with an SSLDataModule or call set_labelled()")
        pos = self.sampler()
        images = self.labelled_images[pos].to(device)  # type: ignore[index]
        return [aug(images) for aug in self.support_augment], self.labelled_labels[pos].to(device)  # type: ignore[index]

    # ------------------------------------------------------------------ loss
    def compute_ssl_loss(self, views: list[Tensor]) -> tuple[list[Tensor], dict[str, Any]]:
        """Features of the unlabelled views and of the support views (a batch of their own: support
        and unlabelled batches differ in size, which ``encode_views``' per-shape concatenation
        does not allow), then the loss."""
        support_views, support_labels = self.support_batch(views[0].device)
        feats = self.encode_views(views)
        support_feats = self.encode_views(support_views)
        return feats, self.ssl_loss(feats, support_feats, support_labels)

    def ssl_loss(self, feats: list[Tensor], support_feats: list[Tensor], support_labels: Tensor) -> dict[str, Any]:
        hp = self.hparams
        z = [self.projector(f) for f in feats]
        z_support = self.gather(torch.cat([self.projector(f) for f in support_feats]))
        y = losses.smooth_one_hot(support_labels.repeat(len(support_feats)), hp.num_classes, hp.label_smoothing)
        y_support = gather_no_grad(y)
        probs = [losses.snn_predict(zi, z_support, y_support, hp.temperature) for zi in z]
        mean_sharp = None
        if hp.me_max:
            local = torch.cat([losses.sharpen(p, hp.sharpen_temperature) for p in probs]).mean(0, keepdim=True)
            mean_sharp = self.gather(local).mean(0)  # equal local batches: the global mean
        loss = losses.paws_loss(probs, hp.sharpen_temperature, mean_sharp)
        return {"loss": loss, "z": z[:2]}

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict:
        out = super().validation_step(batch, batch_idx, dataloader_idx)
        if dataloader_idx == 0 and self.labelled_images is not None:
            self._val.append((out["feats"], self.projector(out["feats"]).float(), out["labels"]))
        return out

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        feats, z, labels = (torch.cat(t) for t in zip(*self._val))
        self._val.clear()
        if self.trainer is not None and self.trainer.world_size > 1:
            feats, z, labels = (gather_uneven(t) for t in (feats, z, labels))
        scores = self.few_label_scores(feats, z)
        for name, s in scores.items():
            self.log(name, 100.0 * float((s.argmax(1) == labels).float().mean()), sync_dist=False)

    @torch.no_grad()
    def labelled_features(self) -> tuple[Tensor, Tensor, Tensor]:
        """Backbone features, projector embeddings and labels of the un-augmented labelled subset."""
        feats = torch.cat([self(self.normalise(c.to(self.device))).float()
                           for c in self.labelled_images.split(512)])  # type: ignore[union-attr]
        return feats, self.projector(feats).float(), self.labelled_labels.to(self.device)  # type: ignore[union-attr]

    def few_label_scores(self, val_feats: Tensor, val_z: Tensor) -> dict[str, Tensor]:
        """Class scores of val samples from the soft-NN classifier and from a linear head trained
        on the labelled subset's frozen features."""
        from ..fitting import train_linear

        feats, z, y = self.labelled_features()
        one_hot = F.one_hot(y, self.hparams.num_classes).float()
        snn = losses.snn_predict(val_z, z, one_hot, self.hparams.temperature)
        with torch.inference_mode(False), torch.enable_grad():
            head = train_linear(feats.clone(), y.clone(), self.hparams.num_classes, epochs=100,
                                seed=self.hparams.label_seed)
            with torch.no_grad():
                linear = head((val_feats.clone() - head.feature_mean) / head.feature_std)
        return {"val_snn_top1": snn, "val_fewlabel_linear_top1": linear}

    # ------------------------------------------------------------------ checkpoint state
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        state = self.support_generator.get_state().unsqueeze(0)
        checkpoint["paws_support_rng"] = gather_no_grad(state)  # one row per rank

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        states = checkpoint.get("paws_support_rng")
        if states is not None and rank() < len(states):
            self.support_generator.set_state(states[rank()].clone())
            self._generator_restored = True
