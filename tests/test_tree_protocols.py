"""`ssl-bench eval --protocol finetune` and `ssl-bench scan` on an image tree (``data.dataset: folder``).

The tree: the first 20 train and 10 val images of every class of the project's ``digits`` dataset
(16x16, grey replicated to RGB), written losslessly as PNG inside a 1-pixel black border (18x18) and
read at ``data.image_size 16``. The tree's evaluation view (shorter side resized to
floor(16 * 8 / 7) = 18, a no-op, then the 16x16 centre crop) removes the border, so the images that
finetune and SCAN hold are exactly digits' pixels (checked). Their results are still not compared
with the ``digits`` dataset's: an image tree is normalised with ImageNet's mean/std, digits with its
own grey mean/std, so the network inputs, and every trajectory, differ. Checked instead:

- both commands run end to end on the tree from the command line, write their result files, and
  give finite metrics;
- the held images are digits' pixels, and their features are the k-NN / linear protocol's features
  of the same files (float tolerance): every protocol sees the same images;
- streaming (forced with ``SSL_BENCH_TREE_MEMORY_MB=0``, decoding in 2 DataLoader workers) gives
  exactly the held result (finetune top-1/top-5; SCAN's metrics, losses and neighbours), and the
  memory rule holds the train split first and streams what no longer fits;
- fine-tuning learns on the tree (random init, well above the 10% of chance) and repeats exactly
  with the same seed.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_bench.cli import main
from ssl_bench.data import tree_images
from ssl_bench.data.sources import load_source
from ssl_bench.data.tree_images import StreamedImages, embed_images, hold_or_stream
from ssl_bench.eval import EvalTarget
from ssl_bench.eval.finetune import finetune_scores
from ssl_bench.eval.features import extract

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs/digits/simclr.yaml"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SCAN_FAST = ["--scan_epochs", "1", "--self_label_epochs", "1", "--num_heads", "2", "--kmeans_init", "1",
             "--batch_size", "64", "--num_neighbors", "5"]
PER_CLASS = {"train": 20, "val": 10}


def tree_args(root: Path) -> list[str]:
    return ["--data.dataset", "folder", "--data.root", str(root), "--data.pipeline", "files_batched",
            "--data.image_size", "16"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """The digits tree and, per split, the digits images it holds (in the tree's file order)."""
    root = tmp_path_factory.mktemp("digits-tree")
    digits = load_source("digits")
    held = {}
    for name, split in (("train", digits.train), ("val", digits.val)):
        chosen = torch.cat([torch.nonzero(split.labels == c).flatten()[:PER_CLASS[name]] for c in range(10)])
        for j, i in enumerate(chosen.tolist()):
            folder = root / name / f"digit{split.labels[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            framed = np.zeros((18, 18, 3), dtype=np.uint8)
            framed[1:17, 1:17] = split.images[i].permute(1, 2, 0).numpy()
            Image.fromarray(framed).save(folder / f"{j:03d}.png")  # zero-padded: file order = chosen order
        held[name] = split.images[chosen]
    return root, held


@pytest.fixture(scope="module")
def tree_ckpt(tree, tmp_path_factory) -> Path:
    """A one-epoch SimCLR checkpoint pretrained on the tree (its config.yaml names the tree)."""
    run_dir = tmp_path_factory.mktemp("tree-runs")
    assert main(["pretrain", "--config", str(CONFIG), *tree_args(tree[0]), "--data.batch_size", "64",
                 "--run.dir", str(run_dir), "--run.name", "r", "--trainer.max_epochs", "1", *QUIET]) == 0
    return run_dir / "r/checkpoints/last.ckpt"


def test_finetune_and_scan_run_on_an_image_tree_from_the_command_line(tree_ckpt, capsys):
    assert main(["eval", "--ckpt", str(tree_ckpt), "--protocol", "finetune", "--epochs", "2"]) == 0
    assert "finetune top-1" in capsys.readouterr().out
    (path,) = (tree_ckpt.parent.parent / "evals").glob("finetune-ep2-labels_all-*.json")
    result = json.loads(path.read_text())
    assert result["dataset"] == "folder" and result["train_size"] == 200 and result["val_size"] == 100
    assert math.isfinite(result["finetune_top1"]) and 0 <= result["finetune_top1"] <= result["finetune_top5"] <= 100

    assert main(["scan", "--ckpt", str(tree_ckpt), *SCAN_FAST]) == 0
    summary = json.loads((tree_ckpt.parent.parent / "scan/summary.json").read_text())
    assert summary["images"] == {"train": "memory", "val": "memory"}  # 150 KB + 75 KB decoded
    assert summary["train_size"] == 200 and summary["val_size"] == 100 and summary["num_clusters"] == 10
    for stage in ("kmeans", "scan", "self_label"):
        assert all(math.isfinite(summary[stage][m]) for m in ("acc", "nmi", "ari")), stage
        assert 0 <= summary[stage]["acc"] <= 100
    assert all(math.isfinite(x) for x in summary["scan"]["head_losses"] + summary["scan"]["epoch_losses"])


def test_held_tree_images_are_the_evaluation_protocols_images(tree, tree_ckpt):
    """Held images = digits' pixels (the border is what the evaluation view crops away), and their
    features = the features ``extract`` (k-NN / linear) computes from the same files."""
    target = EvalTarget(tree_ckpt)
    train, val = target.dm.eval_splits()
    assert train.files is not None
    held_train, held_val = hold_or_stream([train, val], target.dm.image_size)
    assert torch.equal(held_train, tree[1]["train"]) and torch.equal(held_val, tree[1]["val"])
    model = target.model()
    features = extract(model, target.dm, torch.device("cpu"))
    for held, expected in ((held_train, features.train_x), (held_val, features.val_x)):
        got = embed_images(model.backbone, held, target.dm.eval_batch_transform)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_memory_rule_holds_the_train_split_first_and_streams_what_does_not_fit(tree, monkeypatch):
    src = load_source("folder", str(tree[0]), image_size=16)
    one = 3 * 16 * 16  # bytes per decoded image
    mib = 2**20
    kinds = lambda limit: [tree_images.how_held(x) for x in hold_or_stream([src.train, src.val], 16, 0, limit)]
    assert kinds(None) == ["memory", "memory"]  # default 2048 MiB
    assert kinds((200 + 99) * one / mib) == ["memory", "streamed"]  # val's 100 no longer fit
    assert kinds(199 * one / mib) == ["streamed", "memory"]  # train does not fit; val does
    assert kinds(0) == ["streamed", "streamed"]
    monkeypatch.setenv("SSL_BENCH_TREE_MEMORY_MB", "0")
    assert kinds(None) == ["streamed", "streamed"]
    monkeypatch.setenv("SSL_BENCH_TREE_MEMORY_MB", "lots")
    with pytest.raises(ValueError, match="SSL_BENCH_TREE_MEMORY_MB=lots: expected a number of MiB"):
        kinds(None)
    monkeypatch.delenv("SSL_BENCH_TREE_MEMORY_MB")
    streamed = StreamedImages(src.val.files, 16)
    batches = [torch.tensor([5, 0, 99]), torch.tensor([7])]
    held = hold_or_stream([src.val], 16)[0]
    assert all(torch.equal(x, held[i]) for x, i in zip(streamed.batches(batches), batches))


def test_streaming_gives_the_held_result(tree_ckpt, tmp_path, monkeypatch):
    """Finetune and SCAN with every image read from the files in 2 workers, batch by batch, against
    the same runs on the held tensors: equal results (exactly, on the CPU)."""
    target = EvalTarget(tree_ckpt, overrides={"data": {"num_workers": 2}})
    idx = torch.arange(0, 200, 2)
    held = finetune_scores(target, epochs=2, seed=3, train_idx=idx)
    before = tree_images.STREAMED_BATCHES
    streamed = finetune_scores(target, epochs=2, seed=3, train_idx=idx, memory_limit_mb=0)
    assert tree_images.STREAMED_BATCHES - before == 2 * 2 + 1  # 2 epochs of 100 / 64 batches, 1 val chunk
    assert streamed == held

    summaries = {}
    for name, limit in (("held", None), ("streamed", "0")):
        if limit is not None:
            monkeypatch.setenv("SSL_BENCH_TREE_MEMORY_MB", limit)
        assert main(["scan", "--ckpt", str(tree_ckpt), *SCAN_FAST, "--data.num_workers", "2",
                     "--out", str(tmp_path / name)]) == 0
        summaries[name] = json.loads((tmp_path / name / "summary.json").read_text())
    held_s, streamed_s = summaries["held"], summaries["streamed"]
    assert held_s["images"] == {"train": "memory", "val": "memory"}
    assert streamed_s["images"] == {"train": "streamed", "val": "streamed"}
    for key in ("neighbor_accuracy", "kmeans", "scan", "self_label"):
        assert streamed_s[key] == held_s[key], key
    neighbours = [torch.load(tmp_path / n / "neighbors.pt", weights_only=True)["indices"] for n in summaries]
    assert torch.equal(*neighbours)


def test_finetune_on_a_tree_learns_and_repeats(tree, tmp_path):
    """From random initialisation (tiny CNN, width 16), 10 epochs on the 200 training images: top-1
    64 / 60 / 63% on seeds 0 / 1 / 2 (measured), chance is 10%; the same seed gives the same result."""
    data = {"dataset": "folder", "root": str(tree[0]), "pipeline": "files_batched", "image_size": 16}
    target = EvalTarget(config=CONFIG, overrides={"data": data, "run": {"dir": str(tmp_path)}}, random_init=True)
    first = finetune_scores(target, epochs=10, seed=0)
    assert first == finetune_scores(target, epochs=10, seed=0)
    assert first[1] >= 40, first
