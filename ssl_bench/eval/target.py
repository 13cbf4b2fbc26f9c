"""What an evaluation runs on: a checkpoint (its run's config, or ``--config``) or the config's model
at random initialisation, the data module of its evaluation splits, the labelled part of the train
split, and the frozen features, extracted once and cached (``features.py``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from .. import run_dir as rd
from ..build import build_datamodule, load_method_checkpoint, untrained_method
from ..config import load_config, plain
from ..data import SSLDataModule
from ..data.label_subset import balanced_label_subset, read_label_indices
from ..data.sources import dataset_name
from ..errors import ConfigError
from ..methods import BaseMethod
from ..run_dir import load_lightning_checkpoint
from .features import FeatureSet, cached_features, checkpoint_identity, eval_data_settings, extract

RANDOM_INIT = "random_init"


# ----------------------------------------------------------------------------- few labels
def label_indices(train_labels: Tensor, fraction: float | None, indices_file: str | None, seed: int) -> Tensor | None:
    """The labelled part of the train split: a class-balanced fraction, a file of indices, or all."""
    if fraction is not None and indices_file is not None:
        raise ConfigError("give either --label-fraction or --label-indices, not both")
    if indices_file is not None:
        return read_label_indices(indices_file, len(train_labels))
    if fraction is None or fraction == 1.0:
        return None
    return balanced_label_subset(train_labels, fraction, seed)


# ----------------------------------------------------------------------------- models
def random_init_model(cfg: dict[str, dict[str, Any]], dm: SSLDataModule) -> BaseMethod:
    """The config's method and backbone, seeded like ``pretrain`` seeds it, before any training: the
    one random-init baseline (``build.untrained_method``, also the learning tests' and the sweep's)."""
    return untrained_method(cfg["model"], dm, int(cfg["run"]["seed"]))


def run_dir_of(ckpt: Path) -> Path:
    ckpt = ckpt.resolve()
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def random_init_run_dir(cfg: dict[str, dict[str, Any]]) -> Path:
    name = cfg["run"].get("name") or f"{RANDOM_INIT}-{dataset_name(cfg['data'])}-seed{cfg['run']['seed']}"
    return Path(cfg["run"]["dir"]) / name


def check_random_init_dir(run_dir: Path, cfg: dict[str, dict[str, Any]]) -> None:
    """One line if ``run_dir`` already holds the baseline of another model or data (its config.yaml):
    its results would sit beside results of a network its config.yaml does not describe."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return
    held = load_config(path)
    for section, differs in (("model", plain(held["model"]) != plain(cfg["model"])),
                              ("data", plain(eval_data_settings(held["data"])) != plain(eval_data_settings(cfg["data"])))):
        if differs:
            raise ConfigError(f"--random-init: {run_dir} holds the baseline of another {section} configuration "
                              f"(see its config.yaml); give this one its own --run.name")


def target_config(ckpt: str | Path | None, config: str | Path | None, overrides: dict[str, dict[str, Any]],
                  random_init: bool) -> tuple[dict[str, dict[str, Any]], Path, Path]:
    """(the config an evaluation uses: ``config`` or the checkpoint run's ``config.yaml``, with the
    overrides; its path; the run directory results go to), with every check that needs no
    checkpoint contents, each one line."""
    if random_init == (ckpt is not None):
        raise ConfigError("give --ckpt CKPT, or --random-init with --config CONFIG")
    if random_init and config is None:
        raise ConfigError("--random-init needs --config CONFIG (the method, backbone and data to use)")
    run_dir = None
    if ckpt is not None:
        if not Path(ckpt).is_file():
            raise ConfigError(f"checkpoint not found: {ckpt}")
        run_dir = run_dir_of(Path(ckpt))
        if config is None and not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"no config.yaml in {run_dir} (expected the run directory of {ckpt}); "
                              "pass --config CONFIG")
    config_path = Path(config) if config is not None else run_dir / "config.yaml"  # type: ignore[operator]
    cfg = load_config(config_path)
    if not random_init and overrides.get("model"):
        given = ", ".join(f"--model.{key}" for key in overrides["model"])
        raise ConfigError(f"{given}: the checkpoint fixes the model (its saved hyperparameters); model "
                          f"options apply to --random-init only")
    for section, values in overrides.items():
        cfg[section].update(values)
    if "dataset" not in cfg["data"]:
        raise ConfigError(f"data.dataset is missing in {config_path}")
    if random_init:
        run_dir = random_init_run_dir(cfg)
        check_random_init_dir(run_dir, cfg)
    return cfg, config_path, run_dir  # type: ignore[return-value]


# ----------------------------------------------------------------------------- one evaluation setup
class EvalTarget:
    """What is evaluated (a checkpoint, or the config's model at random init) and on which data;
    ``features()`` extracts them once (cached under ``<run dir>/features``)."""

    def __init__(self, ckpt: str | Path | None = None, config: str | Path | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None, random_init: bool = False,
                 out: str | Path | None = None) -> None:
        self.random_init = random_init
        self.ckpt: Path | None = Path(ckpt) if ckpt is not None else None
        # read first: a broken checkpoint is named before what its (missing) run directory lacks
        readable = self.ckpt is not None and not random_init and self.ckpt.is_file()
        self._ckpt_blob: dict[str, Any] | None = (
            load_lightning_checkpoint(self.ckpt, "eval checkpoint") if readable else None)  # type: ignore[arg-type]
        self.cfg, self.config_path, self.run_dir = target_config(ckpt, config, overrides or {}, random_init)
        self.dm = build_datamodule(self.cfg["data"], seed=int(self.cfg["run"]["seed"]))
        self._model: BaseMethod | None = None
        self._features: tuple[FeatureSet, bool] | None = None
        self.out_dir = Path(out) if out is not None else None  # where results and features go

    @property
    def results_dir(self) -> Path:
        """``--out`` if given (e.g. for a read-only shared checkpoint), else the run directory."""
        return self.out_dir if self.out_dir is not None else self.run_dir

    @property
    def method(self) -> str:
        return RANDOM_INIT if self.random_init else str(self.cfg["model"].get("name"))

    def model(self) -> BaseMethod:
        if self._model is None:
            if self.random_init:
                self._model = random_init_model(self.cfg, self.dm)
            else:
                self._model = load_method_checkpoint(self.ckpt, "eval checkpoint", self.cfg["model"],  # type: ignore[arg-type]
                                                     f"config {self.config_path}", self._ckpt_blob)
                self._ckpt_blob = None  # the model holds the weights now
        return self._model

    def source(self) -> dict[str, Any]:
        if self.random_init:
            return {"random_init": self.cfg["model"], "seed": self.cfg["run"]["seed"]}
        return checkpoint_identity(self.ckpt)  # type: ignore[arg-type]

    @property
    def seed(self) -> int:
        """``run.seed``: a protocol's training seed (label subsets follow ``data.seed`` instead)."""
        return int(self.cfg["run"].get("seed", 0))

    @property
    def num_classes(self) -> int:
        return int(self.dm.num_classes)

    def features(self) -> tuple[FeatureSet, bool]:
        """(features, whether they came from the cache on disk); read or extracted once per target."""
        if self._features is None:
            if not self.random_init:
                self.model()  # the mismatch check comes before any extraction
            self._features = cached_features(self.results_dir / rd.FEATURES, self.source(), self.cfg["data"],
                                             lambda: extract(self.model(), self.dm))
        return self._features

    def data_record(self) -> dict[str, Any]:
        """Where the evaluated images come from (recorded in every result)."""
        return {**eval_data_settings(self.cfg["data"]), "origin": self.dm.source.origin,
                "train_split": "train", "eval_split": "val"}


