"""`ssl-bench eval`: results named by their settings (never silently replaced), the untrained
baseline from the CLI, few-label evaluation (seeded class-balanced subsets, index files), and one
line when the checkpoint holds another method or backbone than asked."""
import json

import pytest
import pytorch_lightning as pl
import torch

from ssl_bench.cli import main
from ssl_bench.data.label_subset import balanced_label_subset, per_class_count
from ssl_bench.build import build_datamodule, build_method, build_trainer

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def simclr_ckpt(tmp_path_factory):
    from conftest import REPO

    run_dir = tmp_path_factory.mktemp("eval")
    assert main(["pretrain", "--config", str(REPO / "configs/digits/simclr.yaml"), "--run.dir", str(run_dir),
                 "--run.name", "r", "--trainer.max_epochs", "1", *QUIET]) == 0
    return run_dir / "r/checkpoints/last.ckpt"


def _results(run_dir):
    return sorted(p.name for p in (run_dir / "evals").glob("*.json"))


# ----------------------------------------------------------------------------- few-label subsets
def test_label_fraction_takes_exact_counts_per_class_and_is_seeded():
    gen = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([50, 60, 70, 80])])[torch.randperm(260, generator=gen)]
    idx = balanced_label_subset(labels, 0.1, seed=3)
    per_class = per_class_count(260, 4, 0.1)
    assert per_class == round(0.1 * 260 / 4) == 6
    assert torch.bincount(labels[idx], minlength=4).tolist() == [6, 6, 6, 6]
    assert len(idx.unique()) == len(idx) == 24
    assert torch.equal(idx, balanced_label_subset(labels, 0.1, seed=3))
    assert not torch.equal(idx, balanced_label_subset(labels, 0.1, seed=4))
    assert len(balanced_label_subset(labels, 1.0)) == 260
    assert torch.bincount(labels[balanced_label_subset(labels, 0.001)]).tolist() == [1, 1, 1, 1]  # at least one


@pytest.mark.parametrize("fraction, message", [(1.5, "must be in (0, 1]"), (0.0, "must be in (0, 1]"),
                                               (0.9, "class 0 has only 50")])
def test_bad_label_fraction(fraction, message):
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([50, 100])])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("]", r"\]")):
        balanced_label_subset(labels, fraction)


# ----------------------------------------------------------------------------- eval CLI
def test_each_setting_gets_its_own_result_file(simclr_ckpt, tmp_path, capsys):
    run_dir = simclr_ckpt.parent.parent
    assert main(["eval", "--ckpt", str(simclr_ckpt), "--protocol", "knn"]) == 0
    assert main(["eval", "--ckpt", str(simclr_ckpt), "--protocol", "knn", "--k", "5", "--temperature", "0.1"]) == 0
    assert main(["eval", "--ckpt", str(simclr_ckpt), "--protocol", "knn", "--data.val_subset", "100"]) == 0
    names = _results(run_dir)
    assert len(names) == 3 and sum(n.startswith("knn-k20-T0.07-labels_all-") for n in names) == 2
    records = [json.loads((run_dir / "evals" / n).read_text()) for n in names]
    assert {(r["k"], r["temperature"], r["data"].get("val_subset"), r["val_size"]) for r in records} == {
        (20, 0.07, None, 360), (5, 0.1, None, 360), (20, 0.07, 100, 100)}
    assert all(r["data"]["dataset"] == "digits" and r["data"]["eval_split"] == "val" and r["data"]["origin"]
               for r in records)
    # the same settings again: the same file, the same result (nothing else is replaced)
    before = {n: (run_dir / "evals" / n).read_text() for n in names}
    assert main(["eval", "--ckpt", str(simclr_ckpt), "--protocol", "knn", "--k", "5", "--temperature", "0.1"]) == 0
    assert _results(run_dir) == names
    for n in names:
        assert json.loads((run_dir / "evals" / n).read_text())["knn_top1"] == json.loads(before[n])["knn_top1"]
    assert "-> " + str(run_dir / "evals") in capsys.readouterr().out


def test_few_label_linear_and_knn(simclr_ckpt, tmp_path, capsys):
    run_dir = simclr_ckpt.parent.parent
    assert main(["eval", "--ckpt", str(simclr_ckpt), "--protocol", "linear", "--epochs", "10",
                 "--label-fraction", "0.1"]) == 0
    (path,) = (run_dir / "evals").glob("linear-ep10-labels0.1-*.json")
    result = json.loads(path.read_text())
    assert result["label_fraction"] == 0.1 and result["labelled_size"] == 10 * per_class_count(result["train_size"], 10, 0.1)
    assert 10 < result["linear_top1"] <= 100
    indices = tmp_path / "idx.txt"
    indices.write_text("\n".join(str(i) for i in range(0, 300, 3)))
    assert main(["eval", "--ckpt", str(simclr_ckpt), "--protocol", "knn", "--label-indices", str(indices)]) == 0
    (path,) = (run_dir / "evals").glob("knn-k20-T0.07-labels_file-*.json")
    assert json.loads(path.read_text())["labelled_size"] == 100
    assert "100 labelled" in capsys.readouterr().out


def test_random_init_baseline_from_the_cli(repo, tmp_path):
    """`eval --random-init --config C`: the config's backbone, seeded as pretrain seeds it, untrained;
    equals the k-NN of trainer.validate on a freshly built model (the learning tests' baseline)."""
    cfg_path = repo / "configs/digits/simclr.yaml"
    assert main(["eval", "--random-init", "--config", str(cfg_path), "--protocol", "knn",
                 "--run.dir", str(tmp_path), "--run.seed", "1"]) == 0
    (path,) = (tmp_path / "random_init-digits-seed1/evals").glob("knn-*.json")
    result = json.loads(path.read_text())
    assert result["method"] == "random_init" and result["model"]["random_init"]["backbone"] == "tiny_cnn"

    from ssl_bench.config import load_config

    cfg = load_config(cfg_path)
    pl.seed_everything(1, workers=True, verbose=False)
    dm = build_datamodule(cfg["data"], seed=cfg["run"]["seed"])
    model = build_method(cfg["model"], dm.num_classes)
    trainer = build_trainer({**cfg["trainer"], "enable_progress_bar": False, "enable_model_summary": False},
                            tmp_path / "v", loggers=[])
    trainer.validate(model, datamodule=dm, verbose=False)
    assert result["knn_top1"] == pytest.approx(float(trainer.callback_metrics["val_knn_top1"]), abs=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--config", "{repo}/configs/digits/byol.yaml"],
     "holds simclr with backbone tiny_cnn; config {repo}/configs/digits/byol.yaml asks for byol with backbone tiny_cnn"),
    (["--model.backbone", "resnet18"], "--model.backbone: the checkpoint fixes the model"),
    (["--model.backbone_kwargs", "{width: 32}"], "--model.backbone_kwargs: the checkpoint fixes the model"),
    (["--k", "100000"], "--k 100000: must be between 1 and the k-NN bank's 1437 labelled images"),
    (["--k", "0"], "--k 0: must be between 1"),
    (["--label-fraction", "1.5"], "label fraction must be in (0, 1], got 1.5"),
    (["--label-fraction", "0.1", "--label-indices", "x.txt"], "either --label-fraction or --label-indices"),
    (["--label-indices", "/nonexistent.txt"], "--label-indices: file not found"),
    (["--trainer.max_epochs", "1"], "takes --data.<key>, --model.<key> and --run.<key> overrides only"),
])
def test_bad_eval_input_is_one_line(repo, simclr_ckpt, capsys, args, message):
    args = [a.replace("{repo}", str(repo)) for a in args]
    evals = simclr_ckpt.parent.parent / "evals"
    before = {p.name: p.read_bytes() for p in evals.glob("*.json")} if evals.is_dir() else {}
    assert main(["eval", "--ckpt", str(simclr_ckpt), "--protocol", "knn", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssl-bench: error:") and message.replace("{repo}", str(repo)) in err and "\n" not in err
    after = {p.name: p.read_bytes() for p in evals.glob("*.json")} if evals.is_dir() else {}
    assert after == before  # no result written or rewritten


def test_random_init_baseline_of_another_model_never_replaces_one(repo, tmp_path, capsys):
    """Issue #27: a width-32 baseline used to overwrite the width-16 one (same file name, no backbone in
    the JSON, config.yaml still saying 16). The result records the model; another model in the same
    baseline directory is refused in one line; under its own --run.name it gets its own files."""
    base = ["eval", "--random-init", "--config", str(repo / "configs/digits/simclr.yaml"), "--protocol", "knn",
            "--run.dir", str(tmp_path)]
    assert main(base) == 0
    (first,) = (tmp_path / "random_init-digits-seed0/evals").glob("knn-*.json")
    saved = first.read_bytes(), (tmp_path / "random_init-digits-seed0/config.yaml").read_bytes()
    assert json.loads(saved[0])["model"]["random_init"]["backbone_kwargs"] == {"width": 16}
    capsys.readouterr()
    assert main([*base, "--model.backbone_kwargs", "{width: 32}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds the baseline of another model configuration" in err and "--run.name" in err and "\n" not in err
    assert (first.read_bytes(), (tmp_path / "random_init-digits-seed0/config.yaml").read_bytes()) == saved
    assert len(list(first.parent.glob("*.json"))) == 1
    assert main([*base, "--model.backbone_kwargs", "{width: 32}", "--run.name", "random-w32"]) == 0
    (wide,) = (tmp_path / "random-w32/evals").glob("knn-*.json")
    assert json.loads(wide.read_text())["model"]["random_init"]["backbone_kwargs"] == {"width": 32}
    assert wide.name != first.name


@pytest.mark.parametrize("args, message", [
    (["--random-init"], "--random-init needs --config"),
    ([], "give --ckpt CKPT, or --random-init with --config CONFIG"),
])
def test_eval_needs_a_checkpoint_or_random_init(args, message, capsys):
    assert main(["eval", "--protocol", "knn", *args]) == 2
    assert message in capsys.readouterr().err
