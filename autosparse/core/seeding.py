"""A block of work on seeded random streams that hands the caller's streams back afterwards.

Why not ``torch.manual_seed`` inside ``torch.random.fork_rng(devices=[])``, the pattern this replaced:
``manual_seed`` reseeds every CUDA generator as well, and ``fork_rng([])`` restores none of them, so
on a GPU machine ``prune`` or ``build_model(seed=)`` gave the caller's CUDA stream back reset to the
seed. Here only the CPU generator and, for work running on an accelerator (CUDA, MPS, XPU), that
device's generator are seeded, and both are restored.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with torch's CPU generator (and ``device``'s, when it is an accelerator) seeded
    with ``seed``; the caller's states of those generators are back after it."""
    with kept_streams(device) as backends:
        torch.random.default_generator.manual_seed(seed)
        for seed_device in backends:
            seed_device(seed)
        yield


@contextmanager
def kept_streams(device: torch.device | None = None) -> Iterator[list[Callable[[int], None]]]:
    """Run the block on the caller's random streams and give them back as they were: the CPU
    generator and, for work on an accelerator, that device's. Yields the accelerator's seeding
    function (none on the CPU), for :func:`seeded`.

    Why not ``fork_rng(devices=[])``: a pass that draws on the model's device (dropout in a
    train-mode probe on a GPU) would move the caller's CUDA stream, which that call leaves out.
    """
    kind = device.type if device is not None else "cpu"
    backend = getattr(torch, kind, None) if kind in ("mps", "xpu") else None
    available = getattr(backend, "is_available", None)
    if backend is not None and callable(available) and available():
        # that backend's generator given back by hand (fork_rng's call of get_rng_state(0) differs
        # across torch versions for MPS); other device types (xla, lazy…) take the CPU path
        cpu, state = torch.random.get_rng_state(), backend.get_rng_state()
        try:
            yield [backend.manual_seed]
        finally:
            torch.random.set_rng_state(cpu)
            backend.set_rng_state(state)
        return
    cuda: list[int] = []
    if kind == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]  # type: ignore[union-attr]
    with torch.random.fork_rng(devices=cuda):
        yield [functools.partial(_seed_cuda, index) for index in cuda]


def _seed_cuda(index: int, seed: int) -> None:
    with torch.cuda.device(index):
        torch.cuda.manual_seed(seed)
