"""Per-layer work on all cores without torch's intra-op thread barriers.

Why a module of its own: the feature pass, the allocation's per-layer top-k and the scorer all
do many medium-sized ops per layer; torch's intra-op threads wait for each other after every
op, and on a loaded machine a stall of one stalls all. Whole layers per thread need no barrier.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

_local = threading.local()  # .workers: the thread count map_layers uses inside single_threaded_torch()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous setting after."""
    prev = torch.get_num_threads()
    if n != prev:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != prev:
            torch.set_num_threads(prev)


@contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Torch ops in the block run on one thread; :func:`map_layers` inside still uses every thread.

    Why: on a shared, loaded machine torch's intra-op threads wait for each other after every
    op, and a stall of one stalls all (the ``autos`` scorer ran 4x slower with 2 torch threads
    than with 1 on the 2-core dev box). Work done here is parallel where it is large, across
    layers or blocks (:func:`map_layers`), which needs no barrier.
    """
    prev = getattr(_local, "workers", None)
    _local.workers = prev or torch.get_num_threads()
    try:
        with torch_threads(1):
            yield
    finally:
        _local.workers = prev


def map_layers(
    fn: Callable[[T], R], items: Sequence[T], *, sizes: Sequence[int] | None = None, workers: int | None = None
) -> list[R]:
    """``[fn(x) for x in items]``, one item per thread, with torch single-threaded inside each.

    Why: per-layer work (sorts, reductions, a small MLP over millions of rows) is many medium
    ops, and torch's intra-op threads stall on a loaded machine (see :func:`single_threaded_torch`).
    Whole items per thread need no barrier and still use ``torch.get_num_threads()`` cores
    (torch and numpy release the GIL). Each item runs single-threaded whatever the thread
    count, so results do not depend on it. ``sizes`` (e.g. numels) start the largest items
    first, for balance; results keep ``items``' order. Called from a worker, it runs serially.
    """
    n = len(items)
    workers = min(n, workers or getattr(_local, "workers", None) or torch.get_num_threads())
    with single_threaded_torch():
        if workers <= 1:
            return [fn(x) for x in items]
        order = sorted(range(n), key=lambda i: -sizes[i]) if sizes is not None else list(range(n))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {i: pool.submit(fn, items[i]) for i in order}
            return [futures[i].result() for i in range(n)]
