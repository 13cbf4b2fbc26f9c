"""Zoo part 2 across ranks: with two gloo processes (each holding half of the batch) DINO's centre,
VICReg's loss and gradients, W-MSE's loss and ReSSL's queue-based loss equal the single-process
values on the whole batch. The four computations run in one pair of processes (spawning costs more
than the checks)."""
import pytest
import torch

from ddp_harness import run_on_ranks
from ssl_bench import distributed, losses
from ssl_bench.methods import VICReg, WMSE
from ssl_bench.methods.queue import FeatureQueue
from helpers import tiny_model

TINY = tiny_model(4)


def _half(x: torch.Tensor) -> torch.Tensor:
    return x.chunk(distributed.world_size())[distributed.rank()]


def _dino_center(teacher: list[torch.Tensor], center: torch.Tensor) -> dict:
    local = [_half(t) for t in teacher]
    new_center = losses.ema_center(center, losses.batch_center(local), 0.9)
    student = [_half(t) * 2 for t in teacher]
    return {"center": new_center, "loss": losses.dino_loss(student, local, center)}


def _inputs() -> dict:
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    return {"dino": ([rand(8, 6) for _ in range(2)], rand(1, 6)),
            "vicreg": ([rand(12, 8) for _ in range(2)],),
            "wmse": ([rand(20, 4) @ rand(4, 4) for _ in range(2)],),
            "ressl": (rand(3, 2, 8, 5), rand(12, 5))}


def _all_checks(inputs: dict) -> dict:
    checks = {"dino": _dino_center, "vicreg": _vicreg, "wmse": _wmse, "ressl": _ressl}
    return {name: checks[name](*args) for name, args in inputs.items()}


@pytest.fixture(scope="module")
def results() -> tuple[dict, list[dict]]:
    inputs = _inputs()
    return _all_checks(inputs), run_on_ranks(_all_checks, 2, inputs)


def test_dino_center_two_ranks_equal_whole_batch(results):
    single, per_rank = results[0]["dino"], [r["dino"] for r in results[1]]
    for out in per_rank:
        torch.testing.assert_close(out["center"], single["center"], rtol=0, atol=1e-6)
    # per-sample loss: the mean of the ranks' losses (what DDP's gradient averaging optimises) is the whole-batch loss
    torch.testing.assert_close(sum(o["loss"] for o in per_rank) / 2, single["loss"], rtol=1e-6, atol=1e-6)


def _vicreg(feats: list[torch.Tensor]) -> dict:
    torch.manual_seed(0)
    model = VICReg(proj_hidden_dim=16, proj_dim=8, **TINY)
    model.projector = torch.nn.Identity()  # the statistics under test, not per-rank BatchNorm
    local = [_half(f).clone().requires_grad_(True) for f in feats]
    loss = model.ssl_loss(local)["loss"]
    loss.backward()
    return {"loss": loss.detach(), "grads": [x.grad for x in local]}


def test_vicreg_global_statistics_two_ranks(results):
    single, per_rank = results[0]["vicreg"], [r["vicreg"] for r in results[1]]
    for r, out in enumerate(per_rank):
        torch.testing.assert_close(out["loss"], single["loss"], rtol=1e-5, atol=1e-6)
        # gathered with gradients: each rank's gradient is W x its slice of the global gradient
        # (DDP then averages over W ranks, giving the whole-batch gradient)
        for g, g_single in zip(out["grads"], single["grads"]):
            torch.testing.assert_close(g, 2 * g_single.chunk(2)[r], rtol=1e-4, atol=1e-6)


def _wmse(feats: list[torch.Tensor]) -> torch.Tensor:
    torch.manual_seed(0)
    model = WMSE(proj_hidden_dim=16, proj_dim=4, whiten_size=8, whiten_iters=2, **TINY)
    model.projector = torch.nn.Identity()
    torch.manual_seed(100 + distributed.rank())  # different RNG per rank: rank 0's split must win
    return model.ssl_loss([_half(f) for f in feats])["loss"].detach()


def test_wmse_two_ranks_whiten_the_same_global_sub_batches(results):
    single = results[0]["wmse"]
    for loss in (r["wmse"] for r in results[1]):
        torch.testing.assert_close(loss, single, rtol=1e-5, atol=1e-6)


def _ressl(steps: torch.Tensor, queue_init: torch.Tensor) -> dict:
    """Each step: loss of the local half against the shared queue, then enqueue the teacher keys."""
    queue = FeatureQueue(queue_init.shape[0], queue_init.shape[1])
    queue.enqueue(queue_init, gather=False)
    out = []
    for student, teacher in steps:
        out.append(losses.ressl_loss(_half(student), _half(teacher), queue.contents()))
        queue.enqueue(_half(teacher))
    return {"losses": torch.stack(out), "queue": queue.contents()}


def test_ressl_two_ranks_equal_whole_batch(results):
    single, per_rank = results[0]["ressl"], [r["ressl"] for r in results[1]]
    torch.testing.assert_close(sum(o["losses"] for o in per_rank) / 2, single["losses"], rtol=1e-5, atol=1e-6)
    for out in per_rank:
        torch.testing.assert_close(out["queue"], single["queue"], rtol=0, atol=0)
