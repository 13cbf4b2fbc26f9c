"""Method zoo part 1: save at the end of epoch 1, restore, continue == an uninterrupted 2-epoch run,
for every method: weights, queues, memory bank, k-means assignments, prototypes and optimiser state
(the pattern of tests/cli/test_pretrain_cli.py::test_resume_continues_exactly, on a 512-image digits subset)."""
import pytest
import torch

from ssl_bench.config import apply_overrides, load_config
from helpers import QUIET, straight_and_resumed

# state that must be in the checkpoint and non-trivial after 2 epochs, and overrides that make the
# method use it within 2 short epochs (4 steps each)
STATE = {
    "moco_v2plus": ("queue.keys", ["--model.queue_size", "384"]),  # wraps around
    "infomin": ("queue.keys", ["--model.queue_size", "384"]),      # and the puzzles' generator state
    "nnclr": ("support.keys", ["--model.queue_size", "384"]),
    "swav": ("queues.0.keys", ["--model.queue_size", "256", "--model.queue_start_epoch", "0",
                               "--model.freeze_prototypes_steps", "6"]),  # frozen across the resume
    "deepcluster_v2": ("memory.assignments", []),
    "cmc": ("queues.1.keys", ["--model.queue_size", "256"]),
}
FAST = ["--data.train_subset", "512", "--model.knn", "false", "--model.linear_probe", "false",
        "--model.collapse_monitor", "false"]


@pytest.mark.parametrize("method", list(STATE))
def test_resume_continues_exactly(repo, tmp_path, method):
    key, extra = STATE[method]

    def cfg(run_dir, *more):
        return apply_overrides(load_config(repo / f"configs/digits/{method}.yaml"),
                               ["--run.dir", str(run_dir), "--run.name", "r", "--trainer.max_epochs", "2",
                                "--trainer.deterministic", "true", *QUIET, *FAST, *extra, *more])

    straight, resumed, _ = straight_and_resumed(cfg, tmp_path)
    assert resumed["global_step"] == straight["global_step"] == 8
    state = straight["state_dict"]
    assert state[key].abs().sum() > 0 if key.endswith("keys") else (state[key] >= 0).any()
    assert set(resumed["state_dict"]) == set(state)
    for name, value in state.items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=0, atol=0, msg=name)
    opt_a, opt_b = straight["optimizer_states"][0]["state"], resumed["optimizer_states"][0]["state"]
    assert opt_a.keys() == opt_b.keys()
    for i in opt_a:
        torch.testing.assert_close(opt_b[i]["momentum_buffer"], opt_a[i]["momentum_buffer"], rtol=0, atol=0)
