"""The GNN ranker as an architecture: whole networks in, one score per weight out.

Whole networks are batched one at a time (no NeighborLoader, pyg-lib or torch-scatter needed):
a training step embeds one training network's graph and applies the within-layer ListNet loss
(:mod:`autosparse.scorer.fit`) to groups of weights sampled from its layers, so gradients reach
the message passing through every group. Training messages run on a GraphSAGE-style edge sample
(about :data:`TRAIN_FANOUT` edges per unit and direction): a dense layer of a training MLP is a
complete bipartite block, and the full 470K-edge graph of a 784-500-150 MLP made a step ten
times slower for an embedding within ~3% of the sampled one. Inference always uses every edge.

Unlike the MLP, the GNN needs each run's unit graph and whole feature table, so it loads its
training networks from the store itself rather than using ``train-scorer``'s sampled groups.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from autosparse.core.errors import CheckpointError, ConfigError
from autosparse.core.parallel import single_threaded_torch
from autosparse.features import FeatureTable
from autosparse.scorer.archs.base import Arch, RankerData, TrainingSplit
from autosparse.scorer.archs.registry import register_arch
from autosparse.scorer.checkpoint import Card
from autosparse.scorer.config import ScorerConfig
from autosparse.scorer.data import RunSamples, healthy_rounds
from autosparse.scorer.gnn_data import run_graph, table_from_run
from autosparse.scorer.gnn_inputs import NetInputs, edge_feature_names, feature_groups, net_inputs, node_feature_names
from autosparse.scorer.gnn_net import GNNRanker
from autosparse.store import StoreReader
from autosparse.topology.graph_arrays import build_graph

log = logging.getLogger(__name__)

TRAIN_WEIGHT_CHUNK = 1 << 20  # sampled weights per head call when scoring training runs
TRAIN_FANOUT = 64  # training messages: about this many sampled edges per unit and direction


@dataclass
class GnnNet:
    """One store run prepared for the GNN: inputs plus (sampled or full) weights and labels."""

    run_id: str
    inputs: NetInputs
    table: FeatureTable | None  # kept for fully scored (held-out) runs only: it views the whole feature array
    densities: list[float]
    idx: list[torch.Tensor | None] = field(default_factory=list)  # sampled flat indices (None = all)
    x: list[torch.Tensor | None] = field(default_factory=list)  # (n_s, F) features of the sample
    label: list[torch.Tensor] = field(default_factory=list)


@dataclass
class GnnTrain:
    """The training networks and, per network, the layers with at least two weights to rank."""

    nets: list[GnnNet]
    usable: list[list[int]]
    candidates: list[int]  # networks with at least one usable layer


@register_arch("gnn")
class GnnArch(Arch):
    def card_meta(self, cfg: ScorerConfig) -> dict[str, Any]:
        feats = tuple(cfg.ranker_features)
        return {
            "gnn_hidden": int(cfg.gnn_hidden),
            "gnn_layers": int(cfg.gnn_layers),
            "feature_groups": feature_groups(feats),
            "node_features": node_feature_names(feats),
            "edge_features": edge_feature_names(feats),
        }

    def new_ranker(self, cfg: ScorerConfig) -> nn.Module:
        return GNNRanker(tuple(cfg.ranker_features), cfg.hidden, cfg.gnn_hidden, cfg.gnn_layers)

    def from_card(self, card: Card) -> nn.Module:
        spec = card.ranker
        missing = [k for k in ("features", "hidden", "gnn_hidden", "gnn_layers") if k not in spec]
        if missing:
            raise CheckpointError(
                f"the scorer card's ranker lacks {missing}; it was not written by train-scorer --arch gnn"
            )
        feats = list(spec["features"])
        recorded = spec.get("feature_groups")
        if recorded is not None and recorded != feature_groups(feats):
            raise CheckpointError(
                "the card's GNN feature groups disagree with this autosparse's feature schema; "
                "retrain the scorer with this version"
            )
        try:
            return GNNRanker(feats, spec["hidden"], int(spec["gnn_hidden"]), int(spec["gnn_layers"]))
        except (ConfigError, TypeError, ValueError) as exc:
            raise CheckpointError(f"the scorer card describes an invalid GNN ({exc}); retrain the scorer") from exc

    def training_data(self, ranker: nn.Module, split: TrainingSplit, cfg: ScorerConfig) -> RankerData:
        assert isinstance(ranker, GNNRanker)
        rng = np.random.default_rng(cfg.seed)
        features = ranker.features
        train_reader, val_reader = split.train_reader, split.val_reader
        train = [
            _load_net(train_reader, r, features, cfg.max_per_layer, rng, cfg.min_round_accuracy)
            for r in train_reader.run_ids
        ]
        val = (
            [_load_net(val_reader, r, features, None, rng, cfg.min_round_accuracy) for r in val_reader.run_ids]
            if val_reader is not None
            else []
        )
        _normalise(ranker, train)
        log.info("GNN ranker: %d training networks, %d held-out", len(train), len(val))
        usable = [[li for li, y in enumerate(net.label) if y.numel() >= 2] for net in train]
        if not any(usable):
            raise ConfigError("no training layer has two or more weights to rank; generate runs of larger models")
        candidates = [i for i, u in enumerate(usable) if u]
        return RankerData(train=GnnTrain(train, usable, candidates), monitor=val or train)

    def sample_batch(
        self, ranker: nn.Module, train: GnnTrain, cfg: ScorerConfig, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(ranker, GNNRanker)
        ni = train.candidates[int(torch.randint(len(train.candidates), (1,), generator=gen))]
        net, layers = train.nets[ni], train.usable[ni]
        h = ranker.embed(net.inputs.sample_edges(TRAIN_FANOUT, gen))
        picks = torch.randint(len(layers), (cfg.groups_per_step,), generator=gen).tolist()
        scores, labels = [], []
        terms: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for pi in picks:
            li = layers[pi]
            if li not in terms:
                terms[li] = ranker.unit_terms(h, net.inputs.graph, li)
            idx, x, y = net.idx[li], net.x[li], net.label[li]
            assert idx is not None and x is not None
            sel = torch.randint(y.numel(), (cfg.group_size,), generator=gen)
            scores.append(ranker.score_weights(x[sel], idx[sel], net.inputs.graph.layer_meta[li], *terms[li]))
            labels.append(y[sel])
        return torch.stack(scores), torch.stack(labels)

    def monitor_scores(self, ranker: nn.Module, item: GnnNet) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        assert isinstance(ranker, GNNRanker)
        return _net_scores(ranker, item), item.label

    def score_run(self, ranker: nn.Module, reader: StoreReader | None, run: RunSamples) -> list[torch.Tensor]:
        assert isinstance(ranker, GNNRanker) and reader is not None
        data = reader.load_run(run.run_id, columns=list(ranker.features))
        table = table_from_run(data, ranker.features)
        return ranker.score_network(table, run_graph(data))

    def score_layers(
        self, ranker: nn.Module, table: FeatureTable, model: nn.Module | None, input_shape: Sequence[int] | None
    ) -> dict[str, torch.Tensor]:
        if model is None or not input_shape:
            raise ConfigError(
                "the GNN scorer needs the model and its input shape to trace the unit graph; "
                "pass pruning data (data=...) or input_shape=(C, H, W) to the autos pruner"
            )
        assert isinstance(ranker, GNNRanker)
        with single_threaded_torch():  # the large parts run in parallel blocks (map_layers)
            graph = build_graph(model, tuple(int(s) for s in input_shape))
            scores = ranker.score_network(table, graph)
        return {lf.name: s.reshape(lf.shape) for lf, s in zip(table.layers, scores, strict=True)}


def _load_net(
    reader: StoreReader,
    run_id: str,
    features: Sequence[str],
    max_per_layer: int | None,
    rng: np.random.Generator,
    min_round_accuracy: float = 0.0,
) -> GnnNet:
    data = reader.load_run(run_id, columns=list(features))
    table = table_from_run(data, features)
    graph = run_graph(data)
    feats = torch.from_numpy(np.asarray(data.features, dtype=np.float32))
    label = torch.from_numpy(np.asarray(data.label, dtype=np.int64))
    full = max_per_layer is None
    densities = list(data.attrs.get("densities") or [])
    healthy = healthy_rounds(data.attrs.get("accuracies") or [], min_round_accuracy)  # see load_samples
    if healthy is not None and healthy + 1 < len(densities):
        densities, label = densities[: healthy + 1], label.clamp(max=healthy)
    net = GnnNet(run_id, net_inputs(table, graph, features), table if full else None, densities)
    for entry in data.layers:
        off, n = int(entry["offset"]), int(entry["numel"])
        if max_per_layer is None:
            net.idx.append(None)
            net.x.append(None)
            net.label.append(label[off : off + n])
            continue
        idx = np.arange(n) if n <= max_per_layer else np.sort(rng.choice(n, size=max_per_layer, replace=False))
        it = torch.from_numpy(idx)
        net.idx.append(it)
        net.x.append(feats[off + it])
        net.label.append(label[off + it])
    return net


def _normalise(ranker: GNNRanker, nets: list[GnnNet]) -> None:
    """Feature, node and edge statistics of the training networks (float64 running sums)."""

    def stats(blocks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        s = sum(b.double().sum(0) for b in blocks)
        s2 = sum((b.double() ** 2).sum(0) for b in blocks)
        n = sum(b.shape[0] for b in blocks)
        mean = s / max(n, 1)
        var = (s2 / max(n, 1) - mean**2).clamp(min=0) * n / max(n - 1, 1)
        return mean.float(), var.sqrt().float()

    ranker.set_normalisation("feat", *stats([x for net in nets for x in net.x if x is not None]))
    ranker.set_normalisation("node", *stats([net.inputs.node_x for net in nets]))
    ranker.set_normalisation("edge", *stats([net.inputs.edge_attr for net in nets]))


def _net_scores(ranker: GNNRanker, net: GnnNet) -> list[torch.Tensor]:
    """Scores of the weights a prepared network carries: all of them (held-out) or its sample (training)."""
    if net.table is not None:
        return ranker.score_network(net.table, net.inputs.graph, net.inputs)
    with torch.no_grad():
        h = ranker.embed(net.inputs)
        out = []
        for li in range(len(net.label)):
            dst, src = ranker.unit_terms(h, net.inputs.graph, li)
            idx, x = net.idx[li], net.x[li]
            assert idx is not None and x is not None
            meta = net.inputs.graph.layer_meta[li]
            out.append(
                torch.cat(
                    [
                        ranker.score_weights(
                            x[s : s + TRAIN_WEIGHT_CHUNK], idx[s : s + TRAIN_WEIGHT_CHUNK], meta, dst, src
                        )
                        for s in range(0, len(idx), TRAIN_WEIGHT_CHUNK)
                    ]
                )
            )
        return out
