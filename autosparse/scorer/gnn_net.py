"""The GNN ranker: per-weight within-layer scores that can see the network around each weight.

Why a GNN at all: the MLP ranker scores a weight from its own features and its two units'
summaries, so it cannot know that a unit feeds a layer that is itself nearly dead, or that a
channel sits on a residual path that every later block reads. Message passing over the unit
graph (:mod:`autosparse.topology.graph`, re-packed by :mod:`autosparse.topology.graph_arrays`, described
to the network by :mod:`autosparse.scorer.gnn_inputs`) lets each unit's embedding carry that
context, and the per-weight head reads the embeddings of the weight's two ends.

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

torch-geometric is imported when the first GNN ranker is built (:func:`directed_conv_class`), not
with this module: it takes seconds to import and only a GNN scorer needs it, so registering the
architecture (which every ``import autosparse.scorer`` does) stays cheap.
How the ranker is trained and applied to stored runs is :mod:`autosparse.scorer.archs.gnn`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.parallel import map_layers
from autosparse.features import SPECS, FeatureTable, LayerFeatures
from autosparse.scorer.gnn_inputs import (
    FEATURE_GROUPS,
    GridEdges,
    NetInputs,
    feature_groups,
    net_inputs,
    node_feature_names,
)
from autosparse.scorer.nets import mlp_layers, rest_forward, safe_std
from autosparse.topology.graph_arrays import GraphArrays

EDGE_CHUNK = 1 << 19  # edges per message chunk: bounds the (E, hidden) message tensor
WEIGHT_CHUNK = 1 << 14  # weights per head block at prune time, as in Ranker.score_layer (cache-sized)
INFER_CHUNK = 1 << 14  # edges per message block at prune time: its (edges, hidden) messages stay in cache
INFER_PART = 1 << 18  # edges summed by one thread at prune time (a fixed size: results are thread-count free)
PARTS_IN_FLIGHT = 8  # edge ranges summed at once at prune time: bounds memory, not the threads used (up to 8)
GRID_CHUNK = 1 << 13  # edges per block of a layer's edge grid at prune time: its (edges, hidden) messages stay in cache


@functools.cache
def directed_conv_class() -> type[nn.Module]:
    """The class of one direction's message passing (``DirectedConv``), defined on first use.

    Why a factory: a class can only be defined once its base is imported, and the base,
    torch-geometric's ``MessagePassing``, takes seconds to import while only GNN scorers need it.
    Cached, so every conv of every ranker shares one class (PyG compiles its ``propagate`` once).
    """
    with warnings.catch_warnings():
        # torch-geometric 2.x calls torch.jit.script while importing torch_geometric.nn (its pool.select
        # and pool.connect modules), which torch >= 2.9 deprecates with a FutureWarning on every run of
        # a GNN scorer; the call is inside their import, not ours, so exactly that warning is silenced.
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        from torch_geometric.nn import MessagePassing

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
                return _sum_messages(
                    x, edge_index, edge_attr, edge_norm, self.edge.weight, self.flow
                ) * inv_deg.unsqueeze(1)
            mean, std = edge_norm
            out = torch.zeros_like(x)
            for s in range(0, edge_index.shape[1], chunk):
                ea = (edge_attr[s : s + chunk] - mean) / std
                out = out + self.propagate(edge_index[:, s : s + chunk], x=x, edge_attr=ea, size=(n, n))
            return out * inv_deg.unsqueeze(1)

        def message(self, x_j: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            out = self.edge(edge_attr)
            out += x_j
            return out.relu_()

    return DirectedConv


def _sum_messages(
    x: torch.Tensor,
    edge_index: torch.Tensor,
    edge_attr: torch.Tensor,
    edge_norm: tuple[torch.Tensor, torch.Tensor],
    edge_weight: torch.Tensor,
    flow: str,
) -> torch.Tensor:
    """Sum of one direction's messages without autograd: what ``propagate`` computes, up to float rounding.

    ``edge_weight`` is the message's edge projection (``DirectedConv.edge.weight``), ``flow`` its direction.

    The edge normalisation is folded into the edge weights, each block of edges is one
    gather, one small matmul and one ``index_add_`` with no PyG bookkeeping, and blocks are
    small enough for their (edges, hidden) messages to stay in cache. Edge ranges of fixed
    size are summed separately (one thread each, :func:`~autosparse.core.parallel.map_layers`)
    and added in a fixed order, so the result does not depend on the thread count. Ranges go
    in windows of :data:`PARTS_IN_FLIGHT`, so only that many (nodes, hidden) sums exist at once:
    ResNet-50's 40M edges are 152 ranges, and holding every sum to the end cost half a gigabyte.
    """
    mean, std = edge_norm
    w = edge_weight / std  # (hidden, Fe)
    b = -(w @ mean)
    src_row, dst_row = (0, 1) if flow == "source_to_target" else (1, 0)
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

    out = torch.zeros_like(x)
    starts = range(0, e, INFER_PART)
    for first in range(0, len(starts), PARTS_IN_FLIGHT):
        for acc in map_layers(part, starts[first : first + PARTS_IN_FLIGHT]):
            out += acc
    return out


def _grid_sums(
    xf: torch.Tensor,
    xb: torch.Tensor,
    inp: NetInputs,
    weights: tuple[torch.Tensor, torch.Tensor],
    edge_norm: tuple[torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One round's forward and backward message sums over the whole graph, without autograd.

    ``xf``/``xb`` are the two directions' node projections (``DirectedConv.node``), ``weights``
    their edge projections. Equal, up to float rounding, to :func:`_sum_messages` for each
    direction, and why it is faster: a layer's edges are a (feeder, output unit) grid
    (:meth:`~autosparse.topology.graph_arrays.GraphArrays.edge_grid`), so the forward messages
    into an output unit are a sum down a column, and the backward messages into a feeder a sum
    along a row. The gather of a node row per edge and the scatter-add per edge become
    broadcasts and contiguous reductions, and the edge bias is added once per node. Layers run
    one per thread (:func:`~autosparse.core.parallel.map_layers`); a layer's own sums are added
    in a fixed order, so the result does not depend on the thread count. A layer whose edges are
    not laid out as a grid keeps the per-edge code.

    Blocks of :data:`GRID_CHUNK` edges keep each (edges, hidden) message block in the core's cache:
    on one 512 x 512 grid, 8,192-edge blocks took 18 ms where 16,384-edge blocks of both directions
    at once took 46 ms (Intel Xeon, one thread, 2026-12-03).
    """
    mean, std = edge_norm
    hidden = xf.shape[1]
    w_f, w_b = (wt / std for wt in weights)  # (hidden, Fe): the edge normalisation folded in
    # each direction's edge bias joins its node term (one row per node, not one per edge)
    xf_b = xf - w_f @ mean
    xb_b = xb - w_b @ mean
    wt_f, wt_b = w_f.T.contiguous(), w_b.T.contiguous()
    graph = inp.graph
    fwd = torch.zeros_like(xf)
    bwd = torch.zeros_like(xb)
    layers = range(graph.num_layers)

    def layer(li: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        grid = graph.edge_grid(li)
        if grid is None:
            return None
        edges = inp.layer_edges(li)
        shared = isinstance(edges, GridEdges)
        rows, cols, groups = grid.rows, grid.cols, grid.groups
        into_out = torch.zeros(groups, cols, hidden)
        into_feeder = torch.empty(rows, hidden)
        step = max(1, GRID_CHUNK // cols)
        with torch.no_grad():
            x_feeder = xf_b.index_select(0, grid.feeder)  # (rows, hidden)
            x_out = xb_b[grid.out_start : grid.out_start + groups * cols].view(groups, cols, hidden)
            for a in range(0, rows, step):
                c = min(rows, a + step) - a
                if shared:
                    ea = edges.rows(a, a + c)  # (c * cols, Fe), gathered into cache a block at a time
                else:
                    ea = edges[a * cols : (a + c) * cols]
                z = torch.mm(ea, wt_f).view(c, cols, hidden)  # forward: summed down each column
                z += x_feeder[a : a + c, None, :]
                z.relu_()
                if groups == 1:
                    into_out[0] += z.sum(0)
                else:
                    into_out.index_add_(0, grid.group[a : a + c], z)
                if shared:
                    continue
                z = torch.mm(ea, wt_b).view(c, cols, hidden)  # backward: summed along each row
                z += x_out[0][None] if groups == 1 else x_out.index_select(0, grid.group[a : a + c])
                into_feeder[a : a + c] = z.relu_().sum(1)
            if shared:
                # a row's backward messages depend on its input index only (its feeder enters the
                # forward term alone), so they are summed once per input index and handed to every
                # feeder of it: ResNet-50's residual stream feeds each input from several layers
                per_input = torch.empty(edges.by_input.shape[0], hidden)
                group_of = torch.arange(per_input.shape[0]) // (per_input.shape[0] // groups)
                for a in range(0, per_input.shape[0], step):
                    b = min(per_input.shape[0], a + step)
                    z = torch.mm(edges.by_input[a:b].view(-1, edges.by_input.shape[-1]), wt_b).view(b - a, cols, hidden)
                    z += x_out[0][None] if groups == 1 else x_out.index_select(0, group_of[a:b])
                    per_input[a:b] = z.relu_().sum(1)
                torch.index_select(per_input, 0, edges.row_input, out=into_feeder)
        return into_out.view(groups * cols, hidden), into_feeder

    sums = map_layers(layer, layers, sizes=[int(graph.edge_ptr[i + 1] - graph.edge_ptr[i]) for i in layers])
    for li, got in zip(layers, sums, strict=True):
        if got is None:  # not a grid: this layer's edges the per-edge way
            e0, e1 = int(graph.edge_ptr[li]), int(graph.edge_ptr[li + 1])
            if e1 > e0:
                edges = inp.layer_edges(li)
                ea = edges.rows(0, edges.row_input.numel()) if isinstance(edges, GridEdges) else edges
                ei = inp.edge_index[:, e0:e1]
                fwd += _sum_messages(xf, ei, ea, edge_norm, weights[0], "source_to_target")
                bwd += _sum_messages(xb, ei, ea, edge_norm, weights[1], "target_to_source")
            continue
        grid = graph.edge_grid(li)
        assert grid is not None
        into_out, into_feeder = got
        fwd[grid.out_start : grid.out_start + into_out.shape[0]] += into_out
        bwd.index_add_(0, grid.feeder, into_feeder)
    return fwd, bwd


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
        conv = directed_conv_class()
        self.node_in = nn.Linear(n_node, hdim)
        self.fwd = nn.ModuleList(conv(hdim, n_edge, "source_to_target") for _ in range(self.gnn_layers))
        self.bwd = nn.ModuleList(conv(hdim, n_edge, "target_to_source") for _ in range(self.gnn_layers))
        self.self_lin = nn.ModuleList(nn.Linear(hdim, hdim) for _ in range(self.gnn_layers))
        self.first = nn.Linear(n_feat, h1)
        self.src_proj = nn.Linear(hdim, h1, bias=False)  # P
        self.dst_proj = nn.Linear(hdim, h1, bias=False)  # Q
        self.rest = nn.Sequential(nn.ReLU(), mlp_layers([*self.hidden, 1]))

    def set_normalisation(self, which: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        getattr(self, f"{which}_mean").copy_(mean)
        getattr(self, f"{which}_std").copy_(safe_std(std))

    def embed(self, inp: NetInputs) -> torch.Tensor:
        """(N, gnn_hidden) unit embeddings of one whole network."""
        h = torch.relu(self.node_in((inp.node_x - self.node_mean) / self.node_std))
        norm = (self.edge_mean, self.edge_std)
        # at prune time, over the whole graph: both directions at once on each layer's edge grid
        grid = not torch.is_grad_enabled() and inp.edge_index is inp.graph.edge_index
        for fwd, bwd, lin in zip(self.fwd, self.bwd, self.self_lin, strict=True):
            if grid:
                into_dst, into_src = _grid_sums(fwd.node(h), bwd.node(h), inp, (fwd.edge.weight, bwd.edge.weight), norm)
                msg = into_dst * inp.inv_in_deg.unsqueeze(1) + into_src * inp.inv_out_deg.unsqueeze(1)
            else:
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
        idx = {grp: [i for i, f in enumerate(self.features) if SPECS[f].group == grp] for grp in FEATURE_GROUPS}
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
                scores[s:e] = rest_forward(self.rest, z.view(-1, hidden))

        map_layers(block, range(0, out_units, rows_per_chunk))
        return scores


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
