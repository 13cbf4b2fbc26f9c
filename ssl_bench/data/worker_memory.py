"""Keep freed memory in DataLoader workers instead of returning it to the OS after every batch.

torch's CPU allocator has no cache: every tensor is a ``malloc``, and glibc serves blocks above its
mmap threshold (dynamic, from 128 KiB) with a fresh ``mmap`` and ``munmap``s them when freed, so each
batch's views and intermediates (about 10 MB per 16 images at 224 px) are page-faulted in anew. In
the ``files_batched`` workers that cost 2-3 ms of kernel time per image, about a fifth of the
pipeline. Raising the mmap threshold to 32 MiB (glibc's maximum on 64-bit) and the trim threshold to
1 GiB makes freed blocks stay in the heap for the next batch: measured on the 2-core VM, worker
system time went from 2.2-2.5 to 0.7-0.9 ms per image (``benchmarks/folder_throughput.py``, see
RESULTS.md). The resident size stays at the workers' peak working set, which they reach every batch
anyway. Other C libraries (musl, macOS) are left alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt parameter codes (malloc.h)
MMAP_THRESHOLD_BYTES = 32 << 20               # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory(worker_id: int = 0) -> bool:
    """``mallopt`` the thresholds above in this process (a DataLoader ``worker_init_fn``); False
    where the C library is not glibc or refuses."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
