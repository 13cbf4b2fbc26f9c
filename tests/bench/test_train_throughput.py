"""benchmarks/train_throughput.py and bare_loop.py: the bare loop does the same work as ssl-bench's
training step, the timing windows are cut right, the FLOP count matches a hand count, and the
benchmark entry points run end to end for a couple of steps."""
import json
import sys

import pytest
import torch

from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import train_throughput as tt  # noqa: E402
from bare_loop import bare_loss, make_batches  # noqa: E402

TINY = {"backbone_kwargs": {"width": 4}, "proj_dim": 8}
BUILD_CLI_METHOD = tt.build_cli_method  # the real one, for when a test patches it


def tiny_method(method: str):
    heads = {"proj_hidden_dim": 16} if method == "simclr" else {"proj_hidden_dim": 16, "pred_hidden_dim": 16}
    return BUILD_CLI_METHOD(method, "tiny_cnn", **TINY, **heads)


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_bare_loss_equals_training_step_loss(method):
    model = tiny_method(method).train()
    views, _ = make_batches(1, 6)[0]
    expected = model.compute_ssl_loss(views)[1]["loss"]
    torch.testing.assert_close(bare_loss(model, views), expected)


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_lockstep_bare_loop_trains_like_the_fit(method, monkeypatch):
    """After the fit, the bare copy trained in lockstep (optimiser, LR schedule, EMA) has the fit's weights."""
    monkeypatch.setattr(tt, "build_cli_method", lambda m, b, seed=0, **kw: tiny_method(m))
    case = tt.OverheadCase(method, "tiny_cnn", batch_size=8, warmup=1, steps=2, repeats=1)
    batches = make_batches(4, 8)
    lockstep = tt.LockstepBare(tt.BareLoop(tiny_method(method), 8, len(batches)))
    fitted = tt.fit_as_cli(case, batches, [lockstep], progress_bar=False)
    bare_state, fit_state = lockstep.bare.model.state_dict(), fitted.state_dict()
    assert set(bare_state) == set(fit_state)
    init_state, changed = tiny_method(method).state_dict(), 0
    for key, value in fit_state.items():
        torch.testing.assert_close(bare_state[key], value, rtol=1e-5, atol=1e-6, msg=key)
        changed += not torch.equal(value, init_state[key])
    assert changed > len(fit_state) // 2  # it trained (teacher included for BYOL)
    bare_s, fit_s = lockstep.step_times(case.warmup, case.steps)
    assert len(bare_s) == len(fit_s) == 2 and min(bare_s + fit_s) > 0


def test_window_and_lockstep_step_times():
    case = tt.OverheadCase("simclr", "tiny_cnn", 8, warmup=1, steps=2, repeats=1)
    assert tt._window([0.0, 1.0, 3.0, 6.0, 10.0], case) == [2.0, 3.0]
    with pytest.raises(RuntimeError):
        tt._window([0.0, 1.0, 3.0], case)
    lock = tt.LockstepBare(bare=None)  # type: ignore[arg-type]
    lock.starts, lock.resumes = [0.0, 10.0, 30.0, 60.0], [4.0, 15.0, 36.0, 67.0]
    assert lock.step_times(1, 2) == ([5.0, 6.0], [15.0, 24.0])


def test_flops_per_image_match_a_hand_count():
    """tiny_cnn (width 1: 3->1->2->4->4 channels, strides 1,2,2,2) on 8x8 views + SimCLR head + NT-Xent logits."""
    model = tt.build_cli_method("simclr", "tiny_cnn", backbone_kwargs={"width": 1}, proj_hidden_dim=5, proj_dim=3)
    b, size = 4, 8
    convs, hw = [], size
    for c_in, c_out, stride in [(3, 1, 1), (1, 2, 2), (2, 4, 2), (4, 4, 2)]:
        hw //= stride
        convs.append(2 * c_in * c_out * 9 * hw * hw)  # per image
    images = 2 * b  # both views through the backbone
    fwd = images * sum(convs)
    bwd = images * (convs[0] + 2 * sum(convs[1:]))  # no input gradient for the first conv
    linears = [(4, 5), (5, 3)]  # projector, applied per view to b rows
    fwd += 2 * sum(2 * b * i * o for i, o in linears)
    bwd += 2 * sum(2 * 2 * b * i * o for i, o in linears)
    logits = 2 * (2 * b) * (2 * b) * 3  # (2b, d) @ (d, 2b)
    expected = (fwd + bwd + logits + 2 * logits) / b
    assert tt.step_flops_per_image(model, b, size, autocast_dtype=None) == pytest.approx(expected)
    assert tt.step_flops_per_image(model, b, size) == pytest.approx(expected)  # bf16 autocast: same count


def test_overhead_main_writes_json(tmp_path, monkeypatch):
    monkeypatch.setattr(tt, "build_cli_method", lambda m, b, seed=0, **kw: tiny_method(m))
    out = tmp_path / "t.json"
    for mode, methods, repeats in (("lockstep", ["simclr", "byol"], 1), ("separate", ["simclr"], 2)):
        result = tt.main(["--backbones", "tiny_cnn", "--methods", *methods, "--repeats", str(repeats), "--steps", "2",
                          "--warmup", "1", "--batch-size", "8", "--no-progress-bar", "--mode", mode, "--out", str(out)])
        rows = json.loads(out.read_text())["overhead"]
        assert [r["name"] for r in rows] == [f"{m}/tiny_cnn" for m in methods] == [r["name"] for r in result["overhead"]]
        for r in rows:
            assert r["mode"] == mode and len(r["bare_step_s"]) == len(r["ssl_bench_step_s"]) == repeats
            assert r["ratio_of_medians"] == pytest.approx(r["ssl_bench_median_step_s"] / r["bare_median_step_s"])


def test_summarise_by_hand():
    s = tt.summarise(bare=[1.0, 2.0, 4.0], ours=[1.5, 2.2, 4.0], batch_size=10)
    assert s["repeat_ratios"] == pytest.approx([1.5, 1.1, 1.0])
    assert s["ratio"] == pytest.approx(1.1) and s["ratio_of_medians"] == pytest.approx(1.1)
    assert s["overhead_ms_per_step"] == pytest.approx(200.0)  # median of 500, 200, 0 ms
    assert s["bare_images_per_s"] == pytest.approx(5.0) and s["ssl_bench_images_per_s"] == pytest.approx(10 / 2.2)


def test_epoch_benchmark_runs_on_cpu_with_digits():
    """The --device cuda path, on CPU with scikit-learn's digits and the tiny CNN (CUDA is unmeasured here)."""
    heads = {"proj_hidden_dim": 16, "pred_hidden_dim": 16}
    out = tt.epoch_benchmark("byol", peak_tflops=1.0, device="cpu", batch_size=32, epochs=1, backbone="tiny_cnn",
                             data={"dataset": "digits", "train_subset": 200}, model_overrides={**TINY, **heads},
                             log=lambda *a: None)
    assert out["images_per_epoch"] == 32 * (200 // 32)  # drop_last
    assert len(out["epoch_seconds"]) == 1 and out["images_per_s"] > 0
    assert out["mfu"] == pytest.approx(out["flops_per_image"] * out["images_per_s"] / 1e12)
