"""ER on the softmax-head methods (issue #11): DINO and SwAV declare their ER inputs, so
``er_entropy_weight`` turns their loss into cross-entropy reconstruction - weight * entropy.

Independent checks: with weight 0 the ER objective is exactly the method's own loss (both average
the cross-entropy of the same (target, prediction) pairs), and with weight w it is that loss minus
w times the entropy of the batch-mean softmax of the global views, computed here with numpy."""
import json

import numpy as np
import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.config import load_config
from ssl_bench.methods import DINO, SwAV
from helpers import QUIET, tiny_model

TINY = tiny_model(8)


def _dino(weight):
    return DINO(proj_hidden_dim=32, bottleneck_dim=16, out_dim=64, head_batch_norm=True, er_entropy_weight=weight,
                er_reconstruction="cross_entropy", **TINY)


def _swav(weight):
    return SwAV(proj_hidden_dim=32, proj_dim=16, num_prototypes=20, queue_size=0, er_entropy_weight=weight,
                er_reconstruction="cross_entropy", **TINY)


def _batch_mean_entropy(logits: list[torch.Tensor]) -> float:
    """Mean over views of the entropy of the batch-mean softmax (numpy, independent of the code)."""
    values = []
    for x in logits:
        x = x.detach().double().numpy()
        p = np.exp(x - x.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        mean = p.mean(0)
        values.append(-(mean * np.log(mean)).sum())
    return float(np.mean(values))


@pytest.mark.parametrize("build", [_dino, _swav], ids=["dino", "swav"])
def test_er_objective_on_softmax_methods(build):
    torch.manual_seed(0)
    views = [torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16), torch.randn(8, 3, 8, 8)]
    results = {}
    for weight in (None, 0.0, 0.5):
        torch.manual_seed(1)
        model = build(weight).train()
        feats, out = model.compute_ssl_loss(views)
        results[weight] = (out, model.er_settings.apply(dict(out), type(model).__name__))
    native = results[None][1]["loss"]
    torch.testing.assert_close(results[0.0][1]["loss"], native, rtol=1e-5, atol=1e-6)
    out, er = results[0.5]
    entropy = _batch_mean_entropy(out["er"].entropy)
    assert er["er_entropy"].item() == pytest.approx(entropy, rel=1e-4)
    assert er["loss"].item() == pytest.approx(native.item() - 0.5 * entropy, rel=1e-4)
    er["loss"].backward()


@pytest.mark.parametrize("method", ["dino", "swav"])
def test_er_configs_train_on_digits(repo, tmp_path, method):
    cfg_path = repo / f"configs/digits/{method}_er.yaml"
    assert load_config(cfg_path)["model"]["er_entropy_weight"] == 1.0
    assert main(["pretrain", "--config", str(cfg_path), "--run.dir", str(tmp_path), "--trainer.max_epochs", "1",
                 *QUIET]) == 0
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["train_loss"] is not None and np.isfinite(summary["train_loss"])
    assert "er_bound" in summary["all_metrics"] and "softmax_entropy" in summary["all_metrics"]
