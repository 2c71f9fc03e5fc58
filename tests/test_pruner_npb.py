"""NPB: the per-layer objective, its integer program, and the pruner on LeNet-300-100 / ResNet-20."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from autosparse.core.allocation import erk_counts
from autosparse.core.errors import ConfigError
from autosparse.pruners import get_pruner, make_scoring_pruner, prune
from autosparse.pruners.npb_program import max_path, npb_objective, solve_layer
from autosparse.topology.paths import path_stats

LENET_SHAPE = (1, 28, 28)


def lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def test_objective_of_hand_mask_linear() -> None:
    # P = paths reaching the 3 inputs; 2 outputs; 3 weights kept (rows = inputs, cols = outputs)
    p = np.array([1.0, 2.0, 5.0])
    m = np.array([[1, 0], [0, 0], [1, 1]])
    # nodes: input 1 is idle -> A = (3 + 2 - 1) / 5 = 0.8
    # paths: 1*1 + 5*2 = 11; best possible with 3 weights: 5 + 5 + 2 = 12 -> B = 11/12
    assert max_path(p, 2, 3) == 12.0
    assert npb_objective(m, p, 3, alpha=0.5) == pytest.approx(0.5 * 0.8 + 0.5 * 11 / 12)
    # the reference's normaliser agrees here (one input can be fully connected) ...
    assert max_path(p, 2, 3, path_norm="reference") == 12.0
    # ... but not when none can: its slice p[-0:] takes the whole array: 2*(1+2+5) + 1*5
    assert max_path(p, 2, 1, path_norm="reference") == 21.0
    assert max_path(p, 2, 1) == 5.0


def test_objective_of_hand_mask_conv() -> None:
    # 2 inputs, 2 outputs, kernels of 4 elements; counts[i, o] = elements kept in kernel (o, i)
    p = np.array([1.0, 3.0])
    m = np.array([[2, 0], [1, 0]])
    # A: inputs both used, output 1 idle -> 3/4
    # B: 1*2 + 3*1 = 5; bound: 3 elements into kernels fed by input 1 -> 9 -> 5/9
    # Reg: (budget - #empty kernels) / budget = (3 - 2) / 3
    want = 0.2 * 0.75 + 0.8 * 5 / 9 + 1.0 * (1 / 3)
    got = npb_objective(m, p, 3, alpha=0.2, beta=1.0, max_per_kernel=4)
    assert got == pytest.approx(want)
    ref = npb_objective(m, p, 3, alpha=0.2, beta=1.0, max_per_kernel=4, path_norm="reference")
    assert ref == pytest.approx(0.2 * 0.75 + 0.8 * 5 / (4 * 2 * 4 + 3 * 3) + 1.0 / 3)


def _brute_force(p: np.ndarray, c_out: int, budget: int, k: int, **kw: float) -> float:
    c_in = p.size
    best = -math.inf
    for flat in itertools.product(range(k + 1), repeat=c_in * c_out):
        if sum(flat) == budget:
            m = np.array(flat).reshape(c_in, c_out)
            best = max(best, npb_objective(m, p, budget, max_per_kernel=k, **kw))
    return best


@pytest.mark.parametrize("formulation", ["full", "aggregated"])
@pytest.mark.parametrize(
    ("p", "c_out", "budget", "k", "alpha", "beta"),
    [
        ([1.0, 2.0, 5.0], 2, 3, 1, 0.5, 0.0),
        ([0.0, 4.0, 1.0], 3, 4, 1, 0.9, 0.0),
        ([1.0, 3.0], 2, 3, 3, 0.2, 1.0),
        ([2.0, 1.0, 1.0], 2, 5, 2, 0.01, 0.5),
    ],
)
def test_integer_program_reaches_brute_force_optimum(
    formulation: str, p: list[float], c_out: int, budget: int, k: int, alpha: float, beta: float
) -> None:
    pa = np.array(p)
    sol = solve_layer(
        pa,
        c_out,
        budget,
        alpha=alpha,
        beta=beta,
        max_per_kernel=k,
        formulation=formulation,
        rng=np.random.default_rng(0),
    )
    assert sol.status == "optimal"
    assert int(sol.counts.sum()) == budget and int(sol.counts.max()) <= k
    assert sol.objective == pytest.approx(_brute_force(pa, c_out, budget, k, alpha=alpha, beta=beta), abs=1e-9)


def test_aggregated_program_matches_full_program() -> None:
    rng = np.random.default_rng(3)
    for _ in range(6):
        c_in, c_out, k = int(rng.integers(3, 12)), int(rng.integers(2, 8)), int(rng.integers(1, 5))
        budget = int(rng.integers(1, c_in * c_out * k // 3 + 2))
        p = rng.integers(0, 4, c_in).astype(float)
        kw = {"alpha": float(rng.uniform(0, 1)), "beta": float(rng.uniform(0, 1)), "max_per_kernel": k}
        full = solve_layer(p, c_out, budget, formulation="full", mip_rel_gap=0.0, **kw)
        agg = solve_layer(p, c_out, budget, formulation="aggregated", mip_rel_gap=0.0, **kw)
        assert agg.objective == pytest.approx(full.objective, abs=1e-7)
        assert int(agg.counts.sum()) == budget and int(agg.counts.max()) <= k


def test_lenet_at_999_sparsity_exact_and_no_empty_layer() -> None:
    model = lenet()
    masks = prune(model, "npb", sparsity=0.999, input_shape=LENET_SHAPE, seed=0)
    assert masks.kept == round(0.001 * 266_200) == 266
    assert masks.empty_layers() == []
    shapes = {n: m.shape for n, m in masks.items()}
    assert {n: int(m.sum()) for n, m in masks.items()} == erk_counts(shapes, 0.001)
    stats = path_stats(model, masks, LENET_SHAPE)
    assert stats.collapsed == []
    # the post-pass leaves no kept weight off every path
    assert stats.effective_params == masks.kept
    assert masks.meta["effective_params"] == masks.kept


def test_deterministic_for_a_seed_and_seed_matters() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(100, 60), nn.ReLU(), nn.Linear(60, 30), nn.ReLU(), nn.Linear(30, 10))
    a = prune(model, "npb", density=0.02, input_shape=(1, 10, 10), seed=4)
    b = prune(model, "npb", density=0.02, input_shape=(1, 10, 10), seed=4)
    c = prune(model, "npb", density=0.02, input_shape=(1, 10, 10), seed=5)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_input_shape_from_data_and_reference_norm() -> None:
    model = lenet()
    data = (torch.randn(4, *LENET_SHAPE), torch.randint(0, 10, (4,)))
    a = prune(model, "npb", density=0.005, data=data, seed=1, path_norm="reference", reassign_ineffective=False)
    assert a.kept == round(0.005 * 266_200)
    assert a.empty_layers() == []


class SmallResNet(nn.Module):
    """A width-reduced ResNet-20-like stack: stem, two residual blocks (one downsampling), fc."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.a1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.a2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b1 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.b2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.short = nn.Conv2d(8, 16, 1, stride=2, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.stem(x)))
        h = torch.relu(h + self.a2(torch.relu(self.a1(h))))
        h = torch.relu(self.short(h) + self.b2(torch.relu(self.b1(h))))
        return self.fc(torch.flatten(self.pool(h), 1))


def test_residual_conv_net_exact_count() -> None:
    torch.manual_seed(0)
    model = SmallResNet()
    masks = prune(model, "npb", density=0.05, input_shape=(3, 16, 16), seed=0, chunk_size=8, conv_chunk_threshold=64)
    total = sum(m.numel() for m in masks.values())
    assert masks.kept == round(0.05 * total)
    assert masks.empty_layers() == []
    assert path_stats(model, masks, (3, 16, 16)).collapsed == []


def test_magnitude_kernel_fill_keeps_largest_elements() -> None:
    torch.manual_seed(0)
    model = SmallResNet()
    masks = prune(model, "npb", density=0.2, input_shape=(3, 8, 8), kernel_fill="magnitude", reassign_ineffective=False)
    w = model.stem.weight.detach().abs().reshape(8, 3, 9)
    m = masks["stem.weight"].reshape(8, 3, 9)
    for o, i in itertools.product(range(8), range(3)):
        kept = int(m[o, i].sum())
        if 0 < kept < 9:  # the kept elements are the kernel's largest
            assert w[o, i][m[o, i]].min() >= w[o, i][~m[o, i]].max()


def test_user_errors() -> None:
    model = lenet()
    with pytest.raises(ConfigError, match="input_shape"):
        prune(model, "npb", density=0.01)
    with pytest.raises(ConfigError, match="scope"):
        prune(model, "npb", density=0.01, input_shape=LENET_SHAPE, scope="global")
    with pytest.raises(ConfigError, match="alpha"):
        prune(model, "npb", density=0.01, input_shape=LENET_SHAPE, alpha=2.0)
    with pytest.raises(ConfigError, match="scores"):
        make_scoring_pruner("npb")
    assert get_pruner("npb").data_dependent is False
