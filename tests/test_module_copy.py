"""fast_deepcopy must give what copy.deepcopy gives, on every kind of model a user brings."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from autosparse.core.layers import safe_deepcopy
from autosparse.core.module_copy import fast_deepcopy
from autosparse.models import build_model


def _same(a: nn.Module, b: nn.Module) -> None:
    assert repr(a) == repr(b)
    assert type(a) is type(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0)
    assert [m.training for m in a.modules()] == [m.training for m in b.modules()]
    assert [p.requires_grad for p in a.parameters()] == [p.requires_grad for p in b.parameters()]


def _independent(original: nn.Module, copied: nn.Module) -> None:
    """Nothing done to the copy reaches the original: weights, buffers, hooks, mode."""
    before = {k: v.clone() for k, v in original.state_dict().items()}
    with torch.no_grad():
        for p in copied.parameters():
            p.add_(1.0)
        for b in copied.buffers():
            if b.is_floating_point():
                b.add_(1.0)
    copied.register_forward_hook(lambda *_: None)
    copied.train(not original.training)
    for key, value in original.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert not original._forward_hooks
    originals = {p.data_ptr() for p in original.parameters()}
    assert not originals & {p.data_ptr() for p in copied.parameters()}


@pytest.mark.parametrize(
    "name, shape",
    [
        ("lenet_300_100", (1, 28, 28)),
        ("resnet20", (3, 32, 32)),
        ("vgg11", (3, 32, 32)),
        ("vit_tiny", (1, 28, 28)),
        ("tv:mobilenet_v3_small", (3, 32, 32)),
    ],
)
def test_equals_deepcopy_and_is_independent(name: str, shape: tuple[int, ...]) -> None:
    kwargs = {"depth": 1, "dim": 32} if name == "vit_tiny" else {}
    model = build_model(name, shape, 10, seed=0, **kwargs).eval()
    fast = fast_deepcopy(model)
    _same(fast, copy.deepcopy(model))
    x = torch.randn(2, *shape)
    torch.testing.assert_close(fast(x), model(x), rtol=0, atol=0)
    _independent(model, fast)


def test_tied_weights_stay_tied_and_shared_modules_stay_shared() -> None:
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 4))
    model[3].weight = model[0].weight  # a tied parameter across two modules
    fast = fast_deepcopy(model)
    assert fast[0] is fast[2]
    assert fast[3].weight is fast[0].weight
    assert fast[0].weight is not model[0].weight


def test_torch_pruned_model_copies_with_its_hooks() -> None:
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    torch_prune.random_unstructured(model[0], "weight", amount=0.5)
    copied = safe_deepcopy(model)
    assert hasattr(copied[0], "weight_orig") and hasattr(copied[0], "weight_mask")
    assert copied[0]._forward_pre_hooks is not model[0]._forward_pre_hooks
    x = torch.randn(3, 6)
    torch.testing.assert_close(copied(x), model(x), rtol=0, atol=0)
    with torch.no_grad():
        copied[0].weight_mask.zero_()
    copied(x)  # the copy's hook recomputes from the copy's own mask
    assert bool((copied[0].weight == 0).all())
    assert bool((model[0].weight != 0).any())


def test_classes_with_their_own_copy_protocol_are_left_to_deepcopy() -> None:
    traced = torch.fx.symbolic_trace(nn.Sequential(nn.Linear(3, 3), nn.ReLU()))
    fast = fast_deepcopy(traced)
    assert isinstance(fast, torch.fx.GraphModule)
    x = torch.randn(2, 3)
    torch.testing.assert_close(fast(x), traced(x), rtol=0, atol=0)
    lstm = nn.LSTM(4, 3)
    fast_lstm = fast_deepcopy(lstm)
    _same(fast_lstm, copy.deepcopy(lstm))
    seq = torch.randn(5, 2, 4)
    torch.testing.assert_close(fast_lstm(seq)[0], lstm(seq)[0], rtol=0, atol=0)
    with torch.no_grad():
        fast_lstm.weight_ih_l0.zero_()  # the flat-weights list follows the copy's own parameters
    assert not torch.allclose(fast_lstm(seq)[0], lstm(seq)[0])


def test_mutable_attributes_are_not_shared() -> None:
    model = nn.Linear(2, 2)
    model.history = [1, 2]  # a user's mutable attribute
    model.settings = {"a": [0]}
    fast = fast_deepcopy(model)
    fast.history.append(3)
    fast.settings["a"].append(1)
    assert model.history == [1, 2] and model.settings == {"a": [0]}
