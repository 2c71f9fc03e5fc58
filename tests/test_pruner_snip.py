"""snip: |θ ⊙ ∂L/∂θ| against gradients computed by hand / by torch.autograd.functional."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from _classic_pruner_helpers import (
    KEEP_AT_999,
    LENET_TOTAL,
    bn_data,
    bn_mlp,
    check_scores_leave_model_unchanged,
    check_scores_on_torch_pruned_model,
    lenet,
    lenet_data,
)
from torch import nn
from torch.func import functional_call

from autosparse.core.errors import ConfigError
from autosparse.data.pruning_data import PruningData
from autosparse.pruners import get_pruner, prune

W = torch.tensor([[0.5, -1.0, 0.25], [-0.75, 0.3, 0.9], [0.1, 0.2, -0.6], [1.2, -0.4, 0.05]], dtype=torch.float64)
B = torch.tensor([0.1, -0.2, 0.0, 0.3], dtype=torch.float64)
X1 = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 0.0]], dtype=torch.float64)
Y1 = torch.tensor([2, 0])
X2 = torch.tensor([[-1.0, 0.0, 3.0], [2.0, 1.0, 1.0], [0.0, -2.0, 0.5]], dtype=torch.float64)
Y2 = torch.tensor([1, 3, 3])


def _softmax_regression() -> nn.Module:
    model = nn.Linear(3, 4).double()
    with torch.no_grad():
        model.weight.copy_(W)
        model.bias.copy_(B)
    return model


def _hand_gradient(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∂ mean CE / ∂W for logits W x + b: (softmax − onehot)ᵀ x / N."""
    p = torch.softmax(x @ W.T + B, dim=1)
    return (p - F.one_hot(y, 4).double()).T @ x / x.shape[0]


def test_snip_equals_hand_gradient_summed_over_batches() -> None:
    data = PruningData([(X1, Y1), (X2, Y2)], num_classes=4)
    # batch means weighted by size over the mean size (2 and 3 images: 0.8 and 1.2), so the sum is the
    # number of batches times the mean over all five images, however they are split
    g = 0.8 * _hand_gradient(X1, Y1) + 1.2 * _hand_gradient(X2, Y2)
    whole = _hand_gradient(torch.cat([X1, X2]), torch.cat([Y1, Y2]))
    torch.testing.assert_close(g, 2 * whole, rtol=1e-12, atol=1e-14)
    raw = (W * g).abs()
    scores = get_pruner("snip")(normalize=False).scores(_softmax_regression(), data)
    torch.testing.assert_close(scores["weight"], raw, rtol=1e-12, atol=1e-14)
    normed = get_pruner("snip")().scores(_softmax_regression(), data)
    torch.testing.assert_close(normed["weight"], raw / raw.sum(), rtol=1e-12, atol=1e-14)


def test_snip_two_layer_matches_functional_jacobian() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(7, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    w1, b1, w2, b2 = (p.detach().clone() for p in model.parameters())

    def loss(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.tanh(x @ a.T + b1) @ c.T + b2, y)

    g1, g2 = torch.autograd.functional.jacobian(loss, (w1, w2))
    scores = get_pruner("snip")(normalize=False).scores(model, (x, y))
    torch.testing.assert_close(scores["0.weight"], (w1 * g1).abs())
    torch.testing.assert_close(scores["2.weight"], (w2 * g2).abs())


def test_batchnorm_scored_in_eval_mode_by_default() -> None:
    model = bn_mlp()
    x, y = bn_data()
    names = ["0.weight", "4.weight", "6.weight"]

    def expected(train: bool) -> dict[str, torch.Tensor]:
        ref = copy.deepcopy(model).train(train)
        if train:  # Dropout would make the reference random; drop it from the comparison
            ref[3].p = 0.0
        params = dict(ref.named_parameters())
        ws = tuple(params[n].detach() for n in names)

        def loss(*w: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(functional_call(ref, {**params, **dict(zip(names, w))}, (x,)), y)

        grads = torch.autograd.functional.jacobian(loss, ws)
        return {n: (w * g).abs() for n, w, g in zip(names, ws, grads)}

    got = get_pruner("snip")(normalize=False).scores(model, (x, y))
    exp = expected(train=False)
    for n in names:
        torch.testing.assert_close(got[n], exp[n])
    model[3].p = 0.0
    got_train = get_pruner("snip")(normalize=False, train_mode=True).scores(model, (x, y))
    exp_train = expected(train=True)
    for n in names:
        torch.testing.assert_close(got_train[n], exp_train[n])
    assert not torch.allclose(got["0.weight"], got_train["0.weight"])


def test_needs_data() -> None:
    assert get_pruner("snip").data_dependent
    with pytest.raises(ConfigError, match="needs data"):
        get_pruner("snip")().scores(lenet(), None)
    with pytest.raises(ConfigError, match="needs data"):
        prune(lenet(), "snip", density=0.1)


def test_exact_count_at_999_sparsity_and_determinism() -> None:
    model = lenet()
    data = lenet_data()
    a = prune(model, "snip", sparsity=0.999, data=data, seed=0)
    b = prune(model, "snip", sparsity=0.999, data=data, seed=0)
    assert a.total == LENET_TOTAL and a.kept == KEEP_AT_999
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_scores_leave_model_unchanged() -> None:
    check_scores_leave_model_unchanged("snip", bn_data())
    check_scores_leave_model_unchanged("snip", bn_data(), train_mode=True)


def test_scores_on_a_torch_pruned_model() -> None:
    check_scores_on_torch_pruned_model("snip", bn_data())


@pytest.mark.parametrize("method", ["snip", "grasp", "iter_snip"])
def test_the_mask_does_not_depend_on_how_the_batch_is_split(method: str) -> None:
    # a DataLoader's short last batch (30 + 10 images) counted as much as a full one: 61 of 182 kept weights moved
    from torch.utils.data import DataLoader, TensorDataset

    import autosparse as A

    torch.manual_seed(0)
    x, y = torch.randn(40, 20), torch.randint(0, 5, (40,))
    net = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5))
    whole = A.prune(copy.deepcopy(net), method, density=0.1, data=(x, y))
    split = A.prune(copy.deepcopy(net), method, density=0.1, data=DataLoader(TensorDataset(x, y), batch_size=30))
    assert all(torch.equal(whole[n], split[n]) for n in whole)
