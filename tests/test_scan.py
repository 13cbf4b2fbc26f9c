"""`ssl-bench scan`: neighbour mining (chunked = brute force, cached), the pipeline on digits end to
end (summary.json with every stage, no silent overwrite), and one-line errors."""
import json
from pathlib import Path

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.config import apply_overrides, load_config
from ssl_bench.errors import ConfigError
from ssl_bench.pretrain import pretrain
from ssl_bench.eval.scan import ScanSettings, mine_neighbors, neighbor_accuracy, run_scan

FAST = ["--scan_epochs", "1", "--self_label_epochs", "1", "--num_heads", "2", "--kmeans_init", "1",
        "--batch_size", "64", "--num_neighbors", "5"]


def test_chunked_mining_equals_brute_force():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    got = mine_neighbors(x, 4, chunk_size=7)
    xn = torch.nn.functional.normalize(x, dim=1)
    for i in range(50):
        sims = [(float(xn[i] @ xn[j]), j) for j in range(50) if j != i]
        expected = [j for _, j in sorted(sims, reverse=True)[:4]]
        assert got[i].tolist() == expected
    assert neighbor_accuracy(torch.tensor([[1, 2], [0, 2], [0, 1]]), torch.tensor([0, 0, 1])) == pytest.approx(100 / 3)
    with pytest.raises(ConfigError, match="num_neighbors"):
        mine_neighbors(x, 50)


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs/digits/simclr.yaml")
    cfg = apply_overrides(cfg, ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
                                "--trainer.enable_model_summary", "false",
                                "--run.dir", str(tmp_path_factory.mktemp("runs"))])
    summary = pretrain(cfg)
    return f"{summary['run_dir']}/checkpoints/last.ckpt"


def test_scan_pipeline_writes_every_stage_and_never_overwrites(digits_ckpt, capsys):
    assert main(["scan", "--ckpt", digits_ckpt, *FAST]) == 0
    out_dir = digits_ckpt.replace("checkpoints/last.ckpt", "scan")
    summary = json.loads(open(f"{out_dir}/summary.json").read())
    for stage in ("kmeans", "scan", "self_label"):
        assert set(summary[stage]) >= {"acc", "nmi", "ari"}
        assert 0 <= summary[stage]["acc"] <= 100
    assert summary["num_clusters"] == 10 and len(summary["scan"]["head_losses"]) == 2
    assert summary["settings"]["num_neighbors"] == 5
    assert "results in" in capsys.readouterr().out
    cache = torch.load(f"{out_dir}/neighbors.pt", weights_only=True)
    assert cache["indices"].shape == (summary["train_size"], 5)
    # a second run refuses in one line; --overwrite replaces it and reuses the neighbour cache
    assert main(["scan", "--ckpt", digits_ckpt, *FAST]) == 2
    assert "already holds a SCAN result" in capsys.readouterr().err
    cache_path = Path(out_dir) / "neighbors.pt"
    mtime = cache_path.stat().st_mtime_ns
    assert main(["scan", "--ckpt", digits_ckpt, *FAST, "--overwrite", "--self_label_epochs", "0"]) == 0
    assert cache_path.stat().st_mtime_ns == mtime


def test_scan_bad_input_is_one_line(digits_ckpt, tmp_path, capsys):
    assert main(["scan", "--ckpt", str(tmp_path / "missing.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["scan", "--ckpt", digits_ckpt, "--threshold", "1.5", "--out", str(tmp_path / "o")]) == 2
    assert "scan.threshold must be in (0, 1)" in capsys.readouterr().err
    assert main(["scan", "--ckpt", digits_ckpt, "--scan_augment", "huge", "--out", str(tmp_path / "o")]) == 2
    assert "scan.scan_augment must be one of strong, weak, none" in capsys.readouterr().err
    assert main(["scan", "--ckpt", digits_ckpt, "--model.lr", "1"]) == 2
    assert "only --data.<key> overrides" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="num_heads"):
        run_scan(digits_ckpt, ScanSettings(num_heads=0), out=tmp_path / "o2")


def test_projector_features_and_stage_three_settings(digits_ckpt, tmp_path, monkeypatch):
    """``mine_on`` / ``heads_on``: projector mines on (and clusters) the projection output, and the
    neighbour cache is keyed by it; ``self_label_update_backbone`` decides alone whether stage 3
    moves the network under the heads (stage 2 runs no epochs here)."""
    from ssl_bench.eval import scan

    method, cfg, _ = scan.load_checkpoint(digits_ckpt)
    encoders = scan.feature_encoders(method)
    assert set(encoders) == {"backbone", "projector"} and encoders["projector"][0] is encoders["backbone"]
    s = ScanSettings(scan_epochs=0, self_label_epochs=1, num_heads=2, kmeans_init=1, batch_size=64,
                     num_neighbors=5, mine_on="projector", heads_on="projector")
    run_scan(digits_ckpt, ScanSettings(**{**s.__dict__, "mine_on": "backbone"}), out=tmp_path / "o",
             log=lambda _: None)
    run_scan(digits_ckpt, s, out=tmp_path / "o", overwrite=True, log=lambda _: None)  # must not reuse
    dm = scan.build_datamodule(cfg["data"], seed=cfg["run"]["seed"])
    proj_x = scan.embed_images(encoders["projector"], dm.source.train.images, dm.eval_batch_transform)
    cached = torch.load(tmp_path / "o/neighbors.pt", weights_only=True)["indices"]
    assert torch.equal(cached, mine_neighbors(proj_x, 5))
    pretrained = encoders["projector"].state_dict()
    for update, out in ((False, "frozen"), (True, "tuned")):
        run_scan(digits_ckpt, ScanSettings(**{**s.__dict__, "update_backbone": not update,
                                              "self_label_update_backbone": update}),
                 out=tmp_path / out, log=lambda _: None)
        saved = torch.load(tmp_path / out / "scan_model.pt", weights_only=True)
        assert saved["heads_on"] == "projector" and saved["head"]["weight"].shape[1] == proj_x.shape[1]
        same = all(torch.equal(saved["backbone"][k], v) for k, v in pretrained.items() if v.is_floating_point())
        assert same is not update, out
    monkeypatch.setattr(scan, "feature_encoders", lambda m: {"backbone": m.backbone})  # a method without one
    with pytest.raises(ConfigError, match="has no projector"):
        run_scan(digits_ckpt, s, out=tmp_path / "p")
    with pytest.raises(ConfigError, match="scan.mine_on must be one of backbone, projector"):
        run_scan(digits_ckpt, ScanSettings(mine_on="head"), out=tmp_path / "q")


def test_scan_job_file_and_command_line_precedence(digits_ckpt, tmp_path, capsys):
    """``--config`` names the checkpoint, output, settings and data overrides; the command line wins
    over the file; a wrong key or type in the file, or no checkpoint at all, is one line."""
    job = tmp_path / "job.yaml"
    job.write_text(f"ckpt: {digits_ckpt}\nout: {tmp_path / 'from-file'}\n"
                   "scan: {scan_epochs: 1, self_label_epochs: 1, num_heads: 3, kmeans_init: 1, batch_size: 64,\n"
                   "       num_neighbors: 7, entropy_weight: 2.5}\n"
                   "data: {val_subset: 100}\n")
    assert main(["scan", "--config", str(job), "--num_heads", "2", "--data.val_subset", "150"]) == 0
    summary = json.loads((tmp_path / "from-file/summary.json").read_text())
    assert summary["settings"]["num_heads"] == 2 and len(summary["scan"]["head_losses"]) == 2  # command line
    assert summary["settings"]["num_neighbors"] == 7 and summary["settings"]["entropy_weight"] == 2.5  # file
    assert summary["val_size"] == 150
    assert summary["checkpoint"] == digits_ckpt
    # --out on the command line beats the file's out; --ckpt beats the file's ckpt
    assert main(["scan", "--config", str(job), "--ckpt", str(tmp_path / "other.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["scan", "--config", str(job), "--out", str(tmp_path / "from-cli"), "--self_label_epochs", "0"]) == 0
    assert (tmp_path / "from-cli/summary.json").is_file()
    capsys.readouterr()

    for text, message in (("scan: {num_head: 2}", "unknown key scan.num_head for ScanSettings"),
                          ("scan: {lr: fast}", "scan.lr must be float"),
                          ("chekpoint: x.ckpt", "unknown key 'chekpoint' in SCAN config"),
                          ("out: 3", "scan config.out must be str | None"),
                          ("scan: {scan_epochs: 1}", "needs a checkpoint"),
                          ("scan: [unclosed", "is not valid YAML")):
        job.write_text(text + "\n")
        assert main(["scan", "--config", str(job)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["scan", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "SCAN config file not found" in capsys.readouterr().err
    assert main(["scan"]) == 2
    assert "needs a checkpoint" in capsys.readouterr().err
