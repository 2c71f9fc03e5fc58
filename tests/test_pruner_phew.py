"""PHEW: masks grown from random walks biased by |θ|."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from autosparse.core.allocation import allocate
from autosparse.core.errors import ConfigError
from autosparse.pruners import make_pruner, prune
from autosparse.pruners.phew import _map_unit, walk_order


def lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


@pytest.mark.parametrize("sparsity", [0.99, 0.999])
def test_exact_count_no_empty_layer_deterministic(sparsity: float) -> None:
    net = lenet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    m1 = prune(net, "phew", sparsity=sparsity, seed=0)
    m2 = prune(net, "phew", sparsity=sparsity, seed=0)
    m3 = prune(net, "phew", sparsity=sparsity, seed=1)
    assert m1.kept == round((1 - sparsity) * m1.total)
    assert m1.empty_layers() == []
    assert all(torch.equal(m1[n], m2[n]) for n in m1)
    assert any(not torch.equal(m1[n], m3[n]) for n in m1)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def _dangling(masks, names) -> int:
    """Kept edges whose path does not continue: an output unit with no kept edge out of it in the
    next layer, or an input unit with no kept edge into it from the previous layer."""
    bad = 0
    for a, b in itertools.pairwise(names):
        out_a = masks[a].any(dim=1)  # units of layer a's output that receive a kept edge
        in_b = masks[b].any(dim=0)  # units of layer b's input that send a kept edge
        bad += int((out_a & ~in_b).sum()) + int((in_b & ~out_a).sum())
    return bad


def test_kept_edges_form_input_output_paths() -> None:
    """Whole paths are added, so only the last (trimmed) walk can leave one dangling edge."""
    net = lenet()
    names = ["1.weight", "3.weight", "5.weight"]
    for density in (0.002, 0.01, 0.05):
        masks = prune(net, "phew", density=density, seed=0)
        assert _dangling(masks, names) <= 1


def test_walks_prefer_heavy_edges() -> None:
    net = lenet()
    masks = prune(net, "phew", density=0.01, seed=0)
    for i in (1, 3):
        w = net[i].weight.detach().abs()
        assert float(w[masks[f"{i}.weight"]].mean()) > 1.3 * float(w.mean())


def test_transition_follows_weight_magnitude() -> None:
    """From one input unit the next hop is drawn ∝ |w|: a 9:1 weight ratio gives ~90% of walks."""
    net = nn.Sequential(nn.Linear(1, 2, bias=False), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.9], [0.1]]))
        net[1].weight.copy_(torch.tensor([[1.0, 1.0]]))
    hits = 0
    for seed in range(400):
        orders, _ = walk_order(net, 1, seed=seed)  # one edge: the first hop of the first forward walk
        hits += int(orders["0.weight"][0, 0] == 0)
    assert 0.85 < hits / 400 < 0.95


def test_scores_reproduce_the_mask() -> None:
    net = lenet()
    pruner = make_pruner("phew", score_density=0.02)
    scores = pruner.scores(net, None, seed=3)
    for density in (0.005, 0.02):
        direct = pruner.masks(net, None, density, seed=3)
        via = allocate(scores, density)
        assert all(torch.equal(direct[n], via[n]) for n in direct)


def test_conv_chain_with_flatten_and_kernel_conserved() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.ReLU(),
        nn.Conv2d(8, 6, 3, groups=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 10),
    )
    masks = prune(net, "phew", density=0.1, seed=0)
    assert masks.kept == round(0.1 * masks.total) and masks.empty_layers() == []
    # path continuity across the flatten: every kept linear input feature comes from a channel
    # that some kept conv edge reaches (features of channel c are c*16 ... c*16+15)
    reached = masks["2.weight"].flatten(1).any(dim=1)
    fed = masks["5.weight"].any(dim=0).reshape(6, 16).any(dim=1)
    assert int((fed & ~reached).sum()) <= 1
    kc = prune(net, "phew", density=0.1, seed=0, kernel_conserved=True)
    assert kc.kept == masks.kept
    partial = kc["0.weight"].flatten(2).any(dim=2) & ~kc["0.weight"].flatten(2).all(dim=2)
    assert int(partial.sum()) <= 1  # whole kernels, except possibly the one the last walk was cut in


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.short = nn.Conv2d(4, 8, 1)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = self.conv2(torch.relu(self.conv1(h))) + self.short(h)
        return self.head(h.mean(dim=(2, 3)))


def test_residual_network_as_registration_chain() -> None:
    net = Residual()
    for density in (0.01, 0.3):
        masks = prune(net, "phew", density=density, seed=0)
        assert masks.kept == round(density * masks.total)
        assert masks.empty_layers() == []


def test_stalled_walks_are_filled_by_magnitude() -> None:
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    masks = prune(net, "phew", density=0.95, seed=0, max_walks=3)
    assert masks.kept == round(0.95 * masks.total)
    dense = prune(net, "phew", density=1.0, seed=0)
    assert dense.kept == dense.total


def test_map_unit() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    assert _map_unit(5, 10, 10, rng) == 5
    assert all(12 <= _map_unit(3, 8, 32, rng) < 16 for _ in range(20))  # channel 3 -> its 4 features
    assert _map_unit(13, 32, 8, rng) == 3  # feature 13 -> channel 3
    assert all(0 <= _map_unit(i, 7, 3, rng) < 3 for i in range(7))


def test_config_errors() -> None:
    with pytest.raises(ConfigError):
        prune(lenet(), "phew", density=0.1, max_walks=0)
    with pytest.raises(ConfigError):
        make_pruner("phew", score_density=0.0).scores(lenet(), None)


def test_walks_respect_an_attached_mask() -> None:
    """Weights already pruned the torch way have zero effective weight, so no walk crosses them."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    first = prune(net, "magnitude", density=0.5, apply=True)
    masks = make_pruner("phew").masks(net, None, 0.1, seed=0)
    assert masks.kept == round(0.1 * masks.total)
    assert all(not bool((masks[n] & ~first[n]).any()) for n in masks)
