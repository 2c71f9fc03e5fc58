"""A block of work on seeded random streams that hands the caller's streams back afterwards.

Why not ``torch.manual_seed`` inside ``torch.random.fork_rng(devices=[])``, the pattern this replaced:
``manual_seed`` reseeds every CUDA generator as well, and ``fork_rng([])`` restores none of them, so
on a GPU machine ``prune`` or ``build_model(seed=)`` gave the caller's CUDA stream back reset to the
seed. Here only the CPU generator and, for work running on a CUDA device, that device's generator
are seeded, and both are restored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with torch's CPU generator (and ``device``'s, when it is an accelerator) seeded
    with ``seed``; the caller's states of those generators are back after it."""
    kind = device.type if device is not None else "cpu"
    if kind not in ("cpu", "cuda", "meta"):
        # MPS, XPU…: that backend's generator forked and, with the CPU's, seeded by torch.manual_seed (no
        # CUDA on such a machine to reset), so a mask made there is seeded as before (review)
        index = device.index if device is not None and device.index is not None else 0
        with torch.random.fork_rng(devices=[index], device_type=kind):
            torch.manual_seed(seed)
            yield
        return
    cuda: list[int] = []
    if kind == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]  # type: ignore[union-attr]
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield
