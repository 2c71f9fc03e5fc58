"""The GNN scorer end to end on a tiny generated store, plus its graph and folding invariants."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from autosparse.core.allocation import target_count
from autosparse.core.errors import CheckpointError, ConfigError
from autosparse.data import load_dataset, pruning_batch
from autosparse.data.pruning_data import PruningData
from autosparse.features import compute_features
from autosparse.models import build_model
from autosparse.pruners import prune
from autosparse.scorer.archs.base import get_arch
from autosparse.scorer.config import DEFAULT_RANKER_FEATURES, ScorerConfig
from autosparse.scorer.gnn_data import run_graph
from autosparse.scorer.gnn_inputs import net_inputs
from autosparse.scorer.gnn_net import GNNRanker
from autosparse.scorer.loaded import load_scorer
from autosparse.scorer.training import train_scorer
from autosparse.store import StoreReader
from autosparse.topology.graph_arrays import ARRAY_NAMES, GraphArrays, build_graph

HOLDOUT = "model_label=mlp-widths24"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three MLP runs on a 500-image Fashion-MNIST subset: 2 IRP rounds of 1 epoch each."""
    from autosparse.task import ModelSpec
    from autosparse.training.irp import IRPConfig
    from autosparse.training.trainer import TrainConfig
    from data_gen.grid import GenConfig, generate

    root = tmp_path_factory.mktemp("gnn_store")
    cfg = GenConfig(
        models=[
            ModelSpec("mlp", {"widths": [32, 16]}),
            ModelSpec("mlp", {"widths": [20, 20]}),
            ModelSpec("mlp", {"widths": [24]}),
        ],
        datasets=["fashion-mnist"],  # fake: names are not valid in run ids
        seeds=[0],
        irp=IRPConfig(rounds=2, prune_fraction=0.5),
        train=TrainConfig(epochs=1, batch_size=128, num_threads=1),
        n_train=500,
        n_test=200,
        samples_per_class=2,
    )
    outcomes = generate(cfg, root / "s.zarr")
    assert len(outcomes) == 3 and not any(isinstance(o, BaseException) for o in outcomes)
    return root / "s.zarr"


@pytest.fixture(scope="module")
def scorer_dir(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gnn_scorer") / "gnn"
    cfg = ScorerConfig(
        arch="gnn", steps=20, eval_every=10, groups_per_step=4, group_size=64, alloc_steps=50, gnn_hidden=16
    )
    trained = train_scorer(store, holdout=HOLDOUT, out=out, config=cfg, command="test")
    assert len(trained.curve) == 2 and all(np.isfinite(c["loss"]) for c in trained.curve)
    return out


def _residual_net(skip: bool) -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(3, 8, 3, padding=1)
            self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=4)
            self.c3 = nn.Conv2d(8, 8, 1)
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = torch.relu(self.c1(x))
            b = torch.relu(self.c2(a))
            b = b + a if skip else b
            return self.fc(torch.flatten(self.c3(b), 1))

    torch.manual_seed(0)
    return Net()


def _tiny_data(shape: tuple[int, ...]) -> PruningData:
    gen = torch.Generator().manual_seed(0)
    return PruningData([(torch.randn(8, *shape, generator=gen), torch.randint(10, (8,), generator=gen))], 10)


def test_stored_graph_equals_the_graph_rebuilt_from_run_attrs(store: Path) -> None:
    reader = StoreReader(store)
    for run_id in reader.run_ids:
        run = reader.load_run(run_id)
        assert set(ARRAY_NAMES) <= set(run.graph)  # data_gen stored it
        stored = run_graph(run)
        run.graph = {}  # a run written before graphs were stored
        rebuilt = run_graph(run)
        for name in ARRAY_NAMES:
            assert torch.equal(getattr(stored, name), getattr(rebuilt, name)), name
        # every weight of every layer maps to at least one edge, and edges are unit pairs, not weights
        n_slices = [int(e["numel"]) // int(stored.layer_meta[i, 3]) for i, e in enumerate(run.layers)]
        for i, n in enumerate(n_slices):
            assert torch.equal(stored.layer_slice_edge(i)[0].unique(), torch.arange(n))


def test_residual_edges_carry_messages() -> None:
    shape = (3, 4, 4)
    for skip in (True, False):
        model = _residual_net(skip)
        graph = build_graph(model, shape)
        c1, c3 = graph.out_nodes(0), graph.out_nodes(2)
        src, dst = graph.edge_index
        has_skip = bool(((torch.isin(src, c1)) & torch.isin(dst, c3)).any())
        assert has_skip == skip
        table = compute_features(model, _tiny_data(shape), names=DEFAULT_RANKER_FEATURES)
        torch.manual_seed(1)
        ranker = GNNRanker(DEFAULT_RANKER_FEATURES, gnn_hidden=8, gnn_layers=1).eval()
        inp = net_inputs(table, graph, ranker.features)
        with torch.no_grad():
            h = ranker.embed(inp)
            inp.node_x[c1] += 5.0  # perturb c1's units: with one round only their direct neighbours see it
            h2 = ranker.embed(inp)
        changed = (h2[c3] - h[c3]).abs().max() > 1e-6
        assert bool(changed) == skip


def _random_ranker_on_residual_net(seed: int) -> tuple[nn.Module, GraphArrays, object, GNNRanker]:
    """A residual net with a grouped conv and a flatten into a linear layer, its graph and feature
    table, and a GNN ranker with random weights (std 0.3, so every term moves the scores)."""
    shape = (3, 4, 4)
    model = _residual_net(True)
    graph = build_graph(model, shape)
    table = compute_features(model, _tiny_data(shape), names=DEFAULT_RANKER_FEATURES)
    torch.manual_seed(seed)
    ranker = GNNRanker(DEFAULT_RANKER_FEATURES, gnn_hidden=8)
    for p in ranker.parameters():
        nn.init.normal_(p, std=0.3)
    return model, graph, table, ranker


def test_grid_message_sums_equal_the_per_edge_sums() -> None:
    """Prune time sums messages over each layer's edge grid; the per-edge path (training's, and
    the fallback for a layer that is not a grid) must give the same embeddings up to rounding."""
    import dataclasses

    _, graph, table, ranker = _random_ranker_on_residual_net(3)
    n_edge = ranker.edge_mean.numel()
    ranker.set_normalisation("edge", torch.linspace(-0.5, 0.5, n_edge), torch.linspace(0.5, 2.0, n_edge))
    inp = net_inputs(table, graph, ranker.features)
    per_edge = dataclasses.replace(inp, edge_index=inp.edge_index.clone())  # not the graph's: per-edge code
    assert all(graph.edge_grid(i) is not None for i in range(graph.num_layers))
    with torch.no_grad():
        want = ranker.embed(per_edge)
        torch.testing.assert_close(ranker.embed(inp), want, atol=1e-5, rtol=1e-5)
        graph.__dict__["_grids"][1] = None  # one layer that is not a grid: its edges the per-edge way
        torch.testing.assert_close(ranker.embed(inp), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("resnet20", {"width": 0.25}, (1, 28, 28)),  # residual stream: several feeders per input
        ("mobilenet", {"width": 0.25, "blocks": 3}, (3, 32, 32)),  # depthwise grids
        ("lenet_300_100", {}, (1, 28, 28)),  # a flatten: edges carrying many slices
    ],
)
def test_net_inputs_from_edge_grids_equal_the_per_edge_build(name: str, kwargs: dict, shape: tuple) -> None:
    """Edge features gathered a grid row at a time and degrees counted from the grids are the
    per-edge build's, bit for bit (the scorer's inputs must not move with the speed work)."""
    model = build_model(name, shape, 10, seed=0, **kwargs)
    table = compute_features(model, _tiny_data(shape), names=DEFAULT_RANKER_FEATURES)
    graph = build_graph(model, shape)
    fast = net_inputs(table, graph, DEFAULT_RANKER_FEATURES)
    graph.__dict__["_grids"] = dict.fromkeys(range(graph.num_layers))  # no layer a grid: per-edge code
    slow = net_inputs(table, graph, DEFAULT_RANKER_FEATURES)
    for key in ("node_x", "edge_attr", "inv_in_deg", "inv_out_deg"):
        assert torch.equal(getattr(fast, key), getattr(slow, key)), key


def test_folded_scores_match_the_training_path() -> None:
    """score_network (folded, chunked, used by autos) == score_weights (used by the loss)."""
    model, graph, table, ranker = _random_ranker_on_residual_net(2)
    folded = ranker.score_network(table, graph, chunk=50)  # several chunks per layer
    with torch.no_grad():
        h = ranker.embed(net_inputs(table, graph, ranker.features))
        for li, lf in enumerate(table.layers):
            dst, src = ranker.unit_terms(h, graph, li)
            x = torch.stack([lf.column(f) for f in ranker.features], dim=1)
            direct = ranker.score_weights(x, torch.arange(lf.numel), graph.layer_meta[li], dst, src)
            torch.testing.assert_close(folded[li], direct, atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match="input shape"):
        get_arch("gnn").score_layers(ranker, table, model, None)


def test_trained_gnn_scorer_prunes_an_unseen_conv_net(scorer_dir: Path) -> None:
    scorer = load_scorer(str(scorer_dir))
    assert scorer.card.arch == "gnn"
    assert scorer.card.ranker["gnn_hidden"] == 16 and scorer.card.ranker["gnn_layers"] == 2
    assert scorer.card.ranker["feature_groups"]["weight"]
    assert scorer.card.metrics  # evaluated on the held-out run through the gnn arch's score_run
    (per_run,) = scorer.card.metrics.values()
    assert np.isfinite(per_run["rounds"]["1"]["precision"])

    ds = load_dataset("fake:fashion-mnist", n_train=100, n_test=20)
    data = pruning_batch(ds, samples_per_class=2)
    model = build_model("conv2", (1, 28, 28), 10, seed=0, width=0.25)
    masks = prune(model, "autos", density=0.01, data=data, scorer=str(scorer_dir))
    total = sum(m.numel() for m in masks.values())
    assert masks.kept == target_count(total, 0.01)
    assert not masks.empty_layers()


def test_tampered_checkpoint_is_refused(scorer_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(scorer_dir, bad)
    weights = bad / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match its card"):
        load_scorer(str(bad))

    edited = tmp_path / "edited"
    shutil.copytree(scorer_dir, edited)
    card = json.loads((edited / "card.json").read_text())
    card["ranker"]["feature_groups"]["row"] = ["snip_rank"]
    (edited / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="feature groups"):
        load_scorer(str(edited))


def test_graph_arrays_round_trip_and_validation() -> None:
    model = build_model("mlp", (1, 28, 28), 10, seed=0, widths=[12])
    arrays = build_graph(model, (1, 28, 28)).to_arrays()
    g = GraphArrays.from_arrays(arrays)
    assert g.num_input_nodes == 784 and g.num_edges == 784 * 12 + 12 * 10
    from autosparse.core.errors import StoreError

    broken = dict(arrays, edge_index=arrays["edge_index"] + 10_000)
    with pytest.raises(StoreError, match="out of range"):
        GraphArrays.from_arrays(broken)
    with pytest.raises(StoreError, match="does not match weight shape"):
        g.check_layers([(12, 784), (10, 13)])


def test_training_edge_sample_keeps_about_fanout_edges_per_unit() -> None:
    model = build_model("mlp", (1, 28, 28), 10, seed=0, widths=[100])
    graph = build_graph(model, (1, 28, 28))
    table = compute_features(model, _tiny_data((1, 28, 28)), names=DEFAULT_RANKER_FEATURES)
    full = net_inputs(table, graph, DEFAULT_RANKER_FEATURES)
    sub = full.sample_edges(8, torch.Generator().manual_seed(0))
    first = graph.edge_layer == 0
    kept_first = int((sub.edge_index[1] < graph.out_nodes(1)[0]).sum())
    # layer 0: p = 8 / min(784 in, 100 out) = 0.08 of 78,400 edges; layer 1 (100 -> 10): p = 8 / 10
    assert 5000 < kept_first < 7600 and int(first.sum()) == 78_400
    assert sub.edge_attr.shape == (sub.edge_index.shape[1], full.edge_attr.shape[1])
    torch.manual_seed(3)
    ranker = GNNRanker(DEFAULT_RANKER_FEATURES, gnn_hidden=8).eval()
    with torch.no_grad():
        h_full = ranker.embed(full)
        h_sub = ranker.embed(full.sample_edges(32, torch.Generator().manual_seed(0)))
    assert float((h_full - h_sub).norm() / h_full.norm()) < 0.15  # the sampled mean estimates the full one


@pytest.mark.parametrize("name", ["mlp", "gnn"])
def test_each_arch_keeps_the_fit_loop_contract(store: Path, name: str) -> None:
    """What scorer.fit and scorer.loaded rely on, checked on both built-in architectures."""
    from autosparse.scorer.archs.base import TrainingSplit
    from autosparse.scorer.checkpoint import Card
    from autosparse.scorer.data import load_samples, open_split

    cfg = ScorerConfig(arch=name, groups_per_step=3, group_size=16, gnn_hidden=8, max_per_layer=500)
    train_reader, val_reader = open_split(str(store), HOLDOUT)
    assert val_reader is not None
    split = TrainingSplit(
        train_reader,
        val_reader,
        load_samples(train_reader, cfg.ranker_features, cfg.allocator_features, max_per_layer=cfg.max_per_layer),
        load_samples(val_reader, cfg.ranker_features, cfg.allocator_features, keep_full=True),
    )
    arch = get_arch(name)
    torch.manual_seed(0)
    ranker = arch.new_ranker(cfg)
    data = arch.training_data(ranker, split, cfg)
    scores, labels = arch.sample_batch(ranker, data.train, cfg, torch.Generator().manual_seed(0))
    assert scores.shape == labels.shape == (3, 16) and scores.requires_grad
    assert len(data.monitor) == len(split.val_runs)  # early stopping looks at the held-out runs
    for item in data.monitor:
        got, want = arch.monitor_scores(ranker, item)
        assert [s.shape for s in got] == [y.shape for y in want] and item.densities
    (run,) = split.val_runs
    assert [len(s) for s in arch.score_run(ranker, val_reader, run)] == run.layer_numel.tolist()
    card = Card(
        name="t",
        arch=name,
        schema_version=1,
        ranker={"features": list(cfg.ranker_features), "hidden": list(cfg.hidden), **arch.card_meta(cfg)},
        allocator={},
        normalisation={},
    )
    rebuilt = arch.from_card(card)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in ranker.state_dict().items()}


def test_same_seed_same_gnn_scorer(store: Path, scorer_dir: Path, tmp_path: Path) -> None:
    cfg = ScorerConfig(
        arch="gnn", steps=20, eval_every=10, groups_per_step=4, group_size=64, alloc_steps=50, gnn_hidden=16
    )
    train_scorer(store, holdout=HOLDOUT, out=tmp_path / "again", config=cfg, command="test")
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (scorer_dir / "model.safetensors").read_bytes()
