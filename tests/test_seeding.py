"""Seeded blocks: the same draws for one seed, and the caller's streams back afterwards."""

from __future__ import annotations

import pytest
import torch

from autosparse.core.seeding import seeded


def test_a_seed_fixes_the_draws_and_the_callers_stream_continues(monkeypatch: pytest.MonkeyPatch) -> None:
    reseeded: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)  # what torch.manual_seed also does
    monkeypatch.setattr(torch.cuda, "manual_seed", reseeded.append)
    torch.random.default_generator.manual_seed(99)
    expected_next = torch.rand(3, generator=torch.Generator().manual_seed(99))
    draws = []
    for _ in range(2):
        with seeded(5, torch.device("cpu")):
            draws.append(torch.rand(4))
    assert torch.equal(draws[0], draws[1])
    assert torch.equal(torch.rand(3), expected_next)  # as if the blocks had not run
    assert reseeded == []  # a CPU block leaves every CUDA generator alone


def test_a_device_without_a_usable_backend_takes_the_cpu_path() -> None:
    """fork_rng(device_type="xla") raised where no torch.xla module is registered (review)."""
    draws = []
    for _ in range(2):
        with seeded(3, torch.device("xla")):
            draws.append(torch.rand(2))
    assert torch.equal(draws[0], draws[1])


def test_kept_streams_gives_the_callers_stream_back_unseeded() -> None:
    """The probes' passes (dropout in a train-mode forward) draw from the caller's stream and hand it
    back where it was; nothing is seeded."""
    from autosparse.core.seeding import kept_streams

    torch.random.default_generator.manual_seed(11)
    expected = torch.rand(3, generator=torch.Generator().manual_seed(11))
    with kept_streams(torch.device("cpu")) as accelerators:
        inside = torch.rand(3)
    assert accelerators == []  # nothing to seed on a CPU model
    assert torch.equal(inside, expected)  # the caller's stream, not a seeded one
    assert torch.equal(torch.rand(3), expected)  # and back where it was


def test_a_shuffled_loader_gives_the_seeds_mask_and_leaves_the_callers_stream() -> None:
    """A shuffled DataLoader draws its order from torch's generator as prune reads it: the global
    state, not the seed, chose iter_snip's batches, and the caller's stream moved (helper)."""
    from torch.utils.data import DataLoader, TensorDataset

    import autosparse

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 12, generator=g), torch.arange(40) % 4
    loader = DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True)
    masks = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        before = torch.get_rng_state()
        masks.append(autosparse.prune(model, "iter_snip", density=0.1, data=loader, seed=0, rounds=3))
        assert torch.equal(before, torch.get_rng_state())
    assert all(torch.equal(masks[0][n], masks[1][n]) for n in masks[0])
