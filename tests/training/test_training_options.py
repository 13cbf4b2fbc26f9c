"""Training-step options of issue #3 run end to end on the CPU: bf16 autocast, channels_last,
torch.compile of the backbone, and the per-image pipeline as the alternative to the batched one."""
import json

from ssl_bench.cli import main
from helpers import QUIET


def run(repo, tmp_path, name, *extra):
    args = ["pretrain", "--config", str(repo / "configs/digits/byol.yaml"), "--run.dir", str(tmp_path),
            "--run.name", name, "--trainer.max_epochs", "1", *QUIET, *extra]
    assert main(args) == 0
    return json.loads((tmp_path / name / "summary.json").read_text())


def test_bf16_and_channels_last(repo, tmp_path):
    summary = run(repo, tmp_path, "bf16", "--trainer.precision", "bf16-mixed", "--model.channels_last", "true")
    assert summary["train_loss"] is not None and summary["val_knn_top1"] > 50


def test_compiled_backbone(repo, tmp_path):
    from torch._dynamo.utils import counters

    counters.clear()
    summary = run(repo, tmp_path, "compiled", "--model.compile_backbone", "true")
    assert counters["stats"]["unique_graphs"] > 0, "the backbone was not compiled"
    assert summary["train_loss"] is not None and summary["val_knn_top1"] > 50


def test_per_image_pipeline(repo, tmp_path):
    summary = run(repo, tmp_path, "per_image", "--data.pipeline", "per_image", "--data.num_workers", "0")
    assert summary["train_loss"] is not None and summary["val_knn_top1"] > 50
