"""DPaI: its path objective against brute force, and the pruner's exactness and determinism."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.pruners import get_pruner, make_scoring_pruner, prune
from autosparse.pruners.dpai import evaluate
from autosparse.topology.paths import PathNetwork, path_stats

# 3-4-3-2 MLP, hand mask (rows = outputs, cols = inputs): h3 has no way out, g2 no way in.
HAND = {
    "0.weight": torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.bool),
    "2.weight": torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool),
    "4.weight": torch.tensor([[1, 0, 1], [1, 1, 1]], dtype=torch.bool),
}


def mlp_3432() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(100, 60), nn.ReLU(), nn.Linear(60, 30), nn.ReLU(), nn.Linear(30, 10))


def paths_through(masks: dict[str, torch.Tensor]) -> tuple[int, dict[str, torch.Tensor]]:
    """Brute force: enumerate every path of the *dense* 3-4-3-2 graph and count, per edge, the
    paths that would use it if it were kept while all other edges are as in ``masks``."""
    w = [masks["0.weight"], masks["2.weight"], masks["4.weight"]]
    names = list(masks)
    total = 0
    through = {n: torch.zeros(m.shape, dtype=torch.float64) for n, m in masks.items()}
    for a, b, c, d in itertools.product(range(3), range(4), range(3), range(2)):
        edges = [(b, a), (c, b), (d, c)]
        on = [bool(w[k][e]) for k, e in enumerate(edges)]
        if all(on):
            total += 1
        for k, e in enumerate(edges):
            if all(on[j] for j in range(3) if j != k):
                through[names[k]][e] += 1
    return total, through


def test_path_objective_matches_brute_force() -> None:
    net = PathNetwork(mlp_3432(), (3,))
    total, through = paths_through(HAND)
    assert total == 10
    state = evaluate(net, HAND, alpha=0.0, beta=0.0)
    assert math.isclose(state.log_paths, math.log(total), rel_tol=1e-12)
    # with alpha = 0 the ascent direction is ∂ log R / ∂m = (paths through the edge) / R
    for name, counts in through.items():
        assert torch.allclose(state.grads[name], counts / total), name
    # effective: 6 + 4 + 3 kept weights on a path; output units on a path: 3 + 2 + 2
    assert state.effective_params == 13
    assert state.effective_kernels == 13  # for linear layers a kernel is a weight
    assert state.effective_nodes == 7
    alpha, beta = 0.7, 0.25
    state = evaluate(net, HAND, alpha=alpha, beta=beta)
    want = (1 - alpha) * math.log(10) + alpha * ((1 - beta) * math.log(7) + beta * math.log(13))
    assert math.isclose(state.objective, want, rel_tol=1e-12)


def test_node_term_targets_idle_units_only() -> None:
    net = PathNetwork(mlp_3432(), (3,))
    state = evaluate(net, HAND, alpha=1.0, beta=0.0)
    # idle output units: h3 (layer 1) and g2 (layer 2). Edges into h3 carry nothing (h3 has no
    # way out); an edge h_i -> g2 would carry (paths into h_i) x (2 ways out of g2) of R = 10.
    assert torch.count_nonzero(state.grads["0.weight"]) == 0
    assert torch.count_nonzero(state.grads["4.weight"]) == 0
    want = torch.zeros(3, 4, dtype=torch.float64)
    want[2] = torch.tensor([2.0, 1.0, 3.0, 1.0]) * 2 / 10
    assert torch.allclose(state.grads["2.weight"], want)


def test_no_path_still_gives_a_direction() -> None:
    net = PathNetwork(mlp_3432(), (3,))
    dead = dict(HAND)
    dead["2.weight"] = torch.zeros(3, 4, dtype=torch.bool)
    state = evaluate(net, dead, alpha=0.0, beta=0.0)
    assert state.log_paths == -math.inf and state.effective_nodes == 0
    assert torch.count_nonzero(state.grads["2.weight"]) > 0
    assert all(torch.isfinite(g).all() for g in state.grads.values())


def test_lenet_at_999_sparsity_exact_and_no_empty_layer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )
    masks = prune(model, "dpai", sparsity=0.999, input_shape=(1, 28, 28), steps=5, seed=0)
    assert masks.kept == 266
    assert masks.empty_layers() == []
    assert masks.meta["effective_params"] == path_stats(model, masks, (1, 28, 28)).effective_params


def test_deterministic_for_a_seed_and_seed_matters() -> None:
    model = small_mlp()
    a = prune(model, "dpai", density=0.02, input_shape=(1, 10, 10), steps=15, seed=7)
    b = prune(model, "dpai", density=0.02, input_shape=(1, 10, 10), steps=15, seed=7)
    c = prune(model, "dpai", density=0.02, input_shape=(1, 10, 10), steps=15, seed=8)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_optimisation_improves_paths_and_nodes() -> None:
    model = small_mlp()
    shape = (1, 10, 10)
    start = prune(model, "dpai", density=0.02, input_shape=shape, steps=0, seed=1)
    tuned = prune(model, "dpai", density=0.02, input_shape=shape, steps=80, lr=0.05, seed=1)
    assert tuned.kept == start.kept
    assert tuned.meta["objective"] > start.meta["objective"]
    s0, s1 = path_stats(model, start, shape), path_stats(model, tuned, shape)
    assert s1.log_paths > s0.log_paths
    assert s1.effective_nodes >= s0.effective_nodes


@pytest.mark.parametrize("scope", ["uniform", "global"])
def test_other_scopes_are_exact(scope: str) -> None:
    model = small_mlp()
    masks = prune(model, "dpai", density=0.05, input_shape=(1, 10, 10), steps=3, scope=scope)
    assert masks.kept == round(0.05 * (100 * 60 + 60 * 30 + 30 * 10))


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.stem(x)))
        h = torch.relu(h + self.c2(torch.relu(self.c1(h))))
        return self.fc(torch.flatten(self.pool(h), 1))


def test_residual_conv_net() -> None:
    torch.manual_seed(0)
    model = TinyResNet()
    data = (torch.randn(2, 3, 8, 8), torch.randint(0, 10, (2,)))
    masks = prune(model, "dpai", density=0.1, data=data, steps=10, seed=0)
    total = sum(m.numel() for m in masks.values())
    assert masks.kept == round(0.1 * total)
    assert masks.empty_layers() == []
    assert masks.meta["effective_kernels"] <= masks.kept


def test_user_errors() -> None:
    model = small_mlp()
    with pytest.raises(ConfigError, match="input_shape"):
        prune(model, "dpai", density=0.01)
    with pytest.raises(ConfigError, match="alpha"):
        prune(model, "dpai", density=0.01, input_shape=(1, 10, 10), alpha=1.5)
    with pytest.raises(ConfigError, match="steps"):
        prune(model, "dpai", density=0.01, input_shape=(1, 10, 10), steps=-1)
    with pytest.raises(ConfigError, match="lr must be a finite number"):  # inf gave a mask of NaN scores (helper)
        prune(model, "dpai", density=0.01, input_shape=(1, 10, 10), lr=float("inf"))
    with pytest.raises(ConfigError, match="density"):  # its scores only mean something at one density
        make_scoring_pruner("dpai")
    assert get_pruner("dpai").data_dependent is False
