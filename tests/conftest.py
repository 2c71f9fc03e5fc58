"""Shared test set-up: one torch thread per xdist worker (two workers on two cores)."""

from __future__ import annotations

import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated datasets (MNIST-1D) are cached per test session, never in the user's home."""
    if "AUTOSPARSE_CACHE" not in os.environ:
        monkeypatch.setenv("AUTOSPARSE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
