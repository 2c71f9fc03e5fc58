"""The GNN ranker: per-weight within-layer scores that can see the network around each weight.

Why a GNN at all: the MLP ranker scores a weight from its own features and its two units'
summaries, so it cannot know that a unit feeds a layer that is itself nearly dead, or that a
channel sits on a residual path that every later block reads. Message passing over the unit
graph (:mod:`autosparse.topology.graph`, re-packed by :mod:`autosparse.scorer.gnn_data`) lets each unit's
embedding carry that context, and the per-weight head reads the embeddings of the weight's two
ends.

Shapes of the computation:

* nodes = units (neurons, channels, input units). A unit's input vector is its row features as
  an output unit of its layer, its layer's features, the mean of the column features of every
  input index it feeds (its role as a *source*), and four structural values (is-input, feeds
  nothing, log in/out degree in the unit graph). Input nodes have zero row/layer parts.
* edges = unit pairs (a conv kernel is one edge); an edge's features are the mean, over the
  weights it carries, of the ranker's weight-level features (ranks, z-scores, saliencies).
* ``gnn_layers`` rounds of message passing, each with one forward (input → output) and one
  backward (output → input) :class:`~torch_geometric.nn.MessagePassing`, mean-aggregated (sums
  over edge chunks divided by the degree, so memory is bounded on a 2.4M-edge ResNet-18).
* head: ``score_w = MLP(W·x_w + P·h[src] + Q·h[dst])`` where ``x_w`` are the same per-weight
  features the MLP ranker reads. Its first layer is linear, so it is *folded* like
  :meth:`autosparse.scorer.nets.Ranker.score_layer`: row, column and layer terms (and ``Q·h``
  per output unit, ``P·h`` averaged over the feeders of each input index) are computed once
  per unit and broadcast over blocks of rows, and only the weight-level features are
  multiplied per weight. On an 11M-weight ResNet-18 the head costs about what the MLP
  ranker's does; the message passing adds a few seconds.

Whole networks are batched one at a time (no NeighborLoader, pyg-lib or torch-scatter needed):
a training step embeds one training network's graph and applies the same within-layer ListNet
loss as the MLP ranker to groups of weights sampled from its layers. Training messages run on
a GraphSAGE-style edge sample (about :data:`TRAIN_FANOUT` edges per unit and direction): a
dense layer of a training MLP is a complete bipartite block, and the full 470K-edge graph of
a 784-500-150 MLP made a step ten times slower for an embedding within ~3% of the sampled one.
Inference always uses every edge.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import MessagePassing

from autosparse.core.errors import CheckpointError, ConfigError
from autosparse.core.parallel import map_layers, single_threaded_torch
from autosparse.features import SPECS, FeatureTable, LayerFeatures
from autosparse.scorer.gnn_data import GraphArrays, build_graph, run_graph, table_from_run
from autosparse.scorer.nets import _mlp, _rest, safe_std

if TYPE_CHECKING:
    from autosparse.scorer.checkpoint import Card
    from autosparse.scorer.data import RunSamples
    from autosparse.scorer.training import ScorerConfig
    from autosparse.store import StoreReader

log = logging.getLogger(__name__)

STRUCT_FEATURES = ("is_input", "is_sink", "log_in_degree", "log_out_degree")
EDGE_CHUNK = 1 << 19  # edges per message chunk: bounds the (E, hidden) message tensor
WEIGHT_CHUNK = 1 << 14  # weights per head block at prune time, as in Ranker.score_layer (cache-sized)
TRAIN_WEIGHT_CHUNK = 1 << 20  # sampled weights per head call when scoring training runs
INFER_CHUNK = 1 << 14  # edges per message block at prune time: its (edges, hidden) messages stay in cache
INFER_PART = 1 << 18  # edges summed by one thread at prune time (a fixed size: results are thread-count free)
TRAIN_FANOUT = 64  # training messages: about this many sampled edges per unit and direction


def feature_groups(features: Sequence[str]) -> dict[str, list[str]]:
    """The ranker's features split by schema group (the card records this)."""
    return {g: [f for f in features if SPECS[f].group == g] for g in ("weight", "row", "col", "layer")}


def node_feature_names(features: Sequence[str]) -> list[str]:
    g = feature_groups(features)
    return [*g["row"], *g["layer"], *[f"src_{c}" for c in g["col"]], *STRUCT_FEATURES]


def edge_feature_names(features: Sequence[str]) -> list[str]:
    return [f"mean_{w}" for w in feature_groups(features)["weight"]]


# ------------------------------------------------------------------------------------------
# Inputs: node and edge features of one network
# ------------------------------------------------------------------------------------------


@dataclass
class NetInputs:
    """Everything the message passing and the head need about one network (raw, unnormalised)."""

    graph: GraphArrays
    node_x: torch.Tensor  # (N, Dn)
    edge_index: torch.Tensor  # (2, E) the edges messages run on (all of the graph's, or a training sample)
    edge_attr: torch.Tensor  # (E, Fe)
    inv_in_deg: torch.Tensor  # (N,) 1 / max(1, in-degree): mean over forward messages
    inv_out_deg: torch.Tensor  # (N,) 1 / max(1, out-degree): mean over backward messages
    _keep_p: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)  # fanout -> per-edge keep prob

    def sample_edges(self, fanout: int, gen: torch.Generator) -> NetInputs:
        """A random edge subset where every unit keeps about ``fanout`` edges each way (training only).

        Message cost is (edges x hidden), and a dense layer of a training MLP is a complete
        bipartite block (784 x 500 edges): GraphSAGE-style neighbour sampling keeps each edge
        with probability ``fanout / min(in-degree of its dst, out-degree of its src)``, so the
        mean over the kept edges estimates the full mean that inference uses, at a fraction of the cost.
        """
        src, dst = self.graph.edge_index
        n = self.graph.num_nodes
        if fanout not in self._keep_p:
            in_deg = torch.bincount(dst, minlength=n)
            out_deg = torch.bincount(src, minlength=n)
            self._keep_p[fanout] = (fanout / torch.minimum(in_deg[dst], out_deg[src]).clamp(min=1).float()).clamp(
                max=1.0
            )
        p = self._keep_p[fanout]
        keep = torch.rand(p.shape, generator=gen) < p
        ei = self.graph.edge_index[:, keep]
        return NetInputs(
            graph=self.graph,
            node_x=self.node_x,
            edge_index=ei,
            edge_attr=self.edge_attr[keep],
            inv_in_deg=1.0 / torch.bincount(ei[1], minlength=n).clamp(min=1).float(),
            inv_out_deg=1.0 / torch.bincount(ei[0], minlength=n).clamp(min=1).float(),
        )


def net_inputs(table: FeatureTable, graph: GraphArrays, features: Sequence[str]) -> NetInputs:
    """Node and edge features of one network from its feature table and unit graph."""
    groups = feature_groups(features)
    n, e = graph.num_nodes, graph.num_edges
    layers = table.layers
    graph.check_layers([lf.shape for lf in layers])
    fr, fl, fc, fw = groups["row"], groups["layer"], groups["col"], groups["weight"]
    row_part = torch.zeros(n, len(fr) + len(fl))
    src_sum = torch.zeros(n, len(fc), dtype=torch.float64)
    src_cnt = torch.zeros(n, dtype=torch.float64)
    edge_sum = torch.zeros(e, len(fw), dtype=torch.float64)
    edge_cnt = torch.zeros(e, dtype=torch.float64)

    def slice_means(i: int) -> torch.Tensor | None:
        """(slices, Fw) float64 means of the weight features over each kernel slice of layer ``i``."""
        if not fw or not graph.layer_slice_edge(i).shape[1]:
            return None
        k = int(graph.layer_meta[i, 3])
        return torch.stack([layers[i].weight[f].reshape(-1, k).double().mean(1) for f in fw], dim=1)

    # the O(weights) part, one layer per thread; the scatter into edges below stays in layer order
    all_means = map_layers(slice_means, range(len(layers)), sizes=[lf.numel for lf in layers])
    for i, lf in enumerate(layers):
        nodes = graph.out_nodes(i)
        if fr:
            row_part[nodes, : len(fr)] = torch.stack([lf.row[f].float() for f in fr], dim=1)
        if fl:
            row_part[nodes, len(fr) :] = torch.tensor([float(lf.layer[f]) for f in fl])
        pairs = graph.layer_in_pairs(i)
        if pairs.shape[1]:
            width = lf.shape[1] if len(lf.shape) > 1 else 1
            if fc:
                cols = torch.stack([lf.col[f].double() for f in fc], dim=1)
                src_sum.index_add_(0, pairs[1], cols[pairs[0] % width])
            src_cnt.index_add_(0, pairs[1], torch.ones(pairs.shape[1], dtype=torch.float64))
        se = graph.layer_slice_edge(i)
        means = all_means[i]
        if means is not None:
            edge_sum.index_add_(0, se[1], means[se[0]])
            edge_cnt.index_add_(0, se[1], torch.ones(se.shape[1], dtype=torch.float64))
    src = (src_sum / src_cnt.clamp(min=1).unsqueeze(1)).float()
    in_deg = torch.bincount(graph.edge_index[1], minlength=n).float()
    out_deg = torch.bincount(graph.edge_index[0], minlength=n).float()
    struct = torch.stack(
        [
            (graph.node_layer < 0).float(),
            (src_cnt == 0).float(),
            torch.log1p(in_deg),
            torch.log1p(out_deg),
        ],
        dim=1,
    )
    return NetInputs(
        graph=graph,
        node_x=torch.cat([row_part, src, struct], dim=1),
        edge_index=graph.edge_index,
        edge_attr=(edge_sum / edge_cnt.clamp(min=1).unsqueeze(1)).float(),
        inv_in_deg=1.0 / in_deg.clamp(min=1),
        inv_out_deg=1.0 / out_deg.clamp(min=1),
    )


# ------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------


class DirectedConv(MessagePassing):
    """Mean over one direction's neighbours of relu(A·h_neighbour + B·edge): one half of a round.

    ``flow="source_to_target"`` carries information forward (input → output units),
    ``"target_to_source"`` backward. Aggregation is a sum over edge chunks divided by the
    degree, which equals the mean and never materialises more than one chunk of messages.
    """

    def __init__(self, hidden: int, edge_dim: int, flow: str) -> None:
        super().__init__(aggr="add", flow=flow)
        self.node = nn.Linear(hidden, hidden)
        self.edge = nn.Linear(edge_dim, hidden, bias=False)

    def forward(  # type: ignore[override]
        self,
        h: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
        edge_norm: tuple[torch.Tensor, torch.Tensor],
        inv_deg: torch.Tensor,
        chunk: int = EDGE_CHUNK,
    ) -> torch.Tensor:
        n = h.shape[0]
        x = self.node(h)
        if not torch.is_grad_enabled():
            return self._infer(x, edge_index, edge_attr, edge_norm) * inv_deg.unsqueeze(1)
        mean, std = edge_norm
        out = torch.zeros_like(x)
        for s in range(0, edge_index.shape[1], chunk):
            ea = (edge_attr[s : s + chunk] - mean) / std
            out = out + self.propagate(edge_index[:, s : s + chunk], x=x, edge_attr=ea, size=(n, n))
        return out * inv_deg.unsqueeze(1)

    def _infer(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
        edge_norm: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """Sum of messages without autograd: what ``propagate`` computes, up to float rounding.

        The edge normalisation is folded into the edge weights, each block of edges is one
        gather, one small matmul and one ``index_add_`` with no PyG bookkeeping, and blocks are
        small enough for their (edges, hidden) messages to stay in cache. Edge ranges of fixed
        size are summed separately (one thread each, :func:`~autosparse.features.compute.map_layers`)
        and added in a fixed order, so the result does not depend on the thread count.
        """
        mean, std = edge_norm
        w = self.edge.weight / std  # (hidden, Fe)
        b = -(w @ mean)
        src_row, dst_row = (0, 1) if self.flow == "source_to_target" else (1, 0)
        src, dst = edge_index[src_row], edge_index[dst_row]
        e = edge_index.shape[1]

        def part(start: int) -> torch.Tensor:
            acc = torch.zeros_like(x)
            with torch.no_grad():
                for s in range(start, min(e, start + INFER_PART), INFER_CHUNK):
                    t = min(e, start + INFER_PART, s + INFER_CHUNK)
                    m = torch.addmm(b, edge_attr[s:t], w.T)
                    m += x.index_select(0, src[s:t])
                    acc.index_add_(0, dst[s:t], m.relu_())
            return acc

        parts = map_layers(part, range(0, e, INFER_PART))
        out = torch.zeros_like(x)
        for acc in parts:
            out += acc
        return out

    def message(self, x_j: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = self.edge(edge_attr)
        out += x_j
        return out.relu_()


class GNNRanker(nn.Module):
    """Per-weight score (higher = keep) from its features and its two units' graph embeddings."""

    def __init__(
        self,
        features: Sequence[str],
        hidden: Sequence[int] = (32, 16),
        gnn_hidden: int = 32,
        gnn_layers: int = 2,
    ) -> None:
        super().__init__()
        self.features = tuple(features)
        self.hidden = tuple(int(h) for h in hidden)
        self.gnn_hidden = int(gnn_hidden)
        self.gnn_layers = int(gnn_layers)
        groups = feature_groups(self.features)
        if not groups["weight"]:
            raise ConfigError(
                "the GNN scorer needs at least one weight-level ranker feature (e.g. abs_theta_rank, snip_rank) "
                "to describe its edges; add one to ranker_features"
            )
        if not self.hidden or self.gnn_hidden < 1 or self.gnn_layers < 1:
            raise ConfigError("GNN scorer: hidden must be non-empty and gnn_hidden, gnn_layers >= 1")
        n_feat = len(self.features)
        n_node = len(node_feature_names(self.features))
        n_edge = len(groups["weight"])
        self.register_buffer("feat_mean", torch.zeros(n_feat))
        self.register_buffer("feat_std", torch.ones(n_feat))
        self.register_buffer("node_mean", torch.zeros(n_node))
        self.register_buffer("node_std", torch.ones(n_node))
        self.register_buffer("edge_mean", torch.zeros(n_edge))
        self.register_buffer("edge_std", torch.ones(n_edge))
        hdim, h1 = self.gnn_hidden, self.hidden[0]
        self.node_in = nn.Linear(n_node, hdim)
        self.fwd = nn.ModuleList(DirectedConv(hdim, n_edge, "source_to_target") for _ in range(self.gnn_layers))
        self.bwd = nn.ModuleList(DirectedConv(hdim, n_edge, "target_to_source") for _ in range(self.gnn_layers))
        self.self_lin = nn.ModuleList(nn.Linear(hdim, hdim) for _ in range(self.gnn_layers))
        self.first = nn.Linear(n_feat, h1)
        self.src_proj = nn.Linear(hdim, h1, bias=False)  # P
        self.dst_proj = nn.Linear(hdim, h1, bias=False)  # Q
        self.rest = nn.Sequential(nn.ReLU(), _mlp([*self.hidden, 1]))

    def set_normalisation(self, which: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        getattr(self, f"{which}_mean").copy_(mean)
        getattr(self, f"{which}_std").copy_(safe_std(std))

    def embed(self, inp: NetInputs) -> torch.Tensor:
        """(N, gnn_hidden) unit embeddings of one whole network."""
        h = torch.relu(self.node_in((inp.node_x - self.node_mean) / self.node_std))
        norm = (self.edge_mean, self.edge_std)
        for fwd, bwd, lin in zip(self.fwd, self.bwd, self.self_lin, strict=True):
            msg = fwd(h, inp.edge_index, inp.edge_attr, norm, inp.inv_in_deg)
            msg = msg + bwd(h, inp.edge_index, inp.edge_attr, norm, inp.inv_out_deg)
            h = h + torch.relu(lin(h) + msg)
        return h

    def unit_terms(self, h: torch.Tensor, graph: GraphArrays, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q·h per output unit, P·h averaged over the feeders of each input index) of one layer."""
        p = self.src_proj(h)
        return self.dst_proj(h[graph.out_nodes(layer)]), _src_mean(p, graph, layer)

    def score_weights(
        self, x: torch.Tensor, idx: torch.Tensor, meta: torch.Tensor, dst: torch.Tensor, src: torch.Tensor
    ) -> torch.Tensor:
        """Scores of some weights of one layer (differentiable; training path).

        ``x`` (n, F) raw ranker features, ``idx`` their flat indices in the weight, ``meta`` the
        layer's (out_units, in_units, groups, kernel), ``dst``/``src`` from :meth:`unit_terms`.
        """
        o, j = _weight_units(idx, meta)
        z = self.first((x - self.feat_mean) / self.feat_std) + dst[o] + src[j]
        return self.rest(z).squeeze(-1)

    @torch.no_grad()
    def score_network(
        self, table: FeatureTable, graph: GraphArrays, inp: NetInputs | None = None, chunk: int = WEIGHT_CHUNK
    ) -> list[torch.Tensor]:
        """Flat scores of every weight of every layer, folded and chunked (bounded memory)."""
        inp = inp if inp is not None else net_inputs(table, graph, self.features)
        h = self.embed(inp)
        p = self.src_proj(h)
        q = self.dst_proj(h)
        del h
        W = self.first.weight / self.feat_std
        bias = self.first.bias - W @ self.feat_mean
        idx = {grp: [i for i, f in enumerate(self.features) if SPECS[f].group == grp] for grp in _GROUPS}
        out = []
        for li, lf in enumerate(table.layers):
            out.append(self._score_layer(lf, graph, li, W, bias, idx, p, q, chunk))
        return out

    def _score_layer(
        self,
        lf: LayerFeatures,
        graph: GraphArrays,
        li: int,
        W: torch.Tensor,
        bias: torch.Tensor,
        idx: dict[str, list[int]],
        p: torch.Tensor,
        q: torch.Tensor,
        chunk: int,
    ) -> torch.Tensor:
        def term(group: str, values: dict[str, Any]) -> torch.Tensor | None:
            cols = idx[group]
            if not cols:
                return None
            x = torch.stack([torch.as_tensor(values[self.features[c]], dtype=torch.float32) for c in cols], dim=-1)
            return x @ W[:, cols].T

        layer_term = bias.clone()
        if idx["layer"]:
            layer_term += term("layer", {k: float(v) for k, v in lf.layer.items()})
        meta = graph.layer_meta[li]
        row = q[graph.out_nodes(li)]
        row_feat = term("row", lf.row)
        if row_feat is not None:
            row = row + row_feat
        row = row + layer_term  # every weight has exactly one row: fold the layer term there
        src = _src_mean(p, graph, li)  # (in_units, h1), by global input index
        col_feat = term("col", lf.col)  # (in_per_group, h1), by index within the group
        out_units, in_units, groups, k = (int(v) for v in meta)
        groups = max(groups, 1)
        in_pg, out_pg = in_units // groups, out_units // groups
        src = src.reshape(groups, in_pg, -1)
        if col_feat is not None:
            src = src + col_feat  # the column feature index is the index within the group
        w_cols = idx["weight"]
        Ww = W[:, w_cols].T.contiguous() if w_cols else None
        per_row = in_pg * k
        rows_per_chunk = max(1, chunk // per_row)
        scores = torch.empty(lf.numel)
        hidden = row.shape[1]
        weight_feats = [lf.weight[self.features[c]] for c in w_cols]

        # Weights are (out, in_per_group, kernel) row-major: a block of rows is a contiguous slice, and
        # the row and column terms broadcast over it without per-weight index arithmetic or gathers.
        # Blocks are cache-sized and run one per thread (map_layers), as in Ranker.score_layer.
        def block(a: int) -> None:
            b = min(out_units, a + rows_per_chunk)
            s, e = a * per_row, b * per_row
            with torch.no_grad():  # grad mode is per thread
                unit = row[a:b, None, :] + src[torch.arange(a, b) // out_pg]  # (rows, in_pg, h1)
                if Ww is not None:
                    xw = torch.stack([f[s:e].to(torch.float32) for f in weight_feats])  # (Fw, n)
                    z = torch.mm(xw.T, Ww).view(b - a, in_pg, k, hidden)
                    z += unit[:, :, None, :]
                else:
                    z = unit[:, :, None, :].expand(b - a, in_pg, k, hidden).clone()
                scores[s:e] = _rest(self.rest, z.view(-1, hidden))

        map_layers(block, range(0, out_units, rows_per_chunk))
        return scores


_GROUPS = ("weight", "row", "col", "layer")


def _weight_units(flat: torch.Tensor, meta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Output unit and global input index of flat weight indices (grouped convs included)."""
    out_units, in_units, groups, k = (int(v) for v in meta)
    groups = max(groups, 1)
    in_pg, out_pg = in_units // groups, out_units // groups
    o = flat // (in_pg * k)
    j = (o // out_pg) * in_pg + (flat // k) % in_pg
    return o, j


def _src_mean(p: torch.Tensor, graph: GraphArrays, layer: int) -> torch.Tensor:
    """Per input index of ``layer``: the mean of ``p`` over the nodes feeding it (0 if none)."""
    in_units = int(graph.layer_meta[layer, 1])
    pairs = graph.layer_in_pairs(layer)
    out = torch.zeros(in_units, p.shape[1], dtype=p.dtype)
    if pairs.shape[1]:
        out = out.index_add(0, pairs[0], p[pairs[1]])
        cnt = torch.bincount(pairs[0], minlength=in_units).clamp(min=1).to(p.dtype)
        out = out / cnt.unsqueeze(1)
    return out


# ------------------------------------------------------------------------------------------
# Prune-time and evaluation entry points
# ------------------------------------------------------------------------------------------


def gnn_score_layers(
    ranker: nn.Module, table: FeatureTable, model: nn.Module | None, input_shape: Sequence[int] | None
) -> dict[str, torch.Tensor]:
    """Within-layer scores of every prunable weight of ``model``, shaped like the weights (``autos``)."""
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


def gnn_score_run(ranker: nn.Module, reader: StoreReader, run: RunSamples) -> list[torch.Tensor]:
    """Scores of every weight of a stored run (one flat tensor per layer), for held-out evaluation."""
    assert isinstance(ranker, GNNRanker)
    data = reader.load_run(run.run_id, columns=list(ranker.features))
    table = table_from_run(data, ranker.features)
    return ranker.score_network(table, run_graph(data))


def gnn_card_meta(cfg: ScorerConfig) -> dict[str, Any]:
    """What the card records about a GNN ranker beyond the MLP's features/hidden."""
    feats = tuple(cfg.ranker_features)
    return {
        "gnn_hidden": int(cfg.gnn_hidden),
        "gnn_layers": int(cfg.gnn_layers),
        "feature_groups": feature_groups(feats),
        "node_features": node_feature_names(feats),
        "edge_features": edge_feature_names(feats),
    }


def build_gnn_ranker(card: Card) -> GNNRanker:
    """An untrained :class:`GNNRanker` of the architecture a card describes (weights loaded after)."""
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


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------


@dataclass
class _Net:
    """One store run prepared for the GNN: inputs plus (sampled or full) weights and labels."""

    run_id: str
    inputs: NetInputs
    table: FeatureTable | None  # kept for fully scored (held-out) runs only: it views the whole feature array
    densities: list[float]
    idx: list[torch.Tensor | None] = field(default_factory=list)  # sampled flat indices (None = all)
    x: list[torch.Tensor | None] = field(default_factory=list)  # (n_s, F) features of the sample
    label: list[torch.Tensor] = field(default_factory=list)


def _load_net(
    reader: StoreReader, run_id: str, features: Sequence[str], max_per_layer: int | None, rng: np.random.Generator
) -> _Net:
    data = reader.load_run(run_id, columns=list(features))
    table = table_from_run(data, features)
    graph = run_graph(data)
    feats = torch.from_numpy(np.asarray(data.features, dtype=np.float32))
    label = torch.from_numpy(np.asarray(data.label, dtype=np.int64))
    full = max_per_layer is None
    densities = list(data.attrs.get("densities") or [])
    net = _Net(run_id, net_inputs(table, graph, features), table if full else None, densities)
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


def _normalise(ranker: GNNRanker, nets: list[_Net]) -> None:
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


def _net_scores(ranker: GNNRanker, net: _Net) -> list[torch.Tensor]:
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


def _evaluate(ranker: GNNRanker, nets: list[_Net], cfg: ScorerConfig) -> dict[str, float]:
    from autosparse.scorer.metrics import precision_at_round, spearman_within_layers
    from autosparse.scorer.training import _eval_rounds

    precs, rhos = [], []
    for net in nets:
        scores = _net_scores(ranker, net)
        rhos.append(spearman_within_layers(scores, net.label))
        precs.extend(precision_at_round(scores, net.label, r) for r in _eval_rounds(net, cfg))  # type: ignore[arg-type]
    return {"precision": float(np.nanmean(precs)), "spearman": float(np.nanmean(rhos))}


def train_gnn_ranker(
    train_reader: StoreReader, val_reader: StoreReader | None, cfg: ScorerConfig
) -> tuple[GNNRanker, list[dict[str, float]]]:
    """Fit a :class:`GNNRanker` on the training runs; keep the state with the best held-out precision.

    Each step embeds one training network's whole unit graph, then applies the MLP ranker's
    within-layer ListNet loss to ``groups_per_step`` groups of ``group_size`` weights sampled
    from that network's layers, so gradients reach the message passing through every group.
    """
    from tqdm.auto import tqdm

    from autosparse.scorer.training import listnet_loss

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    features = tuple(cfg.ranker_features)
    ranker = GNNRanker(features, cfg.hidden, cfg.gnn_hidden, cfg.gnn_layers)
    train = [_load_net(train_reader, r, features, cfg.max_per_layer, rng) for r in train_reader.run_ids]
    val = [_load_net(val_reader, r, features, None, rng) for r in val_reader.run_ids] if val_reader is not None else []
    _normalise(ranker, train)
    log.info("GNN ranker: %d training networks, %d held-out", len(train), len(val))
    opt = torch.optim.AdamW(ranker.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    monitor = val or train
    usable = [[li for li, y in enumerate(net.label) if y.numel() >= 2] for net in train]
    if not any(usable):
        raise ConfigError("no training layer has two or more weights to rank; generate runs of larger models")
    candidates = [i for i, u in enumerate(usable) if u]
    best, best_state, curve = -1.0, copy.deepcopy(ranker.state_dict()), []
    running = 0.0
    bar = tqdm(range(1, cfg.steps + 1), desc="gnn ranker", disable=None, leave=False)
    for step in bar:
        ranker.train()
        ni = candidates[int(torch.randint(len(candidates), (1,), generator=gen))]
        net, layers = train[ni], usable[ni]
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
        loss = listnet_loss(torch.stack(scores), torch.stack(labels), cfg.label_base)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ranker.eval()
            metrics = _evaluate(ranker, monitor, cfg)
            curve.append({"step": step, "loss": running, **{f"val_{k}": v for k, v in metrics.items()}})
            bar.set_postfix(loss=f"{running:.3f}", prec=f"{metrics['precision']:.3f}")
            if metrics["precision"] > best:
                best, best_state = metrics["precision"], copy.deepcopy(ranker.state_dict())
    ranker.load_state_dict(best_state)
    ranker.eval()
    return ranker, curve
