"""FeatureQueue: FIFO order, capacity, side data, checkpoint state, and identical queues on every rank."""
import pytest
import torch

from ddp_harness import run_on_ranks
from ssl_bench import distributed
from ssl_bench.methods.queue import FeatureQueue


def test_holds_the_last_keys_in_order():
    size, batch, dim = 10, 3, 4
    queue = FeatureQueue(size, dim, extras=("indices",))
    seen = []
    for step in range(7):
        keys = torch.randn(batch, dim)
        queue.enqueue(keys, indices=torch.arange(batch) + step * batch)
        seen.append(keys)
        expected = torch.cat(seen)[-size:]
        assert len(queue) == min((step + 1) * batch, size)
        torch.testing.assert_close(queue.contents(), expected, rtol=0, atol=0)
        torch.testing.assert_close(queue.extra("indices"), (torch.arange((step + 1) * batch))[-size:])
    assert queue.is_full


def test_batch_larger_than_queue_keeps_the_newest():
    queue = FeatureQueue(4, 2)
    keys = torch.arange(12.0).view(6, 2)
    queue.enqueue(keys)
    torch.testing.assert_close(queue.contents(), keys[-4:])


def test_state_dict_round_trip_continues_identically():
    a = FeatureQueue(8, 3, extras=("labels",))
    for _ in range(3):
        a.enqueue(torch.randn(3, 3), labels=torch.randint(0, 9, (3,)))
    b = FeatureQueue(8, 3, extras=("labels",))
    b.load_state_dict(a.state_dict())
    nxt, lab = torch.randn(3, 3), torch.randint(0, 9, (3,))
    a.enqueue(nxt, labels=lab)
    b.enqueue(nxt, labels=lab)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        torch.testing.assert_close(va, vb, rtol=0, atol=0)


def test_bad_input_is_rejected():
    queue = FeatureQueue(4, 2, extras=("labels",))
    with pytest.raises(ValueError, match=r"keys must be \(B, 2\)"):
        queue.enqueue(torch.randn(3, 5), labels=torch.zeros(3))
    with pytest.raises(ValueError, match="expected extras"):
        queue.enqueue(torch.randn(3, 2))
    with pytest.raises(ValueError, match="size and dim"):
        FeatureQueue(0, 2)


def _fill_on_rank(batches: torch.Tensor) -> torch.Tensor:
    """Each rank enqueues its half of every step's global batch."""
    queue = FeatureQueue(12, batches.shape[-1])
    r, w = distributed.rank(), distributed.world_size()
    for step_batch in batches:
        queue.enqueue(step_batch.chunk(w)[r])
    return queue.contents()


def test_two_ranks_hold_the_single_process_queue():
    batches = torch.randn(5, 4, 3)  # 5 steps of a global batch of 4
    single = _fill_on_rank(batches)
    per_rank = run_on_ranks(_fill_on_rank, 2, batches)
    for queue in per_rank:
        torch.testing.assert_close(queue, single, rtol=0, atol=0)
    # keys of both ranks are present: rank 1's rows of the last step are the newest keys
    torch.testing.assert_close(per_rank[0][-2:], batches[-1][2:])
