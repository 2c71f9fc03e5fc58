"""random / random_erk: exact counts, ERK allocation, determinism, no side effects."""

from __future__ import annotations

import torch
from _classic_pruner_helpers import KEEP_AT_999, LENET_TOTAL, check_scores_leave_model_unchanged, lenet

from autosparse.core.allocation import erk_counts
from autosparse.pruners import get_pruner, prune


def test_registered_with_reference_defaults() -> None:
    rnd, erk = get_pruner("random"), get_pruner("random_erk")
    assert not rnd.data_dependent and not erk.data_dependent
    assert rnd.Config().scope == "global"
    assert erk.Config().scope == "erk"
    assert rnd.description and erk.description


def test_scores_are_cpu_float_of_weight_shape() -> None:
    model = lenet()
    scores = get_pruner("random")().scores(model, None, seed=0)
    assert list(scores) == ["1.weight", "3.weight", "5.weight"]
    for name, s in scores.items():
        assert s.shape == dict(model.named_parameters())[name].shape
        assert s.dtype == torch.float32 and s.device.type == "cpu"


def test_exact_count_at_999_sparsity_and_determinism() -> None:
    model = lenet()
    for method in ("random", "random_erk"):
        a = prune(model, method, sparsity=0.999, seed=7)
        b = prune(model, method, sparsity=0.999, seed=7)
        c = prune(model, method, sparsity=0.999, seed=8)
        assert a.total == LENET_TOTAL and a.kept == KEEP_AT_999
        assert all(torch.equal(a[n], b[n]) for n in a)
        assert any(not torch.equal(a[n], c[n]) for n in a)


def test_scores_deterministic_without_prune_and_independent_of_global_rng() -> None:
    model = lenet()
    pruner = get_pruner("random")()
    torch.manual_seed(1)
    a = pruner.scores(model, None, seed=5)
    torch.manual_seed(2)
    b = pruner.scores(model, None, seed=5)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_random_erk_uses_erk_layer_counts() -> None:
    model = lenet()
    masks = prune(model, "random_erk", density=0.01, seed=0)
    shapes = {n: m.shape for n, m in masks.items()}
    assert {n: int(m.sum()) for n, m in masks.items()} == erk_counts(shapes, 0.01)


def test_random_global_keeps_layers_roughly_proportionally() -> None:
    masks = prune(lenet(), "random", density=0.1, seed=0)
    for m in masks.values():  # binomial: 10% ± a few standard deviations
        assert abs(m.float().mean().item() - 0.1) < 0.03


def test_scores_leave_model_unchanged() -> None:
    check_scores_leave_model_unchanged("random")
    check_scores_leave_model_unchanged("random_erk")
