"""Zoo part 2 methods: DINO's last-layer freeze, gradient clipping and teacher-temperature schedule,
DINO with a timm ViT, DINO's exact resume (centre, teacher, schedule), ReSSL's weak/strong views,
and W-MSE's whitening-size config error."""
import csv

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.config import apply_overrides, load_config
from ssl_bench.data.recipes import build_recipe
from ssl_bench.methods import DINO, ReSSL
from ssl_bench.pretrain import pretrain
from helpers import QUIET, assert_same_weights, digits_args, load_ckpt, straight_and_resumed, tiny_model

TINY = tiny_model(4)


def _views(n: int = 2, batch: int = 6, size: int = 16) -> list[torch.Tensor]:
    return [torch.randn(batch, 3, size, size) for _ in range(n)]


def test_dino_hook_freezes_last_layer_in_first_epoch_and_clips_each_parameter():
    torch.manual_seed(0)
    model = DINO(proj_hidden_dim=16, bottleneck_dim=8, out_dim=32, clip_grad=1e-3, **TINY)
    views = _views(2) + _views(2, size=8)  # two global views and two small crops
    feats, out = model.compute_ssl_loss(views)
    assert len(feats) == 4 and out["loss"].isfinite()
    out["loss"].backward()
    last = list(model.head.last_layer.parameters())
    assert any(p.grad is not None for p in last)
    model.on_before_optimizer_step(None)  # current_epoch is 0 without a trainer: frozen
    assert all(p.grad is None for p in last)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.norm() <= 1e-3 * (1 + 1e-5) for g in grads)
    assert all(p.grad is None for p in model.teacher_head.parameters())


def test_dino_teacher_temperature_warmup(monkeypatch):
    model = DINO(proj_hidden_dim=16, bottleneck_dim=8, out_dim=32, warmup_teacher_temp=0.04,
                 teacher_temp=0.07, warmup_teacher_temp_epochs=4, **TINY)
    temps = []
    for epoch in range(6):
        monkeypatch.setattr(DINO, "current_epoch", property(lambda self, e=epoch: e))
        temps.append(model.teacher_temp)
    assert temps == pytest.approx([0.04, 0.05, 0.06, 0.07, 0.07, 0.07])  # np.linspace(0.04, 0.07, 4), then 0.07


def test_dino_with_timm_vit_trains_on_digits(repo, tmp_path):
    """A tiny timm ViT at digits size (16x16 images, 4x4 patches; the 8x8 small crops need
    ``dynamic_img_size``), set from the config only: a few steps, right shapes, finite loss."""
    cfg = apply_overrides(load_config(repo / "configs/digits/dino.yaml"),
                          ["--run.dir", str(tmp_path), "--run.name", "vit", *QUIET, "--trainer.max_epochs", "1",
                           "--trainer.limit_train_batches", "3", "--data.batch_size", "32",
                           "--model.backbone", "vit_tiny_patch16_224", "--model.linear_probe", "false",
                           "--model.backbone_kwargs",
                           "{img_size: 16, patch_size: 4, depth: 2, dynamic_img_size: true}"])
    summary = pretrain(cfg)
    assert summary["global_step"] == 3 and summary["train_loss"] is not None
    state = load_ckpt(tmp_path / "vit/checkpoints/last.ckpt")["state_dict"]
    assert state["backbone.patch_embed.proj.weight"].shape == (192, 3, 4, 4)
    assert state["center"].shape == (1, 256)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def _teacher_temps(metrics_csv) -> dict[str, str]:
    with open(metrics_csv) as f:
        return {row["step"]: row["teacher_temp"] for row in csv.DictReader(f) if row.get("teacher_temp")}


def test_dino_resume_continues_exactly(repo, tmp_path):
    """As test_pretrain_cli.test_resume_continues_exactly, for DINO with multi-crop: the centre, the teacher
    and the teacher-temperature schedule continue exactly; the last layer stays frozen in epoch 0."""
    def cfg(run_dir, *extra):
        return apply_overrides(load_config(repo / "configs/digits/dino.yaml"),
                               ["--run.dir", str(run_dir), "--run.name", "r", "--trainer.max_epochs", "2",
                                "--trainer.deterministic", "true", "--trainer.log_every_n_steps", "2",
                                *QUIET, *extra])

    straight, resumed, first = straight_and_resumed(cfg, tmp_path)
    assert resumed["global_step"] == straight["global_step"] > 0
    assert straight["state_dict"]["center"].abs().sum() > 0
    assert_same_weights(straight, resumed)
    temps = _teacher_temps(tmp_path / "straight/r/metrics.csv")
    assert {round(float(t), 6) for t in temps.values()} == {0.04, 0.07}  # warm-up over 2 epochs
    assert _teacher_temps(tmp_path / "resumed/r/metrics.csv") == temps
    # last layer frozen during epoch 0: the student's equals its EMA teacher copy exactly; not after
    last = "head.last_layer.parametrizations.weight.original1"
    torch.testing.assert_close(first[last], first["teacher_" + last], rtol=0, atol=0)
    assert not torch.equal(straight["state_dict"][last], straight["state_dict"]["teacher_" + last])


def test_weak_recipe_and_ressl_views(monkeypatch):
    weak, strong = build_recipe({"name": "weak"}, 32, (0.5,) * 3, (0.2,) * 3).views
    assert (weak.jitter_prob, weak.grayscale_prob, weak.blur_prob, weak.solarize_prob) == (0, 0, 0, 0)
    assert weak.hflip_prob == 0.5 and strong.jitter_prob == 0.8 and strong.grayscale_prob == 0.2

    torch.manual_seed(0)
    model = ReSSL(proj_hidden_dim=16, proj_dim=8, queue_size=32, **TINY)
    seen = []
    teacher_forward = model.teacher_forward
    monkeypatch.setattr(model, "teacher_forward", lambda x: seen.append(x) or teacher_forward(x))
    weak_view, strong_view = _views(2)
    feats, out = model.compute_ssl_loss([weak_view, strong_view])
    assert len(seen) == 1 and seen[0] is weak_view  # the teacher sees the weak view only
    torch.testing.assert_close(feats[0], model(strong_view))  # the student the strong one
    assert out["loss"].isfinite() and len(model.queue) == 32


def test_wmse_whitening_size_below_twice_the_dimension_is_one_line(repo, tmp_path, capsys):
    assert main(digits_args(repo, tmp_path, "wmse", "--model.whiten_size", "31", "--model.proj_dim", "16")) == 2
    err = capsys.readouterr().err.strip()
    assert "model.whiten_size must be >= 2 x model.proj_dim = 32" in err and "\n" not in err
