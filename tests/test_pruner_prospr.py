"""ProsPr: meta-gradient saliency through a few inner SGD steps."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.data.pruning_data import PruningData
from autosparse.pruners import make_pruner, prune
from autosparse.pruners.prospr import meta_gradient_scores


def lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def lenet_data(n: int = 32, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2 * n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (2 * n,), generator=g)
    return [(x[:n], y[:n]), (x[n:], y[n:])]


def tiny(dtype: torch.dtype = torch.float64) -> nn.Module:
    """4-3-2 MLP with explicitly set weights."""
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).to(dtype)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.5, -0.2, 0.1, 0.3], [-0.4, 0.6, -0.1, 0.2], [0.2, 0.1, -0.7, 0.4]]))
        net[0].bias.copy_(torch.tensor([0.1, -0.1, 0.05]))
        net[2].weight.copy_(torch.tensor([[0.3, -0.5, 0.2], [-0.6, 0.4, 0.1]]))
        net[2].bias.copy_(torch.tensor([0.0, 0.1]))
    return net


def tiny_batches(dtype: torch.dtype = torch.float64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(5, 4, generator=g, dtype=dtype), torch.randint(0, 2, (5,), generator=g)) for _ in range(3)]


def test_zero_inner_steps_is_snip_by_hand() -> None:
    """With M = 0 the meta-gradient is |θ ⊙ ∂L/∂θ|; for a single linear layer g is closed-form."""
    lin = nn.Linear(4, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, -1.0, 0.25, 2.0], [1.5, 0.5, -0.5, 0.0], [-2.0, 1.0, 1.0, -0.5]]))
        lin.bias.zero_()
    x = torch.tensor([[1.0, 2.0, -1.0, 0.5], [0.0, -1.0, 2.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([2, 0])
    # softmax-cross-entropy gradient w.r.t. W, averaged over the batch: (softmax(xWᵀ) − onehot)ᵀ x / B
    p = torch.softmax(x @ lin.weight.detach().T, dim=1)
    g = (p - F.one_hot(y, 3).double()).T @ x / len(x)
    expected = (lin.weight.detach() * g).abs()
    scores = meta_gradient_scores(copy.deepcopy(lin), [(x, y)], inner_steps=0, inner_lr=0.1)
    torch.testing.assert_close(scores["weight"], expected)


def test_zero_inner_steps_equals_theta_g_on_mlp() -> None:
    net, batches = tiny(), tiny_batches()
    x, y = batches[0]
    ref = copy.deepcopy(net)
    F.cross_entropy(ref(x), y).backward()
    pruner = make_pruner("prospr", inner_steps=0)
    scores = pruner.scores(net, PruningData(batches, 2))
    for name, layer in (("0.weight", ref[0]), ("2.weight", ref[2])):
        torch.testing.assert_close(scores[name], (layer.weight * layer.weight.grad).abs().detach())


def _loss_after_steps(net: nn.Module, c: dict[str, torch.Tensor], batches, steps: int, lr: float) -> torch.Tensor:
    """Plain functional SGD on all parameters of a masked copy, for finite differences."""
    params = {k: p.detach().clone() for k, p in net.named_parameters()}
    for k in c:
        params[k] = params[k] * c[k]
    for i in range(steps):
        x, y = batches[i % len(batches)]
        ps = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss = F.cross_entropy(torch.func.functional_call(net, ps, (x,)), y)
        grads = torch.autograd.grad(loss, list(ps.values()))
        params = {k: v.detach() - lr * g for (k, v), g in zip(ps.items(), grads)}
    x, y = batches[steps % len(batches)]
    return F.cross_entropy(torch.func.functional_call(net, params, (x,)), y)


def test_full_meta_gradient_matches_finite_differences() -> None:
    net, batches = tiny(), tiny_batches()
    steps, lr = 2, 0.5
    scores = meta_gradient_scores(copy.deepcopy(net), batches, inner_steps=steps, inner_lr=lr)
    eps = 1e-6
    for name in ("0.weight", "2.weight"):
        shape = dict(net.named_parameters())[name].shape
        for idx in [(0, 0), (1, 2), (shape[0] - 1, shape[1] - 1)]:
            ones = {k: torch.ones_like(p) for k, p in net.named_parameters() if k.endswith("weight")}
            plus, minus = copy.deepcopy(ones), copy.deepcopy(ones)
            plus[name][idx] += eps
            minus[name][idx] -= eps
            fd = (
                _loss_after_steps(net, plus, batches, steps, lr) - _loss_after_steps(net, minus, batches, steps, lr)
            ) / (2 * eps)
            assert float(scores[name][idx]) == pytest.approx(abs(float(fd)), rel=1e-5, abs=1e-9)


def test_first_order_is_theta_times_gradient_after_sgd() -> None:
    """First order treats inner gradients as constants: score = |θ₀ ⊙ ∇L(θ_M)| with θ_M from plain SGD."""
    net, batches = tiny(), tiny_batches()
    steps, lr = 3, 0.3
    scores = meta_gradient_scores(copy.deepcopy(net), batches, inner_steps=steps, inner_lr=lr, first_order=True)
    trained = copy.deepcopy(net)
    opt = torch.optim.SGD(trained.parameters(), lr=lr)
    for i in range(steps):
        opt.zero_grad()
        x, y = batches[i % len(batches)]
        F.cross_entropy(trained(x), y).backward()
        opt.step()
    opt.zero_grad()
    x, y = batches[steps % len(batches)]
    F.cross_entropy(trained(x), y).backward()
    for name, i in (("0.weight", 0), ("2.weight", 2)):
        torch.testing.assert_close(scores[name], (net[i].weight.detach() * trained[i].weight.grad).abs())


def test_first_order_and_full_differ_but_correlate() -> None:
    net, data = lenet(), PruningData(lenet_data(16), 10)
    full = make_pruner("prospr", inner_lr=0.5, inner_momentum=0.9).scores(net, data)
    fo = make_pruner("prospr", inner_lr=0.5, inner_momentum=0.9, first_order=True).scores(net, data)
    a = torch.cat([full[n].flatten() for n in full])
    b = torch.cat([fo[n].flatten() for n in fo])
    assert not torch.allclose(a, b)
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1]
    assert corr > 0.5, corr


def test_exact_count_deterministic_and_model_untouched() -> None:
    net, data = lenet(), lenet_data()
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    m1 = prune(net, "prospr", sparsity=0.999, data=data, seed=3)
    m2 = prune(net, "prospr", sparsity=0.999, data=data, seed=3)
    assert m1.kept == round(0.001 * m1.total) == 266
    assert all(torch.equal(m1[n], m2[n]) for n in m1)
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    # scores() directly must not touch the model either
    make_pruner("prospr").scores(net, PruningData(data, 10))
    assert not net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_iterative_rounds_exact_count() -> None:
    net, data = lenet(), lenet_data(16)
    masks = prune(net, "prospr", sparsity=0.999, data=data, seed=0, rounds=3, inner_steps=1)
    assert masks.kept == 266
    again = prune(net, "prospr", sparsity=0.999, data=data, seed=0, rounds=3, inner_steps=1)
    assert all(torch.equal(masks[n], again[n]) for n in masks)


def test_meta_batch_size_resplits_and_batchnorm_model_runs() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    x, y = torch.randn(12, 1, 8, 8), torch.randint(0, 3, (12,))
    running = net[1].running_mean.clone()
    masks = prune(net, "prospr", density=0.1, data=(x, y), meta_batch_size=4)
    assert masks.kept == round(0.1 * masks.total)
    assert torch.equal(net[1].running_mean, running)


def test_errors() -> None:
    with pytest.raises(ConfigError):
        prune(lenet(), "prospr", density=0.1)
    with pytest.raises(ConfigError):
        make_pruner("prospr").scores(lenet(), None)
    with pytest.raises(ConfigError):
        meta_gradient_scores(tiny(), tiny_batches(), inner_steps=-1, inner_lr=0.1)
