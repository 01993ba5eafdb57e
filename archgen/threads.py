"""A deliberate torch thread count for a block of work, restored afterwards.

Why: torch's default intra-op pool has one thread per core, and on a machine that
is busy with other processes those threads wait on each other at every operation.
The small networks archgen runs (predictors, generators, proxy-sized training) gain
little from more threads even on an idle machine, and lose a lot on a busy one: on a
shared 2-core machine with two CPU-bound processes beside it, an FBNet request
(``generate(device="pixel3", max_latency_ms=25, n=5)``) took 72-105 s on two threads
and 21-28 s on one. A fixed count also makes float reductions, and
so results, the same on every path (serial or Ray).

``torch.set_num_threads`` is process-wide: the count holds for every thread of the
process while the block runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .validation import check_count

#: the most intra-op threads one block may ask for
MAX_THREADS = 1024


def check_threads(threads: object, name: str = "threads") -> int | None:
    """``threads`` as an int in ``[1, MAX_THREADS]``, or None (leave torch's setting alone)."""
    if threads is None:
        return None
    return check_count(name, threads, minimum=1, maximum=MAX_THREADS)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (None: as they are), then restore the count."""
    threads = check_threads(threads)
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == threads:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
