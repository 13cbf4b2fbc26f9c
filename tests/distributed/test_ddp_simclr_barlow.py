"""DDP correctness of the batch-dependent methods: 2 gloo processes with per-process batch B give the
same loss and the same (DDP-averaged) gradients as 1 process with batch 2B.

BatchNorm: torch's SyncBatchNorm refuses CPU tensors ("expected input tensor to be on GPU"), so
these CPU tests cannot use it; instead every BatchNorm layer runs with frozen statistics (eval
mode: the same running mean/var on every rank, a per-sample affine map). Then every operation is
per-sample except the loss's cross-sample terms, which are exactly what is under test: SimCLR's
negatives and Barlow Twins' batch standardisation and cross-correlation, both computed on
tensors gathered across ranks with gradients. (With per-rank BN statistics the two sides differ
by design; on GPUs, ``SyncBatchNorm.convert_sync_batchnorm`` makes them equal, which Lightning
applies with ``trainer.sync_batchnorm: true``.)
"""
import pytest
import torch
import torch.distributed as dist
from torch import nn

from ddp_harness import assert_ranks_match, run_on_ranks
from ssl_bench import distributed
from ssl_bench.methods import METHODS

BATCH, SIZE = 8, 8  # global batch 2B = 8 images of 8x8
WIDTH = 8
SETTINGS = {
    "simclr": {"proj_hidden_dim": 16, "proj_dim": 8, "temperature": 0.2},
    "barlow_twins": {"proj_hidden_dim": 16, "proj_dim": 8, "lambd": 0.05},
}


def _loss_and_grads(name: str, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """This rank's share of the global batch -> (loss, gradients averaged over ranks as DDP does)."""
    torch.manual_seed(0)  # identical initial weights on every rank
    model = METHODS[name](backbone="tiny_cnn", backbone_kwargs={"width": WIDTH}, num_classes=10, **SETTINGS[name])
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()  # frozen statistics, see the module docstring
    w, r = distributed.world_size(), distributed.rank()
    local = [v.chunk(w)[r] for v in views]
    _, out = model.compute_ssl_loss(local)
    loss = out["loss"] if isinstance(out, dict) else out
    loss.backward()
    loss = loss.detach()
    if w > 1:  # the loss DDP optimises (and logs with sync_dist): the mean of the ranks' losses
        dist.all_reduce(loss)
        loss /= w
    grads = {}
    for pname, p in model.named_parameters():
        if p.grad is None:
            continue
        g = p.grad.detach().clone()
        if w > 1:
            dist.all_reduce(g)
            g /= w
        grads[pname] = g
    return loss, grads


def _on_all_methods(views: list[torch.Tensor]) -> dict[str, tuple]:
    return {name: _loss_and_grads(name, views) for name in SETTINGS}


def test_two_ranks_equal_one_process_for_batch_dependent_methods():
    gen = torch.Generator().manual_seed(1)
    views = [torch.randn(BATCH, 3, SIZE, SIZE, generator=gen) for _ in range(2)]
    single = _on_all_methods(views)
    per_rank = run_on_ranks(_on_all_methods, 2, views)
    assert_ranks_match(single, per_rank)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_the_check_can_fail_without_gathering(name, monkeypatch):
    """Without the cross-rank gather (each rank uses only its own half) the 2-rank loss differs:
    the equality above is not vacuous."""
    gen = torch.Generator().manual_seed(1)
    views = [torch.randn(BATCH, 3, SIZE, SIZE, generator=gen) for _ in range(2)]
    full, _ = _loss_and_grads(name, views)
    half, _ = _loss_and_grads(name, [v[: BATCH // 2] for v in views])
    assert not torch.allclose(full, half, rtol=1e-3)
