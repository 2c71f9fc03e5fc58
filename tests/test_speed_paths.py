"""The fast paths behind ``autos``' speed give what the straightforward code gives.

Each fast path (radix-sort ranks, selection top-k, folded block scoring, threaded per-layer
work) is checked against a plain reference written out here, so a later speed-up cannot change
what a feature or a mask means without failing a test.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autosparse.core import ranking
from autosparse.core.allocation import allocate, target_count, topk_mask
from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers, safe_deepcopy
from autosparse.core.masks import Masks
from autosparse.core.parallel import map_layers, single_threaded_torch, torch_threads
from autosparse.core.ranking import pct_rank, rank_values, sort_key, stable_order, stable_permutation
from autosparse.data import load_dataset, pruning_batch
from autosparse.data.pruning_data import PruningData
from autosparse.features import FEATURE_NAMES, compute_features
from autosparse.features.compute import _coarse_key, rank_float64
from autosparse.models import build_model
from autosparse.pruners import make_pruner, prune
from autosparse.pruners.iterate import iterate, masked_weights, schedule_densities
from autosparse.scorer.config import DEFAULT_RANKER_FEATURES
from autosparse.scorer.nets import Ranker

SHIPPED_MLP = Path(__file__).resolve().parents[1] / "trained_scorers" / "autos_mlp_fmnist"


# ------------------------------------------------------------------------------ references


def ref_rank(x: torch.Tensor) -> torch.Tensor:
    """Percentile rank by stable argsort: ties by position, NaN last."""
    flat = x.reshape(-1)
    order = torch.argsort(flat, stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(flat.numel())
    return ranks.to(torch.float32) / max(1, flat.numel() - 1)


def ref_topk(score: torch.Tensor, k: int) -> torch.Tensor:
    """First k of a stable descending sort, NaN lowest."""
    flat = torch.nan_to_num(score.detach().reshape(-1).to(torch.float64), nan=-math.inf)
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        mask[torch.argsort(flat, descending=True, stable=True)[:k]] = True
    return mask.reshape(score.shape)


def _unit_sums(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dim() == 1:
        return x, x.new_ones(1) * x.sum()
    return x.reshape(x.shape[0], -1).sum(1), x.sum(dim=[d for d in range(x.dim()) if d != 1])


def ref_features(
    model: nn.Module, data: PruningData, masks: Masks | None, input_shape: tuple[int, ...]
) -> dict[str, dict[str, torch.Tensor]]:
    """Schema v1 written out plainly: one copy, backward() into .grad, argsort ranks, out-of-place math."""

    def z(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1).float()
        return x / ((x.std() if x.numel() > 1 else x.abs().mean()) + 1e-12)

    def lognorm(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1).abs().double()
        return torch.log((x + 1e-30) / (x.mean() + 1e-30)).clamp(min=-30.0).float()

    def rel(x: torch.Tensor) -> torch.Tensor:
        return (x / (x.mean() + 1e-30)).float()

    work = safe_deepcopy(model)
    layers = prunable_layers(work)
    with torch.random.fork_rng(devices=[]), masked_weights(work, masks):
        torch.manual_seed(0)
        work.train()
        total = sum(len(y) for _, y in data)
        for x, y in data:
            (F.cross_entropy(work(x), y, reduction="sum") / total).backward()
        grads = {layer.name: layer.parameter.grad.detach().clone() for layer in layers}
        grasp = make_pruner("grasp").scores(work, data, seed=0)
        synflow = make_pruner("synflow", input_shape=input_shape).scores(work, data, seed=0)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for layer in layers:
        mask = masks[layer.name] if masks is not None else torch.ones(layer.parameter.shape, dtype=torch.bool)
        theta = layer.parameter.detach().float() * mask
        g = grads[layer.name].float() * mask
        snip = (theta * g).abs()
        gs = grasp[layer.name].float() * mask
        sf = synflow[layer.name].double() * mask
        deg_r, deg_c = _unit_sums(mask.float())
        mass_r, mass_c = _unit_sums(theta.abs())
        gm_r, gm_c = _unit_sums(g.abs())
        out[layer.name] = {
            "theta": theta.reshape(-1),
            "theta_z": z(theta),
            "abs_theta_rank": ref_rank(theta.abs()),
            "grad": g.reshape(-1),
            "grad_z": z(g),
            "abs_grad_rank": ref_rank(g.abs()),
            "snip_lognorm": lognorm(snip),
            "snip_rank": ref_rank(snip),
            "grasp_z": z(gs),
            "grasp_rank": ref_rank(gs),
            "synflow_lognorm": lognorm(sf),
            "synflow_rank": ref_rank(sf),
            "row_log_degree": torch.log1p(deg_r),
            "row_mass": rel(mass_r),
            "row_grad_mass": rel(gm_r),
            "col_log_degree": torch.log1p(deg_c),
            "col_mass": rel(mass_c),
            "col_grad_mass": rel(gm_c),
        }
    return out


# ------------------------------------------------------------------------------ ranks and top-k


def _awkward_vectors() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    special = torch.randn(2000, generator=g)
    special[::7] = float("nan")
    special[::11] = float("inf")
    special[::13] = -float("inf")
    special[::17] = -0.0
    special[::19] = 0.0
    near64 = torch.randn(3000, generator=g, dtype=torch.float64)
    near64[::3] = near64[::3] * (1 + 1e-12)  # equal in float32, different in float64
    near64[::5] = -0.0
    near64[::29] = float("nan")
    tiny64 = torch.rand(20000, generator=g, dtype=torch.float64) * 1e-200  # all 0 in float32
    tiny64[::5] = 0.0
    return [
        torch.randn(5000, generator=g),
        torch.randint(0, 5, (3000,), generator=g).float(),  # many ties
        special,
        near64,
        torch.rand(50000, generator=g, dtype=torch.float64) * 1e-3 + 1.0,  # dense float32 collisions
        tiny64,
        torch.exp(torch.randn(20000, generator=g, dtype=torch.float64) * 200),  # beyond float32's range
        torch.randn(64, 3, 3, 3, generator=g).half(),
        torch.randn(99, generator=g).bfloat16(),
        torch.randint(-3, 3, (500,), generator=g),
        torch.zeros(40),
        torch.full((7,), 2.5, dtype=torch.float64),
        torch.tensor([3.0]),
        torch.tensor([]),
    ]


@pytest.mark.parametrize("i", range(len(_awkward_vectors())))
def test_rank_equals_stable_argsort(i: int) -> None:
    x = _awkward_vectors()[i]
    assert torch.equal(pct_rank(x), ref_rank(x))


@pytest.mark.parametrize("i", range(len(_awkward_vectors())))
def test_float64_rank_through_float32_equals_stable_argsort(i: int) -> None:
    """Exact whether the float32 sort suffices (no collisions) or the float64 one must run (near64, tiny64, ...)."""
    x = _awkward_vectors()[i].to(torch.float64)
    assert torch.equal(rank_float64(x, rank_values(x.numel())), ref_rank(x))


def test_packed_stable_order_equals_torch_stable_sort() -> None:
    """The packed (key, position) sort is torch's stable sort, at the int32 extremes and on many ties."""
    g = torch.Generator().manual_seed(3)
    i32 = torch.iinfo(torch.int32)
    key = torch.randint(-4, 4, (20000,), generator=g, dtype=torch.int32)
    key[::97] = i32.min
    key[::89] = i32.max
    key[5:9] = 0
    ranked, order = stable_order(key)
    ref_ranked, ref_order = torch.sort(key, stable=True)
    assert torch.equal(ranked, ref_ranked)
    assert torch.equal(torch.from_numpy(order).to(torch.int64), ref_order)
    assert torch.equal(torch.from_numpy(stable_permutation(key)), ref_order)  # the order alone, same permutation
    wide = key.to(torch.int64) << 33  # 64-bit keys take torch's own sort
    assert torch.equal(torch.from_numpy(stable_order(wide)[1]), torch.sort(wide, stable=True).indices)
    assert torch.equal(torch.from_numpy(stable_permutation(wide)), torch.sort(wide, stable=True).indices)


@pytest.mark.parametrize("backend", ["packed", "radix"])
def test_either_sort_backend_gives_the_exact_ranks(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever sort the CPU timing picks, every rank and order is the stable argsort's."""
    monkeypatch.setattr(ranking, "_backend", backend)
    for x in _awkward_vectors():
        assert torch.equal(pct_rank(x), ref_rank(x))
        x64 = x.to(torch.float64)
        assert torch.equal(rank_float64(x64, rank_values(x64.numel())), ref_rank(x64))
    key = torch.randint(-4, 4, (5000,), generator=torch.Generator().manual_seed(1), dtype=torch.int32)
    ranked, order = stable_order(key)
    ref_ranked, ref_order = torch.sort(key, stable=True)
    assert torch.equal(ranked, ref_ranked) and torch.equal(torch.from_numpy(order).to(torch.int64), ref_order)


def test_sort_backend_is_timed_once_or_fixed_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranking, "_backend", None)
    monkeypatch.delenv(ranking.SORT_ENV, raising=False)
    chosen = ranking.sort_backend()
    assert chosen in ranking.SORT_BACKENDS and ranking.sort_backend() is chosen  # cached: timed once
    for forced in ranking.SORT_BACKENDS:
        monkeypatch.setattr(ranking, "_backend", None)
        monkeypatch.setenv(ranking.SORT_ENV, forced.upper())
        assert ranking.sort_backend() == forced
    monkeypatch.setattr(ranking, "_backend", None)
    monkeypatch.setenv(ranking.SORT_ENV, "quick")
    with pytest.raises(ConfigError, match="packed or radix"):
        ranking.sort_backend()


def test_float64_key_spends_its_bits_on_the_layers_own_range() -> None:
    """Values far beyond float32's range (SynFlow's scores on ResNet-50's deep layers, ~1e60) must not
    collide in the 32-bit key, or the whole layer falls back to the 64-bit sort."""
    g = torch.Generator().manual_seed(5)
    x = torch.exp(torch.randn(100_000, generator=g, dtype=torch.float64) * 3 + 140)  # ~1e55-1e66
    assert bool((x.to(torch.float32) == float("inf")).all())  # float32 maps every value to one key
    key = _coarse_key(sort_key(x))
    ranked = torch.sort(key).values
    assert int((ranked[1:] == ranked[:-1]).sum()) < 0.01 * x.numel()
    assert torch.equal(rank_float64(x, rank_values(x.numel())), ref_rank(x))


@pytest.mark.filterwarnings("ignore:some pruning scores are NaN")  # NaN on purpose: the order is under test
@pytest.mark.parametrize("i", range(len(_awkward_vectors())))
def test_topk_equals_stable_sort(i: int) -> None:
    x = _awkward_vectors()[i]
    n = x.numel()
    for k in sorted({0, 1, n // 7, n // 2, max(0, n - 1), n, n + 3, -1}):
        assert torch.equal(topk_mask(x, k), ref_topk(x, k)), k


# ------------------------------------------------------------------------------ iterative rounds


def ref_iterate(score_fn, model: nn.Module, density: float, rounds: int, scope: str) -> Masks:
    """Rounds written plainly: a fresh copy of θ0 with the masks applied each round, full allocation."""
    masks = None
    for d in schedule_densities(density, rounds):
        work = safe_deepcopy(model)
        with masked_weights(work, masks):
            scores = score_fn(work, masks)
        if masks is not None:
            scores = {n: torch.where(masks[n], s.double(), -math.inf) for n, s in scores.items()}
        if scope == "global":  # one top-k over every weight, ties spread over the flat order (iterate's rule)
            names = list(scores)
            flat = torch.cat([scores[n].reshape(-1).double() for n in names])
            keep = topk_mask(flat, target_count(flat.numel(), d), ties="spread")
            parts = keep.split([scores[n].numel() for n in names])
            masks = Masks(
                {n: part.reshape(scores[n].shape) for n, part in zip(names, parts)}, meta={"scope": scope, "density": d}
            )
        else:
            masks = allocate(scores, d, scope=scope, warn_ties=False)
    return masks


def tied_scores(model: nn.Module, masks: Masks | None) -> dict[str, torch.Tensor]:
    """|θ ⊙ g| in train mode (batch norm updates its statistics), coarsely rounded: many ties."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(8, 3, 8, 8, generator=g), torch.arange(8) % 10
    model.train()
    layers = prunable_layers(model)
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), [layer.parameter for layer in layers])
    out = {}
    for layer, gr in zip(layers, grads):
        s = (layer.parameter.detach() * gr).abs()
        out[layer.name] = (s / (s.max() + 1e-30) * 12).round()
    return out


@pytest.mark.parametrize("scope", ["global", "uniform", "erk"])
def test_iterate_equals_fresh_copy_every_round(scope: str) -> None:
    model = build_model("resnet20", (3, 8, 8), 10, seed=0, width=0.25)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[nn.Module] = []

    def score_fn(work: nn.Module, masks: Masks | None) -> dict[str, torch.Tensor]:
        seen.append(work)
        for layer in prunable_layers(work):  # pruned weights are exactly zero, kept ones are θ0
            m = masks[layer.name] if masks is not None else torch.ones(layer.shape, dtype=torch.bool)
            assert torch.equal(layer.parameter.detach() != 0, m & (before[layer.name] != 0))
        for k, b in work.named_buffers():  # every round starts from the prepared state
            assert torch.equal(b, before[k]), k
        return tied_scores(work, masks)

    with torch_threads(1), warnings.catch_warnings(record=True) as said:  # tiny tensors: threads only add contention
        warnings.simplefilter("always")
        got = iterate(score_fn, model, 0.05, 8, scope=scope)
        want = ref_iterate(tied_scores, model, 0.05, 8, scope)
    # ties said once, of the mask returned: the per-layer scopes said them in every round (8 here)
    assert sum("chosen by position" in str(w.message) for w in said) == 1
    assert all(torch.equal(got[n], want[n]) for n in want)
    assert got.meta == want.meta and got.kept == want.kept
    assert len(seen) == 8 and all(w is seen[0] for w in seen) and seen[0] is not model  # one copy, reused
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the caller's model untouched


# ------------------------------------------------------------------------------ features


@pytest.fixture(scope="module")
def conv_setup():
    ds = load_dataset("fake:cifar10", n_train=60, n_test=10, seed=0)
    data = pruning_batch(ds, samples_per_class=2, seed=0)
    return build_model("resnet20", (3, 32, 32), 10, seed=0), data


@pytest.mark.parametrize("masked", [False, True])
def test_features_equal_reference(conv_setup, masked: bool) -> None:
    model, data = conv_setup
    g = torch.Generator().manual_seed(1)
    masks = Masks({layer.name: torch.rand(layer.shape, generator=g) < 0.3 for layer in prunable_layers(model)})
    masks = masks if masked else None
    table = compute_features(model, data, masks=masks)
    ref = ref_features(model, data, masks, (3, 32, 32))
    assert table.names == FEATURE_NAMES
    for lf in table.layers:
        for name, want in ref[lf.name].items():
            got = lf.weight.get(name, lf.row.get(name, lf.col.get(name)))
            assert got is not None, name
            if name.endswith("_rank"):
                assert torch.equal(got, want), (lf.name, name)
            else:
                torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, msg=f"{lf.name} {name}")


def test_map_layers_keeps_order_and_restores_threads() -> None:
    prev = torch.get_num_threads()
    out = map_layers(lambda i: (i, torch.get_num_threads()), list(range(9)), sizes=[1, 9, 2, 8, 3, 7, 4, 6, 5])
    assert [i for i, _ in out] == list(range(9))
    assert all(t == 1 for _, t in out)  # each item runs single-threaded
    assert torch.get_num_threads() == prev
    with single_threaded_torch():
        assert torch.get_num_threads() == 1
        assert map_layers(lambda i: map_layers(lambda j: j * i, [1, 2]), [1, 3]) == [[1, 2], [3, 6]]
    assert torch.get_num_threads() == prev
    with pytest.raises(ZeroDivisionError):
        map_layers(lambda i: 1 / i, [1, 0, 2])
    assert torch.get_num_threads() == prev


# ------------------------------------------------------------------------------ scorers


def test_folded_ranker_equals_forward(conv_setup) -> None:
    """Block scoring (row/col/layer terms broadcast, per-weight part only) = the plain MLP."""
    model, data = conv_setup
    torch.manual_seed(0)
    feats = [*DEFAULT_RANKER_FEATURES, "row_log_degree", "col_log_degree", "log_kernel"]
    ranker = Ranker(feats, hidden=(16, 8, 4)).eval()
    ranker.set_normalisation(torch.randn(len(feats)) * 0.1, torch.rand(len(feats)) + 0.5)
    table = compute_features(model, data, names=feats)
    for lf in table.layers:
        dense = torch.stack([lf.column(f) for f in feats], dim=1)
        with torch.no_grad():
            want = ranker(dense)
        for chunk in (1, 100, 1 << 14):
            torch.testing.assert_close(ranker.score_layer(lf, chunk=chunk), want, rtol=1e-5, atol=1e-5)


def test_gnn_fast_inference_equals_training_path(conv_setup) -> None:
    """Prune-time message passing and block head = the differentiable path used in training."""
    from autosparse.scorer.gnn_inputs import net_inputs
    from autosparse.scorer.gnn_net import GNNRanker
    from autosparse.topology.graph_arrays import build_graph

    model, data = conv_setup
    torch.manual_seed(0)
    feats = list(DEFAULT_RANKER_FEATURES)
    ranker = GNNRanker(feats, (16, 8), gnn_hidden=8, gnn_layers=2).eval()
    table = compute_features(model, data, names=feats)
    graph = build_graph(model, (3, 32, 32))
    inp = net_inputs(table, graph, feats)
    ranker.set_normalisation("edge", inp.edge_attr.mean(0), inp.edge_attr.std(0) + 0.1)
    ranker.set_normalisation("node", inp.node_x.mean(0), inp.node_x.std(0) + 0.1)
    with torch.no_grad():
        fast = ranker.embed(inp)
    slow = ranker.embed(inp).detach()  # grad mode on: PyG propagate over big edge chunks
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    scores = ranker.score_network(table, graph, inp)
    with torch.no_grad():
        for li, lf in enumerate(table.layers):
            dst, src = ranker.unit_terms(fast, graph, li)
            x = torch.stack([lf.column(f) for f in feats], dim=1)
            want = ranker.score_weights(x, torch.arange(lf.numel), graph.layer_meta[li], dst, src)
            torch.testing.assert_close(scores[li], want, rtol=1e-5, atol=1e-5)


def ref_edge_attr(table, graph, weight_feats: list[str]) -> torch.Tensor:
    """Per edge, the mean over the kernel slices it carries of their float64 feature means, for the
    whole network at once: what the GNN's edge features are, without the per-layer windows."""
    sums = torch.zeros(graph.num_edges, len(weight_feats), dtype=torch.float64)
    count = torch.zeros(graph.num_edges, dtype=torch.float64)
    for i, lf in enumerate(table.layers):
        se, k = graph.layer_slice_edge(i), int(graph.layer_meta[i, 3])
        means = torch.stack([lf.weight[f].reshape(-1, k).double().mean(1) for f in weight_feats], dim=1)
        sums.index_add_(0, se[1], means[se[0]])
        count.index_add_(0, se[1], torch.ones(se.shape[1], dtype=torch.float64))
    return (sums / count.clamp(min=1).unsqueeze(1)).float()


@pytest.mark.parametrize("model_name", ["conv4", "resnet20"])
def test_gnn_edge_features_by_layer_window_equal_whole_network(model_name: str, monkeypatch) -> None:
    """conv4 flattens a channel into many inputs of its linear layer (edges carrying 64 slices), resnet20's
    residual stream feeds a slice to several edges; tiny scatter chunks exercise the windows."""
    from autosparse.scorer import gnn_inputs
    from autosparse.topology.graph_arrays import build_graph

    monkeypatch.setattr(gnn_inputs, "SCATTER_CHUNK", 4099)
    ds = load_dataset("fake:cifar10", n_train=40, n_test=10, seed=0)
    shape = (3, 32, 32)
    model = build_model(model_name, shape, 10, seed=0, **({"width": 0.25} if model_name == "resnet20" else {}))
    feats = list(DEFAULT_RANKER_FEATURES)
    table = compute_features(model, pruning_batch(ds, samples_per_class=2, seed=0), names=feats)
    graph = build_graph(model, shape)
    weight_feats = gnn_inputs.feature_groups(feats)["weight"]
    got = gnn_inputs.net_inputs(table, graph, feats).edge_attr
    assert torch.equal(got, ref_edge_attr(table, graph, weight_feats))


# ------------------------------------------------------------------------------ autos end to end


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED_MLP.exists(), reason="the shipped MLP scorer is not in this checkout")
def test_autos_on_resnet18_at_99_percent_sparsity() -> None:
    ds = load_dataset("fake:cifar10", n_train=200, n_test=10, seed=0)
    model = build_model("tv:resnet18", (3, 32, 32), 10, seed=0)
    data = pruning_batch(ds, samples_per_class=10, seed=0)
    masks = prune(model, "autos", sparsity=0.99, data=data, seed=0)
    total = sum(layer.parameter.numel() for layer in prunable_layers(model))
    assert masks.kept == target_count(total, 0.01)
    assert masks.empty_layers() == []
    again = prune(model, "autos", sparsity=0.99, data=data, seed=0)
    assert all(torch.equal(masks[n], again[n]) for n in masks)
