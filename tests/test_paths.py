"""Path counting (autosparse.topology.paths) against brute-force enumeration on hand-made networks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks
from autosparse.topology.paths import (
    PathNetwork,
    effective_masks,
    effective_nodes,
    effective_params,
    effective_paths,
    layer_collapse,
    log_path_count,
    path_flow,
    path_stats,
)


def mlp_3432() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))


# Hand mask (rows = outputs, cols = inputs). Hidden unit h1_3 has an input but no output edge;
# hidden unit h2_2 has an output edge but no input edge, so some kept weights are dead ends.
HAND = {
    "0.weight": torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.bool),
    "2.weight": torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool),
    "4.weight": torch.tensor([[1, 0, 1], [1, 1, 1]], dtype=torch.bool),
}


def brute_force(masks: dict[str, torch.Tensor]) -> tuple[int, dict[str, torch.Tensor], list[list[int]]]:
    """Enumerate every input→output path of the 3-4-3-2 MLP.

    Returns the path count, the number of paths through each weight, and through each unit of
    each layer's output.
    """
    w = [masks["0.weight"], masks["2.weight"], masks["4.weight"]]
    through = {n: torch.zeros(m.shape, dtype=torch.int64) for n, m in masks.items()}
    units = [[0] * 4, [0] * 3, [0] * 2]
    total = 0
    for a, b, c, d in itertools.product(range(3), range(4), range(3), range(2)):
        if w[0][b, a] and w[1][c, b] and w[2][d, c]:
            total += 1
            through["0.weight"][b, a] += 1
            through["2.weight"][c, b] += 1
            through["4.weight"][d, c] += 1
            units[0][b] += 1
            units[1][c] += 1
            units[2][d] += 1
    return total, through, units


def test_path_count_equals_brute_force_enumeration() -> None:
    model = mlp_3432()
    total, through, units = brute_force(HAND)
    # by hand: paths into h0..h3 = 2, 1, 3, 1; into g0 = h0 + h1 = 3, g1 = h1 + h2 = 4, g2 = 0;
    # into o0 = g0 + g2 = 3, o1 = g0 + g1 + g2 = 7
    assert total == 10
    assert math.isclose(math.exp(log_path_count(model, HAND, (3,))), total, rel_tol=1e-12)
    assert math.isclose(effective_paths(model, HAND, (3,)), total, rel_tol=1e-12)

    flow = path_flow(model, HAND, (3,))
    for name, counts in through.items():
        got = torch.exp(flow.weight_log_paths[name])
        assert torch.allclose(got, counts.to(torch.float64)), name
    for name, want in zip(HAND, units):
        got = torch.exp(flow.out_unit_log_paths[name])
        assert torch.allclose(got, torch.tensor(want, dtype=torch.float64)), name
    # a pruned weight's potential is the number of paths it would add: one path reaches h3
    # (a0→h3), and g0 has two ways out (o0, o1), so h3→g0 would add exactly two paths.
    assert math.isclose(math.exp(float(flow.weight_log_potential["2.weight"][0, 3])), 2.0)


def test_random_masks_match_brute_force() -> None:
    model = mlp_3432()
    g = torch.Generator().manual_seed(5)
    for _ in range(20):
        masks = {n: torch.rand(m.shape, generator=g) < 0.5 for n, m in HAND.items()}
        total, through, _ = brute_force(masks)
        log = log_path_count(model, masks, (3,))
        assert (log == -math.inf) if total == 0 else math.isclose(math.exp(log), total, rel_tol=1e-12)
        eff = effective_masks(model, masks, (3,))
        for name, counts in through.items():
            assert torch.equal(eff[name], counts > 0)


def test_effective_nodes_params_on_hand_mask() -> None:
    model = mlp_3432()
    # weights on a path: 0.weight: all but (3,0) [h3 has no way out]; 2.weight: (0,0),(0,1),(1,1),(1,2)
    # 4.weight: (0,0),(1,0),(1,1) — (0,2),(1,2) start at h2_2 which no path reaches.
    assert effective_params(model, HAND, (3,)) == 6 + 4 + 3
    # output units on a path: layer 1 h0,h1,h2 (not h3); layer 2 h0,h1 (not h2); both outputs
    assert effective_nodes(model, HAND, (3,)) == 3 + 2 + 2
    stats = path_stats(model, HAND, (3,))
    assert stats.nodes_per_layer == {"0.weight": 3, "2.weight": 2, "4.weight": 2}
    assert stats.kept_params == sum(int(m.sum()) for m in HAND.values())
    assert stats.total_nodes == 4 + 3 + 2
    assert stats.collapsed == []
    assert layer_collapse(model, HAND, (3,)) == []


def test_collapsed_chain_and_collapsed_residual_branch() -> None:
    model = mlp_3432()
    dead = dict(HAND)
    dead["2.weight"] = torch.zeros(3, 4, dtype=torch.bool)
    # in a chain, an empty layer cuts every path, so no layer carries one
    assert layer_collapse(model, dead, (3,)) == ["0.weight", "2.weight", "4.weight"]
    assert log_path_count(model, dead, (3,)) == -math.inf
    assert effective_nodes(model, dead, (3,)) == 0

    class ResMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.fc1(x))
            return self.fc3(h + torch.relu(self.fc2(h)))

    res = ResMLP()
    ones = {n: torch.ones_like(p, dtype=torch.bool) for n, p in res.named_parameters() if n.endswith("weight")}
    assert math.isclose(math.exp(log_path_count(res, ones, (3,))), 3 * 4 * (1 + 4) * 2)
    # fc2 keeps one weight from a hidden unit that no input reaches: kept, but no path through it
    masks = dict(ones)
    masks["fc1.weight"] = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    masks["fc2.weight"] = torch.zeros(4, 4, dtype=torch.bool)
    masks["fc2.weight"][0, 3] = True
    assert layer_collapse(res, masks, (3,)) == ["fc2.weight"]
    assert math.isclose(math.exp(log_path_count(res, masks, (3,))), 3 * 3 * 2)
    masks["fc2.weight"] = torch.zeros(4, 4, dtype=torch.bool)  # no kept weight at all
    assert layer_collapse(res, masks, (3,)) == ["fc2.weight"]


class TinyConvNet(nn.Module):
    """conv → ReLU → MaxPool → (conv + identity) → BN → Linear: the cases a chain MLP misses."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.conv1(x)))
        h = self.bn(h + self.conv2(h))
        return self.fc(torch.flatten(h, 1))


def _dense_matrix(fn, n_in: int) -> torch.Tensor:
    """The 0/1 (or count) matrix of a linear map, column j = fn(e_j)."""
    cols = [fn(torch.eye(n_in, dtype=torch.float64)[j]).reshape(-1) for j in range(n_in)]
    return torch.stack(cols, dim=1)


def test_conv_pool_residual_matches_explicit_graph() -> None:
    model = TinyConvNet()
    g = torch.Generator().manual_seed(1)
    masks = {
        "conv1.weight": torch.rand(2, 1, 3, 3, generator=g) < 0.6,
        "conv2.weight": torch.rand(2, 2, 3, 3, generator=g) < 0.4,
        "fc.weight": torch.rand(3, 8, generator=g) < 0.7,
    }
    m1 = masks["conv1.weight"].double()
    m2 = masks["conv2.weight"].double()
    c1 = _dense_matrix(lambda v: torch.nn.functional.conv2d(v.reshape(1, 1, 4, 4), m1, padding=1), 16)
    # the max-pool graph: each output position is connected to the 4 inputs of its window
    pool = torch.zeros(2 * 2 * 2, 2 * 4 * 4, dtype=torch.float64)
    for c, i, j in itertools.product(range(2), range(2), range(2)):
        for di, dj in itertools.product(range(2), range(2)):
            pool[c * 4 + i * 2 + j, c * 16 + (2 * i + di) * 4 + (2 * j + dj)] = 1
    c2 = _dense_matrix(lambda v: torch.nn.functional.conv2d(v.reshape(1, 2, 2, 2), m2, padding=1), 8)
    fc = masks["fc.weight"].double()
    a = fc @ (torch.eye(8, dtype=torch.float64) + c2) @ pool @ c1
    assert math.isclose(math.exp(log_path_count(model, masks, (1, 4, 4))), float(a.sum()), rel_tol=1e-12)

    # per-weight counts of the last layer: paths into feature i (column sums of the rest)
    into = ((torch.eye(8, dtype=torch.float64) + c2) @ pool @ c1).sum(dim=1)
    flow = path_flow(model, masks, (1, 4, 4))
    want = fc * into[None, :]
    assert torch.allclose(torch.exp(flow.weight_log_paths["fc.weight"]), want)


def test_overflowing_network_is_counted_in_log_domain() -> None:
    depth, width = 200, 50  # 50**201 paths: beyond float64 (max ~1.8e308)
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])
    stats = path_stats(model, None, (width,))
    assert math.isclose(stats.log_paths, (depth + 1) * math.log(width), rel_tol=1e-12)
    assert stats.effective_paths == math.inf
    assert stats.effective_params == depth * width * width
    assert stats.effective_nodes == depth * width
    flow = path_flow(model, None, (width,))
    # every weight carries 50**199 paths; every unit 50**200
    assert torch.allclose(
        flow.weight_log_paths["0.weight"], torch.tensor(depth * math.log(width) - math.log(width), dtype=torch.float64)
    )
    assert torch.allclose(
        flow.out_unit_log_paths["5.weight"], torch.tensor(depth * math.log(width), dtype=torch.float64)
    )


def test_abs_weighting_is_synaptic_flow() -> None:
    model = mlp_3432()
    w = [
        model[0].weight.detach().double().abs(),
        model[2].weight.detach().double().abs(),
        model[4].weight.detach().double().abs(),
    ]
    m = [HAND["0.weight"].double(), HAND["2.weight"].double(), HAND["4.weight"].double()]
    r = float(
        torch.ones(1, 2, dtype=torch.float64)
        @ (w[2] * m[2])
        @ (w[1] * m[1])
        @ (w[0] * m[0])
        @ torch.ones(3, 1, dtype=torch.float64)
    )
    flow = path_flow(model, HAND, (3,), weighting="abs")
    assert math.isclose(math.exp(flow.log_paths), r, rel_tol=1e-12)


def test_attached_masks_are_used_and_model_is_untouched() -> None:
    model = mlp_3432()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, module in (("0.weight", model[0]), ("2.weight", model[2]), ("4.weight", model[4])):
        torch_prune.custom_from_mask(module, "weight", HAND[name])
    assert math.isclose(math.exp(log_path_count(model, None, (3,))), 10.0)
    assert math.isclose(math.exp(log_path_count(model, Masks(HAND), (3,))), 10.0)
    after = model.state_dict()
    assert torch.equal(after["0.bias"], before["0.bias"])
    assert model[0].weight_orig.dtype == torch.float32


def test_execution_order_and_errors() -> None:
    model = TinyConvNet()
    net = PathNetwork(model, (1, 4, 4))
    assert net.order == ["conv1.weight", "conv2.weight", "fc.weight"]
    with pytest.raises(ConfigError, match="input_shape"):
        log_path_count(model, None, None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="weighting"):
        path_flow(model, None, (1, 4, 4), weighting="bogus")  # type: ignore[arg-type]


class _WithMHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        return self.head(self.mha(h, h, h, need_weights=False)[0].mean(1))


class _WithSDPA(nn.Module):
    """The same network with attention written out (timm's route: F.scaled_dot_product_attention)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)
        self.qkv = nn.Linear(16, 48)
        self.out = nn.Linear(16, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        q, k, v = (t.unflatten(-1, (2, 8)).transpose(1, 2) for t in self.qkv(h).split(16, -1))
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        return self.head(self.out(a).mean(1))


@pytest.mark.parametrize("empty", ["proj.weight", "mha.in_proj_weight", "mha.out_proj.weight"])
def test_no_path_through_attention_whose_input_or_output_is_cut(empty: str) -> None:
    # the output is then constant in the input: no path may start from the all-ones factors of
    # the attention's path graph (they once counted as signals inside nn.MultiheadAttention)
    model = _WithMHA()
    masks = {
        lyr.name: torch.zeros_like(lyr.parameter, dtype=torch.bool)
        if lyr.name == empty
        else torch.ones_like(lyr.parameter, dtype=torch.bool)
        for lyr in prunable_layers(model)
    }
    stats = path_stats(model, masks, input_shape=(5, 8))
    assert stats.log_paths == float("-inf") and stats.effective_params == 0


def test_multihead_attention_counts_the_paths_of_the_same_attention_written_out() -> None:
    dense = {lyr.name: torch.ones_like(lyr.parameter, dtype=torch.bool) for lyr in prunable_layers(_WithMHA())}
    mha = path_stats(_WithMHA(), dense, input_shape=(5, 8))
    sdpa_dense = {lyr.name: torch.ones_like(lyr.parameter, dtype=torch.bool) for lyr in prunable_layers(_WithSDPA())}
    sdpa = path_stats(_WithSDPA(), sdpa_dense, input_shape=(5, 8))
    assert mha.log_paths == pytest.approx(sdpa.log_paths, rel=1e-12) and mha.effective_params == sdpa.effective_params


def test_contiguous_after_permute_gives_a_viewable_signal() -> None:
    """Swin, MaxViT and ShuffleNet `.permute(...).contiguous().view(...)`: the path run's `contiguous`
    kept the permuted strides (a plain clone) and the `.view` failed, so `autos` crashed there."""

    class Permuted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.o = nn.Linear(2, 2), nn.Linear(12, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.o(self.a(x).permute(0, 2, 1, 3).contiguous().view(x.shape[0], -1))

    model = Permuted()
    masks = {la.name: torch.ones_like(la.parameter, dtype=torch.bool) for la in prunable_layers(model)}
    # 12 inputs, each reaching 2 outputs of `a`, each of the 12 feeding the one output
    assert math.isclose(math.exp(log_path_count(model, masks, (2, 3, 2))), 24, rel_tol=1e-12)
