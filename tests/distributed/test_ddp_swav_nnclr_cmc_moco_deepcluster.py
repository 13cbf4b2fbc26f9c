"""Method zoo part 1 on 2 gloo processes equals 1 process on the concatenated batch: Sinkhorn (alone
and with SwAV's sharded queue), the in-batch InfoNCE of NNCLR and CMC (values and gradients), MoCo's
queue InfoNCE, DeepCluster v2's memory bank and NNCLR's support set (same on every rank, keys of both),
and InfoMin's step (per-rank puzzles, queue loss, gradients, enqueued keys).

One spawn of two processes computes everything (each spawn costs seconds of interpreter start)."""
import torch
import torch.nn.functional as F
from torch import nn

from ddp_harness import run_on_ranks
from ssl_bench import distributed
from ssl_bench.losses import batch_infonce, cmc_loss, infonce, sinkhorn
from ssl_bench.methods import NNCLR, InfoMin, SwAV
from ssl_bench.methods.deepcluster import MemoryBank
from helpers import tiny_model

B, D, K = 8, 6, 5  # global batch, embedding dim, prototypes
TINY = tiny_model(2, proj_hidden_dim=8, proj_dim=D)
INFOMIN = tiny_model(4, proj_hidden_dim=16, proj_dim=8, queue_size=32)


def _inputs() -> dict:
    g = torch.Generator().manual_seed(0)
    return {"scores": F.normalize(torch.randn(B, D, generator=g), dim=1) @ F.normalize(torch.randn(K, D, generator=g), dim=1).T,
            "z": [torch.randn(B, D, generator=g) for _ in range(3)],
            "queue_steps": torch.randn(3, B, D, generator=g),
            "indices": torch.randperm(20, generator=g)[:B],
            "infomin_views": [torch.randn(B, 3, 16, 16, generator=g) for _ in range(2)],
            "infomin_keys": torch.randn(20, 8, generator=g)}


def _on_rank(inputs: dict) -> dict:
    """Everything on this rank's half of the global batch (the whole batch on one process)."""
    r, w = distributed.rank(), distributed.world_size()
    mine = lambda x: x.chunk(w)[r]  # noqa: E731
    out: dict = {"sinkhorn": sinkhorn(mine(inputs["scores"]), 0.05, 3)}

    # NNCLR / CMC: in-batch InfoNCE over gathered keys, gradients through the gather
    z = [mine(t).clone().requires_grad_() for t in inputs["z"]]
    z_all = [distributed.gather_with_grad(t) for t in z]
    nnclr = batch_infonce(z[0], z_all[1], 0.2, r)
    cmc = cmc_loss(z, z_all, 0.1, "full_graph", rank=r)
    (nnclr + cmc).backward()
    out.update(nnclr=nnclr.detach(), cmc=cmc.detach(), grads=[t.grad for t in z])
    out["moco"] = infonce(mine(inputs["z"][0]), mine(inputs["z"][1]), inputs["z"][2], 0.2)

    # SwAV codes with a full queue (identical on every rank; each rank uses its shard in Sinkhorn)
    torch.manual_seed(0)
    swav = SwAV(num_prototypes=K, queue_size=2 * B, queue_start_epoch=0, **TINY)
    swav.normalize_prototypes()
    for step in inputs["queue_steps"][:2]:
        swav.queues[0].enqueue(mine(step))
    z0 = F.normalize(mine(inputs["queue_steps"][2]), dim=1)
    out["swav_codes"] = swav.codes(0, z0, swav.prototypes(z0))

    # DeepCluster v2's bank and NNCLR's support set: every rank holds the global state
    bank = MemoryBank(num_views=1, dim=D, num_heads=1, num_samples=20)
    bank.update(mine(inputs["indices"]), [mine(inputs["z"][0])])
    out["bank"] = bank.state_dict()
    torch.manual_seed(0)
    nnclr_method = NNCLR(queue_size=64, proj_layers=2, pred_hidden_dim=8, **TINY)
    nnclr_method.support.enqueue(mine(inputs["z"][0]))
    out["support"] = nnclr_method.support.contents()
    out["infomin"] = infomin_on_rank(inputs["infomin_views"], inputs["infomin_keys"])
    return out


def test_two_ranks_equal_one_process():
    inputs = _inputs()
    single = _on_rank(inputs)
    ranks = run_on_ranks(_on_rank, 2, inputs)
    for key in ("sinkhorn", "swav_codes"):
        torch.testing.assert_close(torch.cat([o[key] for o in ranks]), single[key])
    for key in ("nnclr", "cmc", "moco"):  # per-rank means over halves: their average is the global mean
        torch.testing.assert_close(sum(o[key] for o in ranks) / 2, single[key])
    for v in range(3):
        # the gather sums every rank's gradient into each rank's slice; DDP then averages over ranks
        torch.testing.assert_close(torch.cat([o["grads"][v] for o in ranks]) / 2, single["grads"][v])
    for o in ranks:
        for name, value in single["bank"].items():
            torch.testing.assert_close(o["bank"][name], value, rtol=0, atol=0)
        torch.testing.assert_close(o["support"], single["support"], rtol=0, atol=0)
    assert single["bank"]["filled"].sum() == B
    assert_infomin_ranks_equal(single["infomin"], [o["infomin"] for o in ranks])


def infomin_on_rank(views: list[torch.Tensor], keys: torch.Tensor) -> tuple:
    """This rank's half of the batch, BatchNorm frozen (tests/distributed/test_ddp_simclr_barlow.py), the queue
    pre-filled identically on every rank -> (rank-averaged loss and gradients, the queue after the
    step). Each rank cuts its slice of the global batch's puzzles."""
    torch.manual_seed(0)
    model = InfoMin(**INFOMIN)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    model.queue.enqueue(F.normalize(keys, dim=1), gather=False)
    w, r = distributed.world_size(), distributed.rank()
    _, out = model.compute_ssl_loss([v.chunk(w)[r] for v in views])
    out["loss"].backward()
    loss = out["loss"].detach()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    if w > 1:
        for t in (loss, *grads.values()):
            torch.distributed.all_reduce(t)
            t /= w
    return loss, grads, model.queue.contents()


def assert_infomin_ranks_equal(single: tuple, per_rank: list[tuple]) -> None:
    """The queue loss, the DDP-averaged gradients and the enqueued keys of every rank (gathered:
    [k1, k2] per rank in rank order, so the whole batch's keys in another order) == one process."""
    loss, grads, queue = single
    assert grads["jigsaw_head.fc2.weight"].abs().sum() > 0 and grads["backbone.0.0.weight"].abs().sum() > 0
    scale = max(v.abs().max().item() for v in grads.values())
    for rank_loss, rank_grads, rank_queue in per_rank:
        torch.testing.assert_close(rank_loss, loss, rtol=1e-5, atol=1e-6)
        assert rank_grads.keys() == grads.keys()
        for name, value in grads.items():
            torch.testing.assert_close(rank_grads[name], value, rtol=1e-4, atol=1e-4 * scale, msg=name)
        assert rank_queue.shape == queue.shape
        nearest = torch.cdist(rank_queue, queue, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
        assert float(nearest.max()) < 1e-5
