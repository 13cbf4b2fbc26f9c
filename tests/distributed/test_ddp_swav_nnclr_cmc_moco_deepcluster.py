"""Method zoo part 1 on 2 gloo processes equals 1 process on the concatenated batch: Sinkhorn (alone
and with SwAV's sharded queue), the in-batch InfoNCE of NNCLR and CMC (values and gradients), MoCo's
queue InfoNCE, DeepCluster v2's memory bank and NNCLR's support set (same on every rank, keys of both),
and InfoMin's step (tests/test_infomin.py: per-rank puzzles, queue loss, gradients, enqueued keys).

One spawn of two processes computes everything (each spawn costs seconds of interpreter start)."""
import torch
import torch.nn.functional as F

from ddp_harness import run_on_ranks
from test_infomin import assert_infomin_ranks_equal, infomin_on_rank
from ssl_bench import distributed
from ssl_bench.losses import batch_infonce, cmc_loss, infonce, sinkhorn
from ssl_bench.methods import NNCLR, SwAV
from ssl_bench.methods.deepcluster import MemoryBank
from helpers import tiny_model

B, D, K = 8, 6, 5  # global batch, embedding dim, prototypes
TINY = tiny_model(2, proj_hidden_dim=8, proj_dim=D)


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
