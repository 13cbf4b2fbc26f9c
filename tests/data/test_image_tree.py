"""Image trees (``folder``, ``imagenet``, ``imagenet100``) are listed as the user laid them out:
directory links followed at the class level only (a link loop inside a class folder once relabelled
the whole tree as that class), torchvision's order and extensions, a one-class tree explained in one
line, and ``configs/folder/simclr.yaml`` as a starting config."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from ssl_bench.cli import main
from ssl_bench.data.sources import load_source

CLASSES = ("bag", "cat", "dog")


def _image(path: Path, shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.new("RGB", (8, 8), (shade % 256, 40, 200 - shade % 200)).save(path, format=fmt)
    return path


def _tree(root: Path, classes: tuple[str, ...] = CLASSES, n_train: int = 4, n_val: int = 2) -> Path:
    """``train/<class>/`` and ``val/<class>/`` of 8x8 PNG and JPEG images."""
    for split, n in (("train", n_train), ("val", n_val)):
        for i, c in enumerate(classes):
            for j in range(n):
                _image(root / split / c / f"{j}.{'png' if j % 2 else 'jpg'}", 60 * i + 10 * j)
    return root


def _label_of_folder(files: list[str], labels: list[int], classes: tuple[str, ...], split_dir: Path) -> None:
    """Every file lies in the folder of the class it is labelled with."""
    for f, y in zip(files, labels):
        assert Path(f).relative_to(split_dir).parts[0] == classes[y], (f, y)


def _torchvision(split_dir: Path) -> tuple[list[str], list[int]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    _, class_to_idx = find_classes(split_dir)
    items = make_dataset(str(split_dir), class_to_idx, extensions=IMG_EXTENSIONS)
    return [p for p, _ in items], [c for _, c in items]


def test_link_loop_inside_a_class_folder_is_not_followed_and_reported(tmp_path, caplog):
    root = _tree(tmp_path / "data")
    (root / "train/bag/loop").symlink_to("..", target_is_directory=True)  # train/bag/loop -> train
    real = sorted(str(p) for p in (root / "train").rglob("*") if p.is_file() and "loop" not in p.parts)
    assert len(real) == 12
    # what the loader read before: torchvision follows the link, lists the tree again under bag
    tv_files, tv_labels = _torchvision(root / "train")
    assert len(tv_files) > 12 and tv_labels.count(0) > 4
    with caplog.at_level(logging.INFO, logger="ssl_bench"):
        src = load_source("folder", str(root), image_size=8)
    assert sorted(src.train.files) == real and len(src.train) == 12
    assert src.train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    _label_of_folder(src.train.files, src.train.labels.tolist(), src.classes, root / "train")
    assert src.classes == CLASSES and len(src.val) == 6
    notes = [r.getMessage() for r in caplog.records if "directory link" in r.getMessage()]
    assert notes == ["folder: skipped 1 directory link(s) inside class folders (train/bag/loop); "
                     "links are not followed below the class level"]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING and "directory link" not in r.getMessage()] == []


def test_linked_class_folders_are_followed_and_file_links_read(tmp_path, caplog):
    elsewhere = _tree(tmp_path / "elsewhere", classes=("cat",), n_train=3, n_val=2)
    root = _tree(tmp_path / "data", classes=("bag", "dog"))
    for split in ("train", "val"):  # an ImageNet-100-style subset: class folders linked in
        (root / split / "cat").symlink_to(elsewhere / split / "cat", target_is_directory=True)
    _image(root / "train/dog/nested/deep.png", 7)  # a real sub-folder is read, as torchvision does
    (root / "train/dog/linked.png").symlink_to(root / "train/bag/1.png")  # a file link is read
    with caplog.at_level(logging.INFO, logger="ssl_bench"):
        src = load_source("folder", str(root), image_size=8)
    assert src.classes == CLASSES
    assert src.train.labels.tolist() == [0] * 4 + [1] * 3 + [2] * 6
    assert src.val.labels.tolist() == [0] * 2 + [1] * 2 + [2] * 2
    assert str(root / "train/cat/2.jpg") in src.train.files  # listed under the link, labelled cat
    assert {str(root / "train/dog/linked.png"), str(root / "train/dog/nested/deep.png")} <= set(src.train.files)
    _label_of_folder(src.train.files, src.train.labels.tolist(), src.classes, root / "train")
    _label_of_folder(src.val.files, src.val.labels.tolist(), src.classes, root / "val")
    assert not any("directory link" in r.getMessage() for r in caplog.records)
    # link-free of loops, the list is torchvision's
    assert (src.train.files, src.train.labels.tolist()) == _torchvision(root / "train")


@pytest.mark.parametrize("link, target, what", [("train/all", "..", "an ancestor of"),
                                                ("train/self", ".", "the split folder itself"),
                                                ("val/up", "../..", "an ancestor of")])
def test_class_folder_link_to_its_split_or_an_ancestor_is_refused(tmp_path, link, target, what):
    root = _tree(tmp_path / "data")
    (root / link).symlink_to(target, target_is_directory=True)
    with pytest.raises(ValueError) as err:
        load_source("folder", str(root), image_size=8)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("folder: class folder ") and str(root / link) in msg and what in msg


def test_class_folder_link_loop_is_one_line_from_the_cli(repo, tmp_path, capsys):
    root = _tree(tmp_path / "data")
    (root / "train/all").symlink_to(root, target_is_directory=True)
    assert main(["pretrain", "--config", str(repo / "configs/folder/simclr.yaml"), "--data.root", str(root),
                 "--run.dir", str(tmp_path / "runs"), "--print-config"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("ssl-bench: error: folder: class folder ") and str(root / "train/all") in lines[-1]
    assert sum("error:" in ln for ln in lines) == 1


def test_file_list_equals_torchvisions_on_a_tree_without_links(tmp_path):
    root = tmp_path / "data"
    names = ("b.png", "A.png", "10.jpg", "2.JPEG", "a b.PnG", "notes.txt", "x.gif", "z.webp")
    for split in ("train", "val"):
        for i, c in enumerate(("Zebra", "ant", "b_c", "bee")):
            for j, name in enumerate(names):
                if name.endswith((".txt", ".gif")):
                    (root / split / c).mkdir(parents=True, exist_ok=True)
                    (root / split / c / name).write_bytes(b"not an image of a listed type")
                else:
                    _image(root / split / c / name, 30 * i + j)
            _image(root / split / c / "sub" / "0.png")
            _image(root / split / c / "sub.d" / "inner" / "1.jpg")
            _image(root / split / c / "Sub" / "2.png")
    src = load_source("folder", str(root), image_size=8)
    assert src.classes == ("Zebra", "ant", "b_c", "bee")
    for split, part in ((src.train, "train"), (src.val, "val")):
        files, labels = _torchvision(root / part)
        assert len(files) == 4 * 9  # 6 images of listed types + 3 in sub-folders, per class
        assert split.files == files and split.labels.tolist() == labels


def test_one_class_tree_loads(tmp_path):
    """An unlabelled tree (one folder of images) is a dataset of one class: it loads, and pretraining
    decides whether its evaluations can run (next test)."""
    src = load_source("folder", str(_tree(tmp_path / "data", classes=("photos",))), image_size=8)
    assert src.num_classes == 1 and len(src.train) == 4


def test_folder_config_loads_and_builds_on_a_tiny_tree(repo, tmp_path, capsys):
    from ssl_bench.build import build_datamodule
    from ssl_bench.config import load_config

    path = repo / "configs/folder/simclr.yaml"
    cfg = load_config(path)
    data = cfg["data"]
    assert data["dataset"] == "folder" and data["pipeline"] == "files_batched"
    assert "image_size" not in data  # inferred from the images, at most 224
    assert data["root"] == "/path/to/your/images" and "placeholder" in path.read_text()
    assert cfg["model"]["reference_batch_size"] == 256 and cfg["model"]["lr_scaling"] == "linear"
    root = _tree(tmp_path / "data")
    dm = build_datamodule({**data, "root": str(root), "num_workers": 0}, seed=0)
    assert dm.hparams.pipeline == "files_batched" and dm.num_classes == 3 and dm.image_size == 8
    assert dm.num_train_samples == 12
    # as a user starts: the CLI with --data.root, which reads the tree to derive the schedule
    assert main(["pretrain", "--config", str(path), "--data.root", str(root), "--data.batch_size", "4",
                 "--run.dir", str(tmp_path / "runs"), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "files_batched" in out and str(root) in out
    # the placeholder itself ends in one line saying to set data.root
    assert main(["pretrain", "--config", str(path), "--run.dir", str(tmp_path / "runs"), "--print-config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ssl-bench: error: folder:") and "/path/to/your/images" in err and "data.root" in err


def test_one_class_tree_with_evaluations_on_is_refused_before_the_run_directory(repo, tmp_path, capsys):
    """k-NN and the probe on one class used to end in torchmetrics' ``num_classes`` error after the
    first epoch, leaving an unfinished run behind; now one line before anything is written, and the
    advice it gives trains."""
    from ssl_bench.cli import main

    root = _tree(tmp_path / "data", classes=("photos",), n_train=8)
    args = ["pretrain", "--config", str(repo / "configs/digits/simclr.yaml"), "--data.dataset", "folder",
            "--data.root", str(root), "--data.pipeline", "files_batched", "--data.image_size", "8",
            "--data.batch_size", "4", "--run.dir", str(tmp_path / "runs"), "--run.name", "one",
            "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "has 1 class" in err and "--model.knn false --model.linear_probe false" in err and "\n" not in err
    assert not (tmp_path / "runs/one").exists()
    assert main([*args, "--model.knn", "false", "--model.linear_probe", "false"]) == 0
