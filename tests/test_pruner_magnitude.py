"""magnitude: |θ| against explicitly set weights, exact counts, no side effects."""

from __future__ import annotations

import torch
from _classic_pruner_helpers import (
    KEEP_AT_999,
    LENET_TOTAL,
    check_scores_leave_model_unchanged,
    check_scores_on_torch_pruned_model,
    lenet,
)
from torch import nn

from autosparse.core.masks import Masks
from autosparse.pruners import get_pruner, prune


def _tiny() -> nn.Module:
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, -2.0, 0.1], [-0.3, 0.0, 1.5]]))
        model[2].weight.copy_(torch.tensor([[-1.0, 0.2], [0.7, -0.05]]))
    return model


def test_scores_are_absolute_weights() -> None:
    model = _tiny()
    scores = get_pruner("magnitude")().scores(model, None)
    assert torch.equal(scores["0.weight"], torch.tensor([[0.5, 2.0, 0.1], [0.3, 0.0, 1.5]]))
    assert torch.equal(scores["2.weight"], torch.tensor([[1.0, 0.2], [0.7, 0.05]]))
    assert not get_pruner("magnitude").data_dependent


def test_global_mask_keeps_largest_magnitudes() -> None:
    masks = prune(_tiny(), "magnitude", density=0.4)  # 4 of 10
    assert masks["0.weight"].tolist() == [[False, True, False], [False, False, True]]
    assert masks["2.weight"].tolist() == [[True, False], [True, False]]


def test_torch_pruned_weights_score_zero() -> None:
    model = _tiny()
    Masks({"0.weight": torch.ones(2, 3, dtype=torch.bool), "2.weight": torch.eye(2, dtype=torch.bool)}).apply(model)
    scores = get_pruner("magnitude")().scores(model, None)
    assert torch.equal(scores["2.weight"], torch.tensor([[1.0, 0.0], [0.0, 0.05]]))
    assert torch.equal(scores["0.weight"], torch.tensor([[0.5, 2.0, 0.1], [0.3, 0.0, 1.5]]))


def test_exact_count_at_999_sparsity_and_determinism() -> None:
    model = lenet()
    a = prune(model, "magnitude", sparsity=0.999, seed=0)
    b = prune(model, "magnitude", sparsity=0.999, seed=1)  # data-free and seed-free
    assert a.total == LENET_TOTAL and a.kept == KEEP_AT_999
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_scores_leave_model_unchanged() -> None:
    check_scores_leave_model_unchanged("magnitude")


def test_scores_on_a_torch_pruned_model() -> None:
    check_scores_on_torch_pruned_model("magnitude")
