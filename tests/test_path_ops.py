"""Path counts through what modern networks do functionally: gates, signal products, constants.

Each model is small enough that its path count on the computation DAG (a node reading several
operands has an edge from each; a constant starts no path) can be written down by hand from the
0/1 masks, and :func:`path_stats` must give exactly that number.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
from torch import nn

from autosparse.core.masks import Masks
from autosparse.pruners import prune
from autosparse.topology.diagnostics import mask_diagnostics
from autosparse.topology.paths import path_stats


def _masks(model: nn.Module, seed: int = 0, density: float = 0.6) -> Masks:
    g = torch.Generator().manual_seed(seed)
    return Masks({n: torch.rand(p.shape, generator=g) < density for n, p in model.named_parameters() if "weight" in n})


class Gate(nn.Module):
    """Squeeze-excitation in miniature: ``a(x) * sigmoid(g(x))``, then a linear read-out."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.g, self.out = nn.Linear(5, 4, bias=False), nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.a(x) * torch.sigmoid(self.g(x)) + 3.0)


class Product(nn.Module):
    """Two signals multiplied as matrices, as attention does: ``(x Aᵀ) @ (x Bᵀ)ᵀ``."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 4, bias=False), nn.Linear(3, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) @ self.b(x).transpose(-2, -1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiplicative_gate_paths_add_and_constants_start_none(seed: int) -> None:
    model = Gate()
    m = _masks(model, seed)
    a, g, o = (m[f"{k}.weight"].double() for k in ("a", "g", "out"))
    ones = torch.ones(5, dtype=torch.float64)
    expected = float(o.sum(0) @ (a @ ones + g @ ones))  # the "+ 3.0" adds no path
    stats = path_stats(model, m, (5,))
    assert stats.approximate == ()
    assert math.isclose(math.exp(stats.log_paths), expected, rel_tol=1e-9) if expected else stats.log_paths == -math.inf


@pytest.mark.parametrize("seed", [0, 1])
def test_product_of_two_signals_counts_both_operands(seed: int) -> None:
    model = Product()
    m = _masks(model, seed)
    a, b = m["a.weight"].double(), m["b.weight"].double()
    length = 2  # tokens; C_ij = Σ_k A_ik B_jk reads every A_ik and B_jk
    pa, pb = a.sum(1), b.sum(1)  # paths into each feature of one token (all-ones input)
    expected = length * length * float(pa.sum() + pb.sum())
    stats = path_stats(model, m, (length, 3))
    assert math.isclose(math.exp(stats.log_paths), expected, rel_tol=1e-9)
    assert stats.params_per_layer == {n: int(t.sum()) for n, t in m.items()}


def test_a_constant_keeps_no_layer_alive_and_is_reported_collapsed() -> None:
    model = Gate()
    m = Masks({n: torch.ones(p.shape, dtype=torch.bool) for n, p in model.named_parameters()})
    m = Masks(
        {
            **m.to_dict(),
            "a.weight": torch.zeros(4, 5, dtype=torch.bool),
            "g.weight": torch.zeros(4, 5, dtype=torch.bool),
        }
    )
    diag = mask_diagnostics(model, m, (5,), warn=False)
    assert diag["log10_paths"] == -math.inf
    assert diag["collapsed_layers"] == ["a.weight", "g.weight", "out.weight"]
    assert diag["no_path_layers"] == ["out.weight"]  # it keeps weights, but only the constant reaches it


class Unmodelled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.out = nn.Linear(4, 4, bias=False), nn.Linear(4, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.frac(self.a(x)))  # frac(1.0) = 0: the pass finds no path into out


def test_an_unmodelled_op_makes_counts_approximate_never_a_false_collapse(caplog) -> None:
    model = Unmodelled()
    m = Masks({"a.weight": torch.eye(4, dtype=torch.bool), "out.weight": torch.ones(2, 4, dtype=torch.bool)})
    with caplog.at_level(logging.WARNING):
        diag = mask_diagnostics(model, m, (4,))
    assert diag["paths"] == "approximate (ops not modelled: frac)"
    assert diag["unverified_layers"] == ["out.weight"]
    assert diag["collapsed_layers"] == []
    (record,) = caplog.records
    assert "not reported as collapsed" in record.getMessage()


class DictInput(nn.Module):
    input_shape = (4,)  # what a data-free pruner (and the diagnostics) read without data

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.lin(sum(batch.values()))  # type: ignore[arg-type]


def test_a_model_the_path_pass_cannot_run_gets_unavailable_not_an_error() -> None:
    model = DictInput()
    masks = prune(model, "random", density=0.5)
    diag = masks.meta["diagnostics"]
    assert diag["paths"].startswith("unavailable (")
    assert diag["effective_params"] is None
    assert masks.kept == 4


def test_an_input_shape_the_model_cannot_take_is_said_by_methods_that_never_run_it(caplog) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    with caplog.at_level(logging.WARNING):
        masks = prune(model, "random", density=0.2, input_shape=(5, 8, 8))
    assert masks.meta["diagnostics"]["paths"].startswith("unavailable (RuntimeError")
    assert "could not run the model on the input_shape given, (5, 8, 8)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prune(model, "random", density=0.2, input_shape=(3, 8, 8))
        # the right shape for a model the float path pass cannot run (token ids): not the shape's fault
        tokens = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(24, 3))
        prune(tokens, "magnitude", density=0.5, input_shape=(6,))
    assert "input_shape given" not in caplog.text
    # the same mismatch given as data: diagnostics "unavailable" with no word (helper)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prune(model, "random", density=0.2, data=(torch.randn(4, 5, 8, 8), torch.arange(4)))
    assert (
        "pruning data's examples, of shape (5, 8, 8)" in caplog.text and "random does not run the model" in caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prune(model, "random", density=0.2, data=(torch.randn(4, 3, 8, 8), torch.arange(4)))
    assert "pruning data's examples" not in caplog.text


class Chain(nn.Module):
    input_shape = (4,)

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(self.l1(x))


def test_prune_warns_once_naming_empty_and_pathless_layers_and_records_them(caplog) -> None:
    """Magnitude keeps l1's row 0 (output unit 0) and l2's column 1 (reads unit 1): no path, no empty layer."""
    model = Chain()
    with torch.no_grad():
        model.l1.weight.fill_(0.01)
        model.l2.weight.fill_(0.01)
        model.l1.weight[0] = 1.0
        model.l2.weight[:, 1] = 1.0
    with caplog.at_level(logging.WARNING):
        masks = prune(model, "magnitude", density=0.25)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no input-to-output path: l1.weight, l2.weight" in warnings[0].getMessage()
    assert masks.meta["diagnostics"]["no_path_layers"] == ["l1.weight", "l2.weight"]
    assert masks.meta["diagnostics"]["collapsed_layers"] == ["l1.weight", "l2.weight"]

    with torch.no_grad():
        model.l1.weight.fill_(1e-6)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        masks = prune(model, "magnitude", density=0.25)
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "1 layer(s) keep no weight: l1.weight" in record.getMessage()
    assert masks.meta["diagnostics"]["empty_layers"] == ["l1.weight"]


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.head = nn.Linear(8, 16), nn.Linear(16, 3)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(self.embed(x)).mean(1))


@pytest.mark.parametrize("scorer", ["autos_mlp_fmnist", pytest.param("autos_gnn_fmnist", marks=pytest.mark.slow)])
def test_autos_prunes_a_batch_first_transformer_layer(scorer: str) -> None:
    """It crashed in connectivity repair: the fast path read ``norm1.eps`` of a swapped norm."""
    torch.manual_seed(0)
    model = Tokens().eval()
    x, y = torch.randn(12, 5, 8), torch.arange(12) % 3
    masks = prune(model, "autos", density=0.5, data=(x, y), scorer=scorer)
    assert masks.kept == round(0.5 * masks.total)
    assert masks.meta["diagnostics"]["paths"] == "exact"
    assert masks.meta["diagnostics"]["collapsed_layers"] == []


class Affine(nn.Module):
    """ResMLP's affine layer, ``addcmul(β, α, x)``, between two linear maps."""

    def __init__(self, as_addcmul: bool) -> None:
        super().__init__()
        self.as_addcmul = as_addcmul
        self.a, self.out = nn.Linear(5, 4, bias=False), nn.Linear(4, 3, bias=False)
        self.alpha = nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 3.0]))
        self.beta = nn.Parameter(torch.full((4,), 7.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.out(torch.addcmul(self.beta, self.alpha, h) if self.as_addcmul else h * self.alpha)


@pytest.mark.parametrize("seed", [0, 1])
def test_addcmul_is_modelled_a_constant_addend_starting_no_path(seed: int) -> None:
    m = _masks(Affine(True), seed)
    exact = path_stats(Affine(False), m, (5,))  # the product alone: |α| weights its edge, β adds nothing
    stats = path_stats(Affine(True), m, (5,))
    assert stats.approximate == ()
    assert stats.log_paths == pytest.approx(exact.log_paths, rel=1e-12)
    assert stats.params_per_layer == exact.params_per_layer


class PositionalProjection(nn.Module):
    """ConViT's positional attention in miniature: a layer that only ever reads constant coordinates."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.pos, self.out = nn.Linear(4, 3, bias=False), nn.Linear(2, 3, bias=False), nn.Linear(3, 2)
        self.register_buffer("coords", torch.tensor([[0.0, 1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.a(x) + self.pos(self.coords))


def test_a_layer_no_mask_could_connect_is_input_independent_not_collapsed(caplog) -> None:
    model = PositionalProjection()
    dense = Masks({n: torch.ones(p.shape, dtype=torch.bool) for n, p in model.named_parameters() if "weight" in n})
    with caplog.at_level(logging.WARNING):
        diag = mask_diagnostics(model, dense, (4,))
    assert diag["collapsed_layers"] == [] and diag["no_path_layers"] == []
    assert diag["input_independent_layers"] == ["pos.weight"]
    assert not caplog.records  # no collapse warning for a mask that keeps everything
    # a real collapse is still one: with `a` emptied nothing reaches `out`
    cut = Masks({**dense.to_dict(), "a.weight": torch.zeros(3, 4, dtype=torch.bool)})
    diag = mask_diagnostics(model, cut, (4,), warn=False)
    assert diag["collapsed_layers"] == ["a.weight", "out.weight"]
    assert diag["input_independent_layers"] == ["pos.weight"]


def _std_net(conv: type[nn.Module], **kw: object) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        conv(3, 4, 3, **kw), nn.ReLU(), conv(4, 4, 3, stride=2, **kw), nn.Flatten(), nn.LazyLinear(3, bias=False)
    )


@pytest.mark.parametrize("kind", ["StdConv2d", "ScaledStdConv2d", "StdConv2dSame", "ScaledStdConv2dSame"])
def test_weight_standardized_convs_count_the_mask_graph_and_prune_says_what_the_forward_uses(kind, caplog) -> None:
    layers = pytest.importorskip("timm.layers")
    std_conv = getattr(layers, kind)
    same = kind.endswith("Same")
    std = _std_net(std_conv, padding="same" if same else 1) if same else _std_net(std_conv, padding=1)
    x = torch.ones(1, 3, 9, 9)
    std(x)  # the lazy head
    plain = _std_net(nn.Conv2d, padding=0 if same else 1)
    if same:  # TensorFlow "same" on 9 px, stride 2: pad 1 before, 1 after; stride 1: 1 and 1
        plain[0].padding, plain[2].padding = (1, 1), (1, 1)
    plain(x)
    m = _masks(std, 0, density=0.7)
    stats = path_stats(std, m, (3, 9, 9))
    assert stats.collapsed == [] and stats.approximate == ()
    assert stats.log_paths == pytest.approx(path_stats(plain, m, (3, 9, 9)).log_paths, rel=1e-12)
    with caplog.at_level(logging.WARNING, logger="autosparse.pruners.entry"):
        masks = prune(std, "random", density=0.05, input_shape=(3, 9, 9), seed=1)
    (record,) = [r for r in caplog.records if "standardise their weights" in r.getMessage()]
    kept = int(masks["0.weight"].sum() + masks["2.weight"].sum())
    used = sum(int(masks[n].flatten(1).any(1).sum()) * masks[n][0].numel() for n in ("0.weight", "2.weight"))
    assert f"keep {kept} of their 252 weights; their forward uses {used}" in record.getMessage()
    assert kept < used < 252  # a channel keeping one weight is dense in the forward


class StatsPool(nn.Module):
    """x-vector statistics pooling: ``cat(mean, std)`` over time, then a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.tdnn, self.head = nn.Conv1d(4, 8, 3, bias=False), nn.Linear(16, 5, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.tdnn(x))
        return self.head(torch.cat([h.mean(-1), h.std(-1)], 1))


class MaxEnsemble(nn.Module):
    """Maxout over two heads, ``stack(...).amax(0)``, and ``max(dim)``'s values read off."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.h1, self.h2 = nn.Linear(6, 8, bias=False), nn.Linear(8, 3, bias=False), nn.Linear(8, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return torch.stack([self.h1(h), self.h2(h)]).amax(0) + torch.stack([h[:, :3], h[:, 3:6]], 1).max(dim=1)[0]


def test_a_std_statistic_carries_paths_a_constant_input_would_zero() -> None:
    """On an all-ones input a std is 0; read literally, a head fed only by it looked collapsed."""
    model = StatsPool()
    head = torch.zeros(5, 16, dtype=torch.bool)
    head[:, 8:] = True  # only the weights that read the std half
    m = Masks({"tdnn.weight": torch.ones(8, 4, 3, dtype=torch.bool), "head.weight": head})
    diag = mask_diagnostics(model, m, (4, 20), warn=False)
    assert diag["paths"] == "exact"
    assert diag["collapsed_layers"] == []
    # every head weight reads one channel's window of 18 positions, each with 4·3 paths in
    assert math.isclose(diag["log10_paths"], math.log10(5 * 8 * 18 * 12), rel_tol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_max_reductions_count_every_operand_as_a_sum_does(seed: int) -> None:
    model = MaxEnsemble()
    m = _masks(model, seed)
    a, h1, h2 = (m[f"{k}.weight"].double() for k in ("a", "h1", "h2"))
    reach = a @ torch.ones(6, dtype=torch.float64)  # paths into each unit of a
    expected = float((h1 @ reach).sum() + (h2 @ reach).sum() + reach[:6].sum())
    stats = path_stats(model, m, (6,))
    assert stats.approximate == ()
    assert math.isclose(math.exp(stats.log_paths), expected, rel_tol=1e-9)


class FunctionalPool(nn.Module):
    """PyTorch's MNIST example: ``F.max_pool2d`` called as a function, not a module."""

    def __init__(self, functional: bool | str) -> None:
        super().__init__()
        self.functional = functional
        self.conv, self.fc = nn.Conv2d(1, 4, 3, bias=False), nn.Linear(4 * 6 * 6, 10, bias=False)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        if self.functional == "indices":  # SegNet's encoder keeps the indices for its unpooling
            h = torch.nn.functional.max_pool2d(h, 2, ceil_mode=True, return_indices=True)[0]
        elif self.functional:
            h = torch.nn.functional.max_pool2d(h, 2, stride=[], ceil_mode=True)  # []: the kernel size
        else:
            h = self.pool(h)
        return self.fc(torch.flatten(h, 1))


@pytest.mark.parametrize("functional", [True, "indices"])
def test_a_functional_max_pool_counts_as_the_module_does(functional: bool | str) -> None:
    module, other = FunctionalPool(False), FunctionalPool(functional)
    other.load_state_dict(module.state_dict())
    m = _masks(module, 3)
    ref, got = path_stats(module, m, (1, 13, 13)), path_stats(other, m, (1, 13, 13))
    assert got.approximate == ()
    assert math.isclose(got.log_paths, ref.log_paths, rel_tol=1e-12)
    masks = prune(other, "npb", density=0.3, input_shape=(1, 13, 13), time_limit=5.0)  # it optimises through the pool
    assert masks.kept == round(0.3 * masks.total) and masks.meta["diagnostics"]["paths"] == "exact"


class WithFeatures(nn.Module):
    """Returns ``(logits, features)``, as many research models do."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.head = nn.Linear(6, 16), nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.relu(self.a(x))
        return self.head(f), f


def test_paths_are_counted_to_the_logits_training_reads_not_to_side_outputs() -> None:
    model = WithFeatures()
    m = Masks({"a.weight": torch.ones(16, 6, dtype=torch.bool), "head.weight": torch.zeros(5, 16, dtype=torch.bool)})
    diag = mask_diagnostics(model, m, (6,), warn=False)
    assert diag["log10_paths"] == -math.inf
    assert diag["collapsed_layers"] == ["a.weight", "head.weight"]


def test_a_reduced_mask_stays_a_mask_and_only_counts_are_summed() -> None:
    from autosparse.topology.path_ops import PathMode, mark_signal

    x = mark_signal(torch.ones(2, 3, dtype=torch.float64))
    with PathMode() as mode:
        gate = (x > 0).amax(1)  # torch.where(gate, ...) needs it bool
        total = x.amax(1)
    assert gate.dtype == torch.bool and gate.tolist() == [True, True]
    assert total.tolist() == [3.0, 3.0] and not mode.unmodelled
