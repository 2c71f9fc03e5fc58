"""The ``imp`` pruner: IRP behind ``autosparse.prune`` (its rounds are tested in test_irp.py)."""

from __future__ import annotations

import pytest
import torch

import autosparse
from autosparse.core.errors import ConfigError
from autosparse.pruners import make_pruner

QUICK = {"dataset": "digits", "n_train": 100, "epochs": 0.2}


def _model() -> torch.nn.Module:
    return autosparse.build_model("lenet_300_100", (1, 8, 8), 10, seed=0)


def test_scope_uniform_keeps_the_same_share_of_every_layer_and_erk_is_refused() -> None:
    """`scope` was accepted and ignored: every scope gave the global mask (helper)."""
    masks = autosparse.prune(_model(), "imp", density=0.3, scope="uniform", **QUICK)
    assert [round(float(m.float().mean()), 3) for m in masks.values()] == [0.3, 0.3, 0.3]
    overall = autosparse.prune(_model(), "imp", density=0.3, **QUICK)
    assert len({round(float(m.float().mean()), 3) for m in overall.values()}) > 1  # global: shares differ
    with pytest.raises(ConfigError, match="scope global or uniform"):
        autosparse.prune(_model(), "imp", density=0.3, scope="erk", **QUICK)
    with pytest.raises(ConfigError, match="use it with scope global"):  # before any data loads (review)
        make_pruner("imp", dataset="digits", criterion="flow", scope="uniform")


def test_the_snip_criterion_scores_on_the_batch_given_or_one_of_the_training_set() -> None:
    """It failed after a round of training, asking for a pruning batch it had been given (helper)."""
    x, y = torch.randn(20, 1, 8, 8), torch.arange(20) % 10
    given = autosparse.prune(_model(), "imp", density=0.5, criterion="snip", data=(x, y), **QUICK)
    own = autosparse.prune(_model(), "imp", density=0.5, criterion="snip", **QUICK)
    assert given.kept == own.kept == round(0.5 * given.total)
    assert any(not torch.equal(given[n], own[n]) for n in given)  # scored on different batches


def test_a_loaded_dataset_is_refused_naming_what_imp_takes() -> None:
    with pytest.raises(ConfigError, match="registered dataset's name"):
        autosparse.prune(_model(), "imp", density=0.5, dataset=autosparse.load_dataset("digits", n_train=100))
