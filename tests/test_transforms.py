"""Frankle et al. (2021) sanity checks: layerwise shuffle, reinitialisation, inversion."""

from __future__ import annotations

import pytest
import torch
from _classic_pruner_helpers import lenet
from torch import nn

from autosparse.core.allocation import allocate
from autosparse.core.errors import ConfigError
from autosparse.core.masks import Masks
from autosparse.pruners import prune
from autosparse.pruners.sanity import invert, reinitialize, shuffle_within_layers


def test_shuffle_keeps_per_layer_counts_and_moves_positions() -> None:
    masks = prune(lenet(), "magnitude", density=0.05)
    shuffled = shuffle_within_layers(masks, seed=0)
    for n in masks:
        assert int(shuffled[n].sum()) == int(masks[n].sum())
        assert shuffled[n].shape == masks[n].shape and shuffled[n].dtype == torch.bool
        overlap = int((shuffled[n] & masks[n]).sum())
        assert overlap < int(masks[n].sum())  # positions changed (expected overlap is ~5%)
    assert shuffled.kept == masks.kept
    assert shuffled.meta["transform"] == "shuffle_within_layers" and shuffled.meta["method"] == "magnitude"
    again = shuffle_within_layers(masks, seed=0)
    other = shuffle_within_layers(masks, seed=1)
    assert all(torch.equal(again[n], shuffled[n]) for n in masks)
    assert any(not torch.equal(other[n], shuffled[n]) for n in masks)


def _layer_values(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_reinitialize_permute_keeps_each_layers_distribution_exactly() -> None:
    model = lenet()
    before = _layer_values(model)
    out = reinitialize(model, seed=0)
    assert out is model
    after = _layer_values(model)
    for n in ("1.weight", "3.weight", "5.weight"):
        assert not torch.equal(after[n], before[n])
        assert torch.equal(after[n].reshape(-1).sort().values, before[n].reshape(-1).sort().values)
    for n in ("1.bias", "3.bias", "5.bias"):
        assert torch.equal(after[n], before[n])  # biases are not prunable weights: untouched
    twin = lenet()
    reinitialize(twin, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(twin.parameters(), model.parameters()))


def test_reinitialize_normal_matches_layer_std() -> None:
    model = lenet()
    before = _layer_values(model)
    reinitialize(model, seed=0, method="normal")
    for n in ("1.weight", "3.weight"):
        new, old = model.state_dict()[n], before[n]
        assert float(new.std()) == pytest.approx(float(old.std()), rel=0.02)
        assert abs(float(new.mean())) < 0.01
        assert not torch.equal(new, old)
    with pytest.raises(ConfigError, match="permute"):
        reinitialize(model, method="xavier")  # type: ignore[arg-type]


def test_reinitialize_a_masked_model_redraws_weight_orig_and_keeps_mask() -> None:
    model = lenet()
    masks = prune(model, "random", density=0.1, seed=0, apply=True)
    orig = model[1].weight_orig.detach().clone()
    reinitialize(model, seed=3)
    assert not torch.equal(model[1].weight_orig, orig)
    assert torch.equal(model[1].weight_mask.bool(), masks["1.weight"])
    x = torch.randn(2, 1, 28, 28)
    model(x)  # the hook recomputes weight = weight_orig * mask
    assert torch.equal(model[1].weight == 0, ~masks["1.weight"] | (model[1].weight_orig == 0))


def test_invert_keeps_the_least_salient_weights() -> None:
    scores = {"a": torch.tensor([[0.3, -0.2], [0.9, 0.1]]), "b": torch.tensor([0.5, -1.0, 0.0])}
    kept = allocate(invert(scores), density=3 / 7)
    assert kept["a"].tolist() == [[False, True], [False, False]]
    assert kept["b"].tolist() == [False, True, True]
    assert isinstance(kept, Masks)
