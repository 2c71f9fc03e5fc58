"""What the GNN ranker reads about one network: node and edge features over its unit graph.

Why its own module: the same inputs are built at training time (from a stored run's rows,
:func:`autosparse.scorer.gnn_data.table_from_run`) and at prune time (from a fresh feature table),
so both paths go through :func:`net_inputs` and cannot drift apart. The network that consumes them
is :mod:`autosparse.scorer.gnn_net`.

* nodes = units (neurons, channels, input units). A unit's input vector is its row features as
  an output unit of its layer, its layer's features, the mean of the column features of every
  input index it feeds (its role as a *source*), and four structural values (is-input, feeds
  nothing, log in/out degree in the unit graph). Input nodes have zero row/layer parts.
* edges = unit pairs (a conv kernel is one edge); an edge's features are the mean, over the
  weights it carries, of the ranker's weight-level features (ranks, z-scores, saliencies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from autosparse.core.parallel import map_layers
from autosparse.features import SPECS, FeatureTable
from autosparse.topology.graph_arrays import EdgeGrid, GraphArrays

FEATURE_GROUPS = ("weight", "row", "col", "layer")  # the schema's groups, in the order the card records them
STRUCT_FEATURES = ("is_input", "is_sink", "log_in_degree", "log_out_degree")
SCATTER_CHUNK = 1 << 18  # slice entries gathered at once when building a layer's edge features (bounded memory)


def feature_groups(features: Sequence[str]) -> dict[str, list[str]]:
    """The ranker's features split by schema group (the card records this)."""
    return {g: [f for f in features if SPECS[f].group == g] for g in FEATURE_GROUPS}


def node_feature_names(features: Sequence[str]) -> list[str]:
    g = feature_groups(features)
    return [*g["row"], *g["layer"], *[f"src_{c}" for c in g["col"]], *STRUCT_FEATURES]


def edge_feature_names(features: Sequence[str]) -> list[str]:
    return [f"mean_{w}" for w in feature_groups(features)["weight"]]


@dataclass(frozen=True)
class GridEdges:
    """A grid layer's edge features without a row per edge, where each edge carries one slice:
    row r of the layer's edge grid is ``by_input[row_input[r]]``, its input index's slice
    features over the group's output units (see :func:`_grid_row_inputs`)."""

    by_input: torch.Tensor  # (groups * inputs per group, cols, Fe) slice features, by input index
    row_input: torch.Tensor  # (rows,) input index of each grid row

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """The (edges, Fe) features of grid rows ``start .. stop``, in edge order."""
        return self.by_input.index_select(0, self.row_input[start:stop]).view(-1, self.by_input.shape[-1])


@dataclass
class NetInputs:
    """Everything the message passing and the head need about one network (raw, unnormalised).

    Edge features are held per layer where :func:`net_inputs` built them (a grid layer's as
    :class:`GridEdges`, the rest as rows), and become one (E, Fe) table only when ``edge_attr``
    is first read (training, the per-edge code): ResNet-50's table is 40M × 8 floats, 1.3 GB, that
    the grid message sums at prune time never need.
    """

    graph: GraphArrays
    node_x: torch.Tensor  # (N, Dn)
    edge_index: torch.Tensor  # (2, E) the edges messages run on (all of the graph's, or a training sample)
    inv_in_deg: torch.Tensor  # (N,) 1 / max(1, in-degree): mean over forward messages
    inv_out_deg: torch.Tensor  # (N,) 1 / max(1, out-degree): mean over backward messages
    edge_dim: int  # Fe
    edge_rows: torch.Tensor | None = None  # (E, Fe), once built
    edge_layers: tuple[torch.Tensor | GridEdges, ...] | None = field(default=None, repr=False)  # per graph layer
    _keep_p: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)  # fanout -> per-edge keep prob

    @property
    def edge_attr(self) -> torch.Tensor:
        """(E, Fe) raw edge features, one row per edge of ``edge_index`` (built on first read)."""
        if self.edge_rows is None:
            if self.edge_layers is None:
                raise ValueError("NetInputs holds no edge features: give edge_rows or edge_layers")
            rows = torch.empty(self.graph.num_edges, self.edge_dim)
            ptr = self.graph.edge_ptr
            for li, part in enumerate(self.edge_layers):
                e0, e1 = int(ptr[li]), int(ptr[li + 1])
                if isinstance(part, GridEdges):
                    out = rows[e0:e1].view(part.row_input.numel(), -1, self.edge_dim)
                    torch.index_select(part.by_input, 0, part.row_input, out=out)
                else:
                    rows[e0:e1] = part
            self.edge_rows = rows
        return self.edge_rows

    def layer_edges(self, layer: int) -> torch.Tensor | GridEdges:
        """One graph layer's edge features: its :class:`GridEdges`, or its (E_l, Fe) rows."""
        if self.edge_index is not self.graph.edge_index:
            raise ValueError("layer_edges needs the whole graph's edges, not a training sample")
        if self.edge_rows is None and self.edge_layers is not None:
            return self.edge_layers[layer]
        return self.edge_attr[int(self.graph.edge_ptr[layer]) : int(self.graph.edge_ptr[layer + 1])]

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
            inv_in_deg=1.0 / torch.bincount(ei[1], minlength=n).clamp(min=1).float(),
            inv_out_deg=1.0 / torch.bincount(ei[0], minlength=n).clamp(min=1).float(),
            edge_dim=self.edge_dim,
            edge_rows=self.edge_attr[keep],
        )


def _grid_row_inputs(graph: GraphArrays, layer: int) -> tuple[EdgeGrid, torch.Tensor] | None:
    """The layer's edge grid and the input index whose slices each of its rows carries, where each
    edge carries exactly one slice (every (group, feeding node) pair feeds one input index); else None.

    The grid's rows are the layer's unique (group, feeding node) keys in sorted order
    (:meth:`~autosparse.topology.graph_arrays.GraphArrays.edge_grid`); with one input index per
    key, sorting the layer's (input index, node) pairs by that key lists the rows' input indices.
    """
    grid = graph.edge_grid(layer)
    pairs = graph.layer_in_pairs(layer)
    if grid is None or pairs.shape[1] != grid.rows:
        return None
    in_pg = int(graph.layer_meta[layer, 1]) // grid.groups
    group = pairs[0].div(in_pg, rounding_mode="floor")
    order = torch.argsort(group * max(graph.num_nodes, 1) + pairs[1])
    if not (torch.equal(pairs[1][order], grid.feeder) and torch.equal(group[order], grid.group)):
        return None
    return grid, pairs[0][order]


def net_inputs(table: FeatureTable, graph: GraphArrays, features: Sequence[str]) -> NetInputs:
    """Node and edge features of one network from its feature table and unit graph.

    Memory is what bounds this on a large network (ResNet-50: 40M edges): the edge features are
    built one layer at a time, each layer's float64 sums living only while its float32 rows are
    written, because an edge carries the weights of exactly one layer. The whole-network float64
    sums and all layers' slice means at once peaked at 7 GB there, for the same values.
    """
    groups = feature_groups(features)
    n = graph.num_nodes
    layers = table.layers
    graph.check_layers([lf.shape for lf in layers])
    fr, fl, fc, fw = groups["row"], groups["layer"], groups["col"], groups["weight"]
    row_part = torch.zeros(n, len(fr) + len(fl))
    src_sum = torch.zeros(n, len(fc), dtype=torch.float64)
    src_cnt = torch.zeros(n, dtype=torch.float64)
    fe = len(fw)

    def layer_edges(i: int) -> torch.Tensor | GridEdges:
        """Layer ``i``'s edge features: per edge, the mean over the kernel slices it carries of the
        slices' float64 means of the weight features (one layer per thread).

        In a ResNet every edge carries one slice (a slice feeds several edges through the residual
        stream, never the reverse), so the mean is the slice's own value: on a grid layer the slice
        features are kept by input index (:class:`GridEdges`), elsewhere written per edge, chunk by
        chunk. Float64 sums over the layer's edges are kept only where some edge carries several
        (an input unit spread over a flatten), and are equal to the direct value otherwise.
        """
        e0, e1 = int(graph.edge_ptr[i]), int(graph.edge_ptr[i + 1])
        if not fw or e1 == e0:
            return torch.zeros(e1 - e0, fe)
        k = int(graph.layer_meta[i, 3])

        def slice_means(dtype: torch.dtype) -> torch.Tensor:
            return torch.stack([layers[i].weight[f].reshape(-1, k).to(dtype).mean(1) for f in fw], dim=1)

        one_slice_grid = _grid_row_inputs(graph, i)
        if one_slice_grid is not None:
            grid, rows_input = one_slice_grid
            # + 0.0 as a sum from zero: -0.0 -> 0.0, as the per-edge write below
            means = slice_means(torch.float32 if k == 1 else torch.float64).add_(0.0).to(torch.float32)
            in_pg = int(graph.layer_meta[i, 1]) // grid.groups
            by_input = means.view(grid.groups, grid.cols, in_pg, fe).transpose(1, 2)
            # contiguous: a grid row's block is then one run of memory (from a strided view, ResNet-50's embedding took 7.7-9.0 s instead of 6.6-7.5)
            return GridEdges(by_input.reshape(grid.groups * in_pg, grid.cols, fe).contiguous(), rows_input)
        se = graph.layer_slice_edge(i)
        count = torch.bincount(se[1] - e0, minlength=e1 - e0)
        out = torch.empty(e1 - e0, fe)
        if int(count.max()) <= 1:
            # a slice of one weight (1x1 convs, linear layers) is its own mean, exactly, in float32 too
            means = slice_means(torch.float32 if k == 1 else torch.float64)
            for a in range(0, se.shape[1], SCATTER_CHUNK):
                part = se[:, a : a + SCATTER_CHUNK]
                # index_select / index_copy_ rather than advanced indexing, which took twice as long
                # on ResNet-50's 40M edges
                out.index_copy_(0, part[1] - e0, means.index_select(0, part[0]).add_(0.0).to(torch.float32))
            return out
        means = slice_means(torch.float64)
        edge_sum = torch.zeros(e1 - e0, fe, dtype=torch.float64)
        for a in range(0, se.shape[1], SCATTER_CHUNK):  # in order: each edge's sum adds up as in one call
            part = se[:, a : a + SCATTER_CHUNK]
            edge_sum.index_add_(0, part[1] - e0, means[part[0]])
        for a in range(0, e1 - e0, SCATTER_CHUNK):
            b = min(e1 - e0, a + SCATTER_CHUNK)
            out[a:b] = edge_sum[a:b] / count[a:b].clamp(min=1).to(torch.float64).unsqueeze(1)
        return out

    edge_layers = tuple(map_layers(layer_edges, range(len(layers)), sizes=[lf.numel for lf in layers]))
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
    src = (src_sum / src_cnt.clamp(min=1).unsqueeze(1)).float()
    in_deg, out_deg = (d.float() for d in graph.degrees())
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
        inv_in_deg=1.0 / in_deg.clamp(min=1),
        inv_out_deg=1.0 / out_deg.clamp(min=1),
        edge_dim=fe,
        edge_layers=edge_layers,
    )
