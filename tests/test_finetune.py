"""`ssl-bench eval --protocol finetune`: the backbone and a new linear head trained on the labelled
train images. Checked: the result equals the same fine-tuning recomputed from the public pieces
(random-init model, class-balanced label subset of the evaluation train split, val images); the
head's start and the augmentation stream depend only on the seed, so a checkpoint and its
random-init baseline differ only in the backbone; the backbone is trained (not frozen) on a copy
(the evaluated model is untouched); few labels and index files select the labelled images; an image
tree is fine-tuned too."""
import copy
import json

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.data.recipes import ViewAugment, view_augment
from ssl_bench.eval.finetune import finetune_scores
from ssl_bench.eval.target import EvalTarget, random_init_model
from ssl_bench.data.tree_images import embed_images
from ssl_bench.data.label_subset import balanced_label_subset
from ssl_bench.metrics import knn_accuracy
from ssl_bench.fitting import fit_classifier

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def test_random_init_finetune_equals_the_recomputed_protocol(repo, tmp_path, capsys):
    config = repo / "configs/digits/simclr.yaml"
    assert main(["eval", "--random-init", "--config", str(config), "--protocol", "finetune", "--epochs", "3",
                 "--label-fraction", "0.2", "--run.dir", str(tmp_path), "--run.seed", "2"]) == 0
    assert "finetune top-1" in capsys.readouterr().out
    (path,) = (tmp_path / "random_init-digits-seed2/evals").glob("finetune-ep3-labels0.2-*.json")
    result = json.loads(path.read_text())
    assert result["recipe"]["lr"] == 0.05 and result["model"]["random_init"]["name"] == "simclr"

    target = EvalTarget(config=config, overrides={"run": {"seed": 2}}, random_init=True)
    dm = target.dm
    train, val = dm.eval_splits()
    idx = balanced_label_subset(train.labels, 0.2, seed=0)  # data.seed: label subsets do not follow run.seed
    assert result["labelled_size"] == len(idx) and result["val_size"] == len(val.labels) == 360
    model = random_init_model(target.cfg, dm)  # seeded as pretrain seeds it
    torch.manual_seed(2)
    view = view_augment("strong", dm.image_size, dm.mean, dm.std)
    classifier = fit_classifier(copy.deepcopy(model.backbone), model.feature_dim, train.images[idx],
                                train.labels[idx], view, dm.num_classes, epochs=3, seed=2)
    expected = knn_accuracy(embed_images(classifier, val.images, dm.eval_batch_transform), val.labels, top_k=(1, 5))
    assert result["finetune_top1"] == pytest.approx(expected[1], abs=1e-4)
    assert result["finetune_top5"] == pytest.approx(expected[5], abs=1e-4)


def test_head_start_depends_only_on_the_seed_and_the_backbone_is_trained():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=gen)
    labels = torch.arange(16) % 4
    view = ViewAugment(size=8, crop_scale=(0.5, 1.0))

    def net(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 6))

    heads = []
    for backbone_seed in (10, 11):
        backbone = net(backbone_seed)
        torch.manual_seed(5)  # as finetune_scores seeds it, once the backbone exists
        heads.append(fit_classifier(backbone, 6, images, labels, view, 4, epochs=0, seed=5)[1])
    assert torch.equal(heads[0].weight, heads[1].weight) and torch.equal(heads[0].bias, heads[1].bias)

    start = net(10)
    torch.manual_seed(5)
    tuned = fit_classifier(copy.deepcopy(start), 6, images, labels, view, 4, epochs=2, batch_size=8, seed=5)
    assert not torch.equal(tuned[0][1].weight, start[1].weight)  # fine-tuned, not frozen


def test_finetune_of_a_checkpoint_leaves_the_model_untouched(repo, tmp_path):
    run_dir = tmp_path / "runs"
    assert main(["pretrain", "--config", str(repo / "configs/digits/simclr.yaml"), "--run.dir", str(run_dir),
                 "--run.name", "r", "--trainer.max_epochs", "1", *QUIET]) == 0
    ckpt = run_dir / "r/checkpoints/last.ckpt"
    target = EvalTarget(ckpt)
    before = copy.deepcopy(target.model().backbone.state_dict())
    indices = torch.arange(0, 1437, 7)
    acc = finetune_scores(target, epochs=1, seed=0, train_idx=indices)
    assert 0 <= acc[1] <= acc[5] <= 100
    after = target.model().backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)

    index_file = tmp_path / "idx.json"
    index_file.write_text(json.dumps(indices.tolist()))
    assert main(["eval", "--ckpt", str(ckpt), "--protocol", "finetune", "--epochs", "1",
                 "--label-indices", str(index_file)]) == 0
    (path,) = (run_dir / "r/evals").glob("finetune-ep1-labels_file-*.json")
    result = json.loads(path.read_text())
    assert result["labelled_size"] == len(indices) and result["finetune_top1"] == pytest.approx(acc[1], abs=1e-4)


def test_finetune_on_an_image_tree_runs(repo, tmp_path, capsys):
    """An image-tree dataset is fine-tuned too (its images held in memory, being small; streaming and
    the rest: tests/test_tree_protocols.py)."""
    from PIL import Image

    for split in ("train", "val"):
        for c in (0, 1):
            (tmp_path / "tree" / split / f"c{c}").mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (16, 16), (40 * i, 90 * c, 10)).save(tmp_path / "tree" / split / f"c{c}" / f"{i}.png")
    assert main(["eval", "--random-init", "--config", str(repo / "configs/digits/simclr.yaml"), "--protocol",
                 "finetune", "--epochs", "1", "--data.dataset", "folder", "--data.root", str(tmp_path / "tree"),
                 "--data.pipeline", "files_batched", "--data.image_size", "16", "--run.dir", str(tmp_path / "runs")]) == 0
    assert "finetune top-1" in capsys.readouterr().out
    (path,) = (tmp_path / "runs").glob("*/evals/finetune-ep1-labels_all-*.json")
    result = json.loads(path.read_text())
    assert result["dataset"] == "folder" and result["train_size"] == result["val_size"] == 4
    assert 0 <= result["finetune_top1"] <= result["finetune_top5"] <= 100
