"""Masks that change θ0 (rescaling, branch scales): applied once, on the right weights, saved and loaded."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from autosparse.core.errors import MaskError
from autosparse.core.init_transform import InitTransform, fingerprint, rescale_factors
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks, remove_masks


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))


def _masks(model: nn.Module, density: float = 0.3, seed: int = 0) -> Masks:
    g = torch.Generator().manual_seed(seed)
    return Masks({layer.name: torch.rand(layer.shape, generator=g) < density for layer in prunable_layers(model)})


def _rescaled(model: nn.Module, masks: Masks) -> Masks:
    factors = rescale_factors(model, masks, "unit")
    return masks.with_init(InitTransform(factors=factors, fingerprint=fingerprint(model), granularity="unit"))


def test_rescaling_restores_each_units_input_energy() -> None:
    model = _mlp()
    masks = _rescaled(model, _masks(model))
    dense = {layer.name: layer.parameter.detach().pow(2).sum(1) for layer in prunable_layers(model)}
    masks.apply(model)
    for layer in prunable_layers(model):
        kept = layer.weight.detach().pow(2).sum(1)
        alive = masks[layer.name].any(1)
        torch.testing.assert_close(kept[alive], dense[layer.name][alive], rtol=1e-5, atol=0)


def test_second_apply_does_not_rescale_again_and_warns(caplog) -> None:
    model = _mlp()
    masks = _rescaled(model, _masks(model))
    masks.apply(model)
    once = model[0].weight.detach().clone()
    with caplog.at_level(logging.WARNING):
        masks.apply(model)
    assert torch.equal(model[0].weight.detach(), once)
    assert any("already applied" in r.message for r in caplog.records)


def test_a_model_reset_to_theta0_is_rescaled_again() -> None:
    """The marker outlived load_state_dict(θ0): a seed loop's second run trained from the plain θ0."""
    model = _mlp()
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    masks = _rescaled(model, _masks(model))
    masks.apply(model)
    first = model[0].weight.detach().clone()
    remove_masks(model)
    model.load_state_dict(theta0)
    masks.apply(model)
    assert torch.equal(model[0].weight.detach(), first)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_near_dense_rescale_in_low_precision_is_applied_once(dtype: torch.dtype) -> None:
    """Weights still as prepared were read as θ0 again within bfloat16's tolerance and rescaled twice."""
    threads = torch.get_num_threads()
    try:
        for seed in range(3):
            torch.manual_seed(seed)
            model = nn.Sequential(nn.Linear(3072, 1000), nn.ReLU(), nn.Linear(1000, 300)).to(dtype)
            masks = _rescaled(model, _masks(model, 0.9999 if dtype == torch.float16 else 0.999, seed))
            torch.set_num_threads(2)
            assert masks.prepare(model)
            once = [p.detach().clone() for p in model.parameters()]
            torch.set_num_threads(1)  # the float64 sums differ in their last bits at another thread count
            assert not masks.prepare(model)
            assert all(torch.equal(a, b.detach()) for a, b in zip(once, model.parameters()))
    finally:
        torch.set_num_threads(threads)


def test_two_rescales_of_one_theta0_are_told_apart() -> None:
    """Masks at two densities from one θ0 had one token: the second's factors were skipped as done."""
    model = _mlp()
    a, b = _rescaled(model, _masks(model, 0.5)), _rescaled(model, _masks(model, 0.1))
    assert a.init.token != b.init.token
    fresh = _mlp()
    b.apply(fresh)
    expected = fresh[0].weight.detach().clone()
    a.apply(model)
    remove_masks(model)
    with pytest.raises(MaskError, match="freshly initialised"):  # a's rescaled weights are not b's θ0
        b.apply(model)
    assert not torch.equal(model[0].weight.detach(), expected)


def test_other_weights_are_refused_not_rescaled() -> None:
    masks = _rescaled(_mlp(0), _masks(_mlp(0)))
    other = _mlp(1)  # another seed: not the θ0 the factors were computed on
    with pytest.raises(MaskError, match="freshly initialised"):
        masks.apply(other)
    masks.without_init().apply(other)  # plain masks fit any weights of the right shapes


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_the_same_weights_cast_to_another_dtype_are_accepted_others_are_not(dtype: torch.dtype) -> None:
    masks = _rescaled(_mlp(0), _masks(_mlp(0)))
    masks.apply(_mlp(0).to(dtype))  # θ0 cast after pruning: the fingerprint allows the cast's rounding
    with pytest.raises(MaskError, match="freshly initialised"):
        masks.apply(_mlp(1).to(dtype))


def test_save_load_apply_gives_the_same_weights_as_apply(tmp_path) -> None:
    a, b = _mlp(), _mlp()
    masks = _rescaled(a, _masks(a))
    masks.save(tmp_path / "m")
    loaded = Masks.load(tmp_path / "m")
    assert loaded.init is not None and set(loaded.init.factors) == set(masks.init.factors)
    masks.apply(a)
    loaded.apply(b)
    for x, y in zip(prunable_layers(a), prunable_layers(b), strict=True):
        assert torch.equal(x.weight, y.weight)


def test_saving_plain_masks_over_rescaled_ones_drops_the_stale_factors(tmp_path) -> None:
    model = _mlp()
    masks = _rescaled(model, _masks(model))
    masks.save(tmp_path / "m")
    masks.without_init().save(tmp_path / "m")
    assert Masks.load(tmp_path / "m").init is None


def test_branch_scale_hooks_scale_the_module_output_once() -> None:
    model = _mlp()
    x = torch.randn(3, 20)
    before = model(x)
    masks = Masks({layer.name: torch.ones(layer.shape, dtype=torch.bool) for layer in prunable_layers(model)})
    masks = masks.with_init(InitTransform(branch_scale={"4": 0.5}, fingerprint=fingerprint(model)))
    masks.apply(model)
    masks.prepare(model)
    torch.testing.assert_close(model(x), before * 0.5)


def test_attention_out_proj_trains_under_torch_pruning() -> None:
    """MultiheadAttention never calls out_proj, so its pruning hook must be refreshed by the parent."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True, dropout=0.0)
    masks = _masks(layer, 0.5)
    masks.apply(layer)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(3):
        loss = layer(torch.randn(4, 5, 16)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for pl in prunable_layers(layer):
        assert torch.all(pl.weight[~masks[pl.name]] == 0), pl.name


def test_a_checkpoint_loads_with_its_branch_scales_through_without_init(tmp_path) -> None:
    """README's checkpoint flow, ``without_init().apply(fresh)`` then ``load_state_dict``, dropped
    robust's 1/√L branch scales with the θ0 rescale: the reloaded ResNet's logits were off by up to 87."""
    model = _mlp()
    masks = _rescaled(model, _masks(model))
    masks = masks.with_init(InitTransform(masks.init.factors, {"2": 0.25}, masks.init.fingerprint, "unit"))
    masks.save(tmp_path / "m")
    masks.apply(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 20)).pow(2).mean().backward()
        opt.step()
    state = model.state_dict()
    x = torch.randn(5, 20)
    fresh = _mlp(1)  # other weights: the θ0 rescale must not apply, the branch scale must
    plain = Masks.load(tmp_path / "m").without_init()
    assert plain.init is not None and not plain.init.factors and plain.init.branch_scale == {"2": 0.25}
    plain.apply(fresh)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh(x), model(x))


def test_prepare_then_apply_is_one_preparation_without_a_warning(caplog) -> None:
    model, twin = _mlp(), _mlp()
    masks = _rescaled(model, _masks(model))
    with caplog.at_level(logging.WARNING):
        masks.prepare(model)
        masks.apply(model)  # the README's order for attaching masks yourself, then apply
    assert not any("already applied" in r.message for r in caplog.records)
    masks.apply(twin)
    assert torch.equal(model[0].weight, twin[0].weight)


def test_branch_scales_alone_leave_a_prepared_models_token(tmp_path) -> None:
    """`train(keep_masks_attached=True)` ends with `without_init().apply`: its branch-only transform took over
    the model's token, and the masks' own apply afterwards read the trained weights as foreign."""
    model = _mlp()
    masks = _rescaled(model, _masks(model))
    masks = masks.with_init(InitTransform(masks.init.factors, {"2": 0.25}, masks.init.fingerprint, "unit"))
    masks.apply(model)
    with torch.no_grad():
        model[0].weight_orig.add_(0.1)  # trained
    masks.without_init().apply(model)
    masks.apply(model)  # raised "does not hold the weights these masks were computed on"
