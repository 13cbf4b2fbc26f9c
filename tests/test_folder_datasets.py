"""Your own image folder as a first-class dataset (#27): named after its folder (or ``data.name``)
in run names, sweep cells, summaries and report sections, so two folders in one sweep stay apart; a
tree with only ``train/`` (``data.val_fraction``, or k-NN and the probe off); a flat folder of
unlabelled images; ``data.download`` for what torchvision can fetch, tested with a local stand-in
for the network."""
from __future__ import annotations

import hashlib
import json
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ssl_bench.cli import main
from ssl_bench.data import SSLDataModule
from ssl_bench.data.sources import DatasetNotFoundError, dataset_name, load_source
from ssl_bench.errors import ConfigError


def _image(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade % 256, 60, 200 - shade % 200)).save(path)


def _train_only(root: Path, counts: dict[str, int]) -> Path:
    """``train/<class>/`` and no ``val/``: ``counts`` images per class."""
    for i, (c, n) in enumerate(counts.items()):
        for j in range(n):
            _image(root / "train" / c / f"{j}.png", 70 * i + 9 * j)
    return root


def _flat(root: Path, n: int = 8) -> Path:
    for j in range(n):
        _image(root / f"img{j}.png", 25 * j)
    return root


def _pretrain_args(repo: Path, root: Path, runs: Path, *extra: str) -> list[str]:
    return ["pretrain", "--config", str(repo / "configs/digits/simclr.yaml"), "--data.dataset", "folder",
            "--data.root", str(root), "--data.pipeline", "files_batched", "--data.image_size", "8",
            "--data.batch_size", "4", "--run.dir", str(runs), "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.log_every_n_steps", "1", *extra]


# ----------------------------------------------------------------------------- names

def test_dataset_name_defaults_and_overrides():
    assert dataset_name({"dataset": "folder", "root": "/data/flowers/"}) == "flowers"
    assert dataset_name({"dataset": "folder", "root": "/data/birds", "name": "birds-v2"}) == "birds-v2"
    assert dataset_name({"dataset": "cifar10", "root": "/data/whatever"}) == "cifar10"  # registered: as before
    assert dataset_name({"dataset": "imagenet100", "root": "/data/in100"}) == "imagenet100"
    assert dataset_name({"dataset": "digits", "name": "toy"}) == "toy"
    for bad in ("../up", "a/b", "", ".hidden", "two words"):
        with pytest.raises(ConfigError, match="data.name") as err:
            dataset_name({"dataset": "folder", "root": "/x", "name": bad})
        assert "\n" not in str(err.value)


def test_run_name_and_random_init_dir_use_the_dataset_name(tmp_path):
    from ssl_bench.eval.target import random_init_run_dir
    from ssl_bench.pretrain import run_name

    cfg = {"model": {"name": "simclr"}, "data": {"dataset": "folder", "root": str(tmp_path / "flowers")},
           "run": {"name": None, "seed": 3, "dir": str(tmp_path / "runs")}}
    assert run_name(cfg) == "simclr-flowers-seed3"
    assert random_init_run_dir(cfg) == tmp_path / "runs/random_init-flowers-seed3"
    cfg["data"]["name"] = "garden"
    assert run_name(cfg) == "simclr-garden-seed3"
    assert random_init_run_dir(cfg) == tmp_path / "runs/random_init-garden-seed3"
    digits = {**cfg, "data": {"dataset": "digits"}}
    assert run_name(digits) == "simclr-digits-seed3"  # registered datasets: unchanged


SPEC = """name: own
dir: {dir}
methods: [simclr]
datasets: [flowers, birds, folder, digits]
seeds: [0]
config: configs/{{dataset}}/{{method}}.yaml
overrides: {{trainer.max_epochs: 1}}
dataset_overrides:
  flowers: {{data.dataset: folder, data.root: {flowers}}}
  birds: {{data.dataset: folder, data.root: {birds}}}
  folder: {{data.root: {cats}}}
"""


def test_two_folders_in_one_sweep_get_their_own_cells_and_report_sections(tmp_path, repo, monkeypatch):
    from ssl_bench.sweep.report import collect_rows, markdown
    from ssl_bench.sweep.spec import load_spec

    monkeypatch.chdir(repo)
    trees = {n: _train_only(tmp_path / "data" / n / "images" if n != "my-cats" else tmp_path / "data" / n,
                            {"a": 2, "b": 2}) for n in ("flowers", "birds", "my-cats")}
    path = tmp_path / "own.yaml"
    path.write_text(SPEC.format(dir=tmp_path / "sweep", flowers=trees["flowers"], birds=trees["birds"],
                                cats=trees["my-cats"]))
    spec = load_spec(path)
    names = sorted(c.name for c in spec.cells)
    # both folders' roots end in "images": the datasets entries name them; a `folder` entry is
    # named after its root; digits is as before
    assert names == sorted(f"{m}-{d}-s0" for m in ("simclr", "random_init")
                           for d in ("flowers", "birds", "my-cats", "digits"))
    by_name = {c.name: c for c in spec.cells}
    assert by_name["simclr-flowers-s0"].config["data"]["name"] == "flowers"
    assert by_name["simclr-flowers-s0"].config["data"]["dataset"] == "folder"
    assert by_name["simclr-flowers-s0"].config["data"]["root"] == str(trees["flowers"])
    assert by_name["simclr-birds-s0"].config["data"]["root"] == str(trees["birds"])
    assert "name" not in by_name["simclr-my-cats-s0"].config["data"]
    assert by_name["simclr-flowers-s0"].config["model"]["optimizer"] == "lars"  # configs/folder/simclr.yaml
    assert "name" not in by_name["simclr-digits-s0"].config["data"]

    # the report keeps them apart: one section per dataset name, the method parsed around it
    sweep = tmp_path / "sweep"
    for i, cell in enumerate(spec.cells):
        d = sweep / cell.name
        d.mkdir(parents=True)
        (d / "config.yaml").write_text(yaml.safe_dump(cell.config))
        (d / "summary.json").write_text(json.dumps({"val_knn_top1": 10.0 + i, "epochs": 1, "global_step": 1,
                                                    "fit_seconds": 1.0}))
    rows = {r["cell"]: r for r in collect_rows(sweep)}
    assert {r["dataset"] for r in rows.values()} == {"flowers", "birds", "my-cats", "digits"}
    assert rows["simclr-my-cats-s0"]["method"] == "simclr" and rows["random_init-my-cats-s0"]["method"] == "random_init"
    assert rows["simclr-digits-s0"]["dataset"] == "digits" and rows["simclr-digits-s0"]["method"] == "simclr"
    md = markdown(list(rows.values()), "own")
    assert all(f"## {d}\n" in md for d in ("flowers", "birds", "my-cats", "digits")) and "## folder" not in md


def test_sweep_dataset_that_is_not_registered_and_not_overridden_is_one_line(tmp_path, repo, monkeypatch):
    from ssl_bench.sweep.spec import load_spec

    monkeypatch.chdir(repo)
    path = tmp_path / "s.yaml"
    path.write_text("methods: [simclr]\ndatasets: [flowers]\n")
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    msg = str(err.value)
    assert "\n" not in msg and "'flowers' is not a registered dataset" in msg
    assert "dataset_overrides: {flowers: {data.dataset: folder, data.root: DIR}}" in msg


def test_sweep_dry_run_lists_the_folder_cells(tmp_path, repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    a, b = _flat(tmp_path / "a" / "photos"), _flat(tmp_path / "b" / "photos")
    path = tmp_path / "own.yaml"
    path.write_text(f"methods: [simclr]\ndatasets: [alps, coast]\nseeds: [0]\nbaseline: false\n"
                    f"dir: {tmp_path / 'sweep'}\ndataset_overrides:\n"
                    f"  alps: {{data.dataset: folder, data.root: {a}}}\n"
                    f"  coast: {{data.dataset: folder, data.root: {b}, data.name: sea}}\n")
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "simclr-alps-s0" in out and "simclr-sea-s0" in out and "simclr-photos-s0" not in out


# ----------------------------------------------------------------------------- train-only and unlabelled trees

def test_val_fraction_is_a_stratified_seeded_disjoint_split(tmp_path):
    root = _train_only(tmp_path / "tree", {"a": 10, "b": 20, "c": 30})
    whole = load_source("folder", str(root), image_size=8)
    assert len(whole.train) == 60 and len(whole.val) == 0 and whole.num_classes == 3
    src = load_source("folder", str(root), image_size=8, val_fraction=0.2, seed=1)
    assert len(src.val) == 12 and len(src.train) == 48
    assert np.bincount(src.val.labels.numpy()).tolist() == [2, 4, 6]  # stratified
    assert np.bincount(src.train.labels.numpy()).tolist() == [8, 16, 24]
    assert not set(src.val.files) & set(src.train.files)  # disjoint
    assert sorted(src.val.files + src.train.files) == sorted(whole.train.files)
    for split in (src.train, src.val):  # labels still follow the files
        assert all(Path(f).parent.name == src.classes[y] for f, y in zip(split.files, split.labels.tolist()))
    again = load_source("folder", str(root), image_size=8, val_fraction=0.2, seed=1)
    assert again.val.files == src.val.files  # seeded by data.seed
    other = load_source("folder", str(root), image_size=8, val_fraction=0.2, seed=2)
    assert other.val.files != src.val.files
    # applied before the subsets: val_subset draws from the held-out val
    sub = load_source("folder", str(root), image_size=8, val_fraction=0.2, seed=1, val_subset=6)
    assert set(sub.val.files) <= set(src.val.files) and len(sub.val) == 6


def test_val_fraction_refusals_are_one_line(tmp_path):
    with_val = _train_only(tmp_path / "t", {"a": 3, "b": 3})
    for j in range(2):
        _image(with_val / "val/a" / f"{j}.png", j)
        _image(with_val / "val/b" / f"{j}.png", j)
    flat = _flat(tmp_path / "flat")
    for root, words in ((with_val, "has a val/ folder"), (flat, "unlabelled")):
        with pytest.raises(ValueError) as err:
            load_source("folder", str(root), image_size=8, val_fraction=0.3)
        assert words in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="image tree"):
        SSLDataModule("digits", val_fraction=0.1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        SSLDataModule("folder", root=str(with_val), val_fraction=1.5)


def test_flat_folders_are_unlabelled(tmp_path):
    src = load_source("folder", str(_flat(tmp_path / "pics", 5)), image_size=8)
    assert len(src.train) == 5 and src.train.labels.tolist() == [-1] * 5
    assert src.num_classes == 0 and src.classes == () and len(src.val) == 0
    in_train = load_source("folder", str(_flat(tmp_path / "t" / "train", 4).parent), image_size=8)
    assert len(in_train.train) == 4 and in_train.num_classes == 0
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError) as err:
        load_source("folder", str(empty), image_size=8)
    assert "no class folder and no image" in str(err.value) and "\n" not in str(err.value)


def test_data_module_without_val_has_no_validation_and_says_what_to_set(tmp_path):
    root = _train_only(tmp_path / "tree", {"a": 4, "b": 4})
    dm = SSLDataModule("folder", root=str(root), image_size=8, batch_size=4, num_workers=0)
    assert not dm.has_val and dm.val_dataloader() == []
    dm.check_evaluations(knn=False, linear_probe=False)
    with pytest.raises(ConfigError) as err:
        dm.check_evaluations(knn=True, linear_probe=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("tree: ") and "no val/" in msg
    assert "data.val_fraction" in msg and "--model.knn false --model.linear_probe false" in msg
    held = SSLDataModule("folder", root=str(root), image_size=8, batch_size=4, num_workers=0, val_fraction=0.25)
    held.check_evaluations(knn=True, linear_probe=True)
    assert held.has_val and len(held.val_dataloader()) == 2 and len(held.eval_splits()[1]) == 2
    flat = SSLDataModule("folder", root=str(_flat(tmp_path / "pics")), image_size=8, num_workers=0)
    with pytest.raises(ConfigError, match="unlabelled"):
        flat.check_evaluations(knn=False, linear_probe=True)


def test_flat_folder_pretrains_with_label_free_monitors(repo, tmp_path, capsys):
    """A folder of unlabelled images: refused in one line with k-NN on (before the run directory),
    trains with both off, and its run is named after the folder."""
    root, runs = _flat(tmp_path / "holiday", 8), tmp_path / "runs"
    assert main(_pretrain_args(repo, root, runs)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--model.knn false --model.linear_probe false" in err and not (runs / "simclr-holiday-seed0").exists()
    assert main(_pretrain_args(repo, root, runs, "--model.knn", "false", "--model.linear_probe", "false")) == 0
    summary = json.loads((runs / "simclr-holiday-seed0/summary.json").read_text())
    assert summary["dataset_name"] == "holiday" and summary["global_step"] == 2
    assert summary["val_knn_top1"] is None and summary["rankme"] is not None  # a label-free monitor ran


def test_train_only_tree_pretrains_with_val_fraction_and_without_evaluations(repo, tmp_path, capsys):
    root, runs = _train_only(tmp_path / "garden", {"a": 6, "b": 6}), tmp_path / "runs"
    assert main(_pretrain_args(repo, root, runs, "--data.val_fraction", "0.34", "--data.name", "plants")) == 0
    summary = json.loads((runs / "simclr-plants-seed0/summary.json").read_text())
    assert summary["dataset_name"] == "plants" and summary["val_knn_top1"] is not None
    assert summary["val_linear_top1"] is not None and summary["global_step"] == 2  # 8 of 12 images train
    assert main(_pretrain_args(repo, root, runs, "--model.knn", "false", "--model.linear_probe", "false")) == 0
    summary = json.loads((runs / "simclr-garden-seed0/summary.json").read_text())
    assert summary["global_step"] == 3 and summary["val_knn_top1"] is None
    capsys.readouterr()
    assert main(_pretrain_args(repo, root, runs, "--run.name", "knn_on")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has no val/ folder" in err and "data.val_fraction" in err
    assert not (runs / "knn_on/summary.json").exists()


# ----------------------------------------------------------------------------- data.download

def _fake_cifar10(n: int = 2) -> dict[str, bytes]:
    """CIFAR-10 in torchvision's format (pickled batches and meta), ``n`` images per batch."""
    rng = np.random.default_rng(0)
    files = {}
    for i, name in enumerate(["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                              "test_batch"]):
        files[name] = pickle.dumps({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                    "labels": [(i + j) % 10 for j in range(n)]})
    files["batches.meta"] = pickle.dumps({"label_names": [f"class{k}" for k in range(10)]})
    return files


@pytest.fixture
def cifar_stand_in(monkeypatch):
    """torchvision's CIFAR10 with the network replaced: the archive "download" writes the fake
    extracted files into root, and the checksums are those of the fake files."""
    import torchvision.datasets.cifar as tv_cifar

    files = _fake_cifar10()
    md5 = {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
    cls = tv_cifar.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5["batches.meta"]})
    calls = []

    def fetch(url, download_root, filename=None, md5=None, **_):
        calls.append((url, download_root))
        folder = Path(download_root) / cls.base_folder
        folder.mkdir(parents=True, exist_ok=True)
        for name, blob in files.items():
            (folder / name).write_bytes(blob)

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fetch)
    return calls


def test_download_fetches_a_missing_dataset_into_the_root(tmp_path, cifar_stand_in):
    root = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError) as err:  # without data.download: where and how, one line
        load_source("cifar10", str(root))
    msg = str(err.value)
    assert "\n" not in msg and "data.download: true" in msg and "cifar-10-batches-py/" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg and cifar_stand_in == []
    src = load_source("cifar10", str(root), download=True)
    assert cifar_stand_in == [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", str(root))]
    assert (root / "cifar-10-batches-py/data_batch_1").is_file()
    assert len(src.train) == 10 and len(src.val) == 2 and src.classes[0] == "class0"
    assert src.train.images.shape == (10, 3, 32, 32) and src.origin == str(root / "cifar-10-batches-py")
    load_source("cifar10", str(root), download=True)  # there now: not fetched again
    assert len(cifar_stand_in) == 1
    dm = SSLDataModule("cifar10", root=str(tmp_path / "dm"), download=True, batch_size=2, num_workers=0)
    dm.prepare_data()
    assert dm.num_classes == 10 and len(cifar_stand_in) == 2


def test_download_offline_is_one_line_naming_the_root(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.stl10 as tv_stl10

    def offline(*_, **__):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    monkeypatch.setattr(tv_stl10, "download_and_extract_archive", offline)
    for name, folder in (("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                         ("stl10", "stl10_binary")):
        root = tmp_path / name
        with pytest.raises(DatasetNotFoundError) as err:
            load_source(name, str(root), download=True)
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(f"{name}: downloading http") and f"into {root} failed" in msg
        assert "Temporary failure in name resolution" in msg and f"{folder}/" in msg
    with pytest.raises(ValueError, match="data.download"):
        SSLDataModule("digits", download=True)
    import ssl_bench.data.sources as sources

    monkeypatch.delenv("SSL_BENCH_DATA", raising=False)  # no root and nowhere to put it: one line
    monkeypatch.setattr(sources, "candidate_roots", lambda root: [tmp_path / "nowhere"])
    with pytest.raises(DatasetNotFoundError, match="set data.root"):
        load_source("cifar100", download=True)
