"""The unit graph as flat int64 arrays: what a store run keeps under ``graph/`` and the GNN runs on.

:mod:`autosparse.topology.graph` decides the topology (by tracing); this module only *re-packs*
it, so that it can live next to a run's features in the store and be rebuilt identically at
prune time. It belongs to the topology layer, not the scorer, because a source run
(:mod:`autosparse.sources`) writes it and the scorer reads it back; both see this layer.

* layers are re-ordered from the graph's topological order to ``prunable_layers`` order, which
  is the order of the feature table and of the store's layer table — every per-layer array
  here is indexed the way the features are, so no caller has to match names;
* nothing is stored per *weight*. Edges are unit pairs (a conv's whole kernel is one edge), and
  the weight → edge map is kept at *slice* granularity (``weight[o, j]``, one entry per kernel),
  with per-layer offsets; the element ``e`` of layer ``l`` lies in slice ``e // kernel_numel``.
  For a ResNet-18 that is ~2.4M slice entries for 11M weights.

Arrays (all int64; ``L`` layers, ``N`` nodes, ``E`` edges; the names are the store's
``runs/<id>/graph/<name>`` arrays):

``node_layer`` (N,)       layer of each node (``-1`` = input node); input nodes come first
``node_unit`` (N,)        unit index within its layer (or among the input nodes)
``out_start`` (L,)        node id of output unit 0 of each layer (units are contiguous)
``in_ptr`` (L+1,)         ``in_pairs[:, in_ptr[l]:in_ptr[l+1]]`` belong to layer ``l``
``in_pairs`` (2, P)       (input index, feeding node) pairs: who feeds each input unit of a layer
``edge_index`` (2, E)     (src node, dst node); layer ``l``'s edges are ``edge_ptr[l]:edge_ptr[l+1]``
``edge_layer`` (E,)       layer of each edge
``edge_ptr`` (L+1,)
``slice_ptr`` (L+1,)      ``slice_edge[:, slice_ptr[l]:slice_ptr[l+1]]`` belong to layer ``l``
``slice_edge`` (2, M)     (slice id within the layer, global edge id)
``layer_meta`` (L, 4)     out_units, in_units, groups, kernel_numel
``graph_info`` (3,)       format version, traced (0/1), number of input nodes
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from autosparse.core.errors import StoreError
from autosparse.core.layers import prunable_layers
from autosparse.topology.graph import trace_graph

GRAPH_FORMAT = 1
ARRAY_NAMES = (
    "node_layer",
    "node_unit",
    "out_start",
    "in_ptr",
    "in_pairs",
    "edge_index",
    "edge_layer",
    "edge_ptr",
    "slice_ptr",
    "slice_edge",
    "layer_meta",
    "graph_info",
)


@dataclass(frozen=True)
class EdgeGrid:
    """One layer's edges as a row-major (rows, cols) grid: row r is feeder ``feeder[r]`` of group
    ``group[r]``, column c that group's output unit c (node ``out_start + group[r] * cols + c``);
    edge ids run ``first_edge .. first_edge + rows * cols``."""

    first_edge: int
    rows: int
    cols: int
    groups: int
    out_start: int
    feeder: torch.Tensor  # (rows,) node id
    group: torch.Tensor  # (rows,) group index


@dataclass
class GraphArrays:
    """The unit graph of one network, layers in ``prunable_layers`` (= feature table) order."""

    node_layer: torch.Tensor
    node_unit: torch.Tensor
    out_start: torch.Tensor
    in_ptr: torch.Tensor
    in_pairs: torch.Tensor
    edge_index: torch.Tensor
    edge_layer: torch.Tensor
    edge_ptr: torch.Tensor
    slice_ptr: torch.Tensor
    slice_edge: torch.Tensor
    layer_meta: torch.Tensor
    graph_info: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return int(self.node_layer.numel())

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_layers(self) -> int:
        return int(self.out_start.numel())

    @property
    def num_input_nodes(self) -> int:
        return int(self.graph_info[2])

    @property
    def traced(self) -> bool:
        return bool(self.graph_info[1])

    def layer_in_pairs(self, layer: int) -> torch.Tensor:
        """(2, P_l) (input index, node) pairs of one layer."""
        return self.in_pairs[:, int(self.in_ptr[layer]) : int(self.in_ptr[layer + 1])]

    def layer_slice_edge(self, layer: int) -> torch.Tensor:
        """(2, M_l) (slice id, global edge id) pairs of one layer."""
        return self.slice_edge[:, int(self.slice_ptr[layer]) : int(self.slice_ptr[layer + 1])]

    def out_nodes(self, layer: int) -> torch.Tensor:
        start = int(self.out_start[layer])
        return torch.arange(start, start + int(self.layer_meta[layer, 0]))

    def edge_grid(self, layer: int) -> EdgeGrid | None:
        """Layer ``layer``'s edges as the (feeder, output unit) grid they are laid out in, if they are.

        :func:`~autosparse.topology.unit_graph.NetworkGraph.unit_edges` writes a layer's edges
        row-major over (unique (group, feeding node) key, output unit within the group): every row
        holds one feeder and all its group's output units, in order. A consumer that sums over one
        axis of that grid (the GNN's message passing) needs no per-edge gather or scatter. ``None``
        where the stored edges are not laid out so (checked on the shape and on sampled rows, so
        that a graph from another writer falls back to per-edge code instead of summing wrongly).
        """
        cache = self.__dict__.setdefault("_grids", {})
        if layer not in cache:
            cache[layer] = self._edge_grid(layer)
        return cache[layer]

    def degrees(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(in-degree, out-degree) of every node in the unit graph, int64.

        From each layer's edge grid where it has one (an output unit's in-degree is its group's
        row count, a feeder gains the row's length), so ResNet-50's 40M edges are not counted one
        by one (two ``bincount`` passes took 0.4 s there); a layer without a grid is counted per edge.
        """
        n = self.num_nodes
        in_deg = torch.zeros(n, dtype=torch.long)
        out_deg = torch.zeros(n, dtype=torch.long)
        for li in range(self.num_layers):
            e0, e1 = int(self.edge_ptr[li]), int(self.edge_ptr[li + 1])
            if e1 == e0:
                continue
            grid = self.edge_grid(li)
            if grid is None:
                in_deg += torch.bincount(self.edge_index[1, e0:e1], minlength=n)
                out_deg += torch.bincount(self.edge_index[0, e0:e1], minlength=n)
                continue
            rows_per_group = torch.bincount(grid.group, minlength=grid.groups)
            outs = slice(grid.out_start, grid.out_start + grid.groups * grid.cols)
            in_deg[outs] += rows_per_group.repeat_interleave(grid.cols)
            out_deg.index_add_(0, grid.feeder, torch.full((grid.rows,), grid.cols, dtype=torch.long))
        return in_deg, out_deg

    def _edge_grid(self, layer: int) -> EdgeGrid | None:
        out_units, _, groups, _ = (int(v) for v in self.layer_meta[layer])
        groups = max(groups, 1)
        e0, e1 = int(self.edge_ptr[layer]), int(self.edge_ptr[layer + 1])
        cols = out_units // groups
        if e1 == e0 or cols == 0 or (e1 - e0) % cols:
            return None
        rows = (e1 - e0) // cols
        src = self.edge_index[0, e0:e1].view(rows, cols)
        dst = self.edge_index[1, e0:e1].view(rows, cols)
        start = int(self.out_start[layer])
        feeder = src[:, 0].contiguous()
        group_of = (dst[:, 0] - start).div(cols, rounding_mode="floor")
        if bool(((group_of < 0) | (group_of >= groups)).any()):
            return None
        sample = torch.unique(torch.linspace(0, rows - 1, min(rows, 64)).round().long())
        want = start + group_of[sample, None] * cols + torch.arange(cols)
        if not (torch.equal(src[sample], feeder[sample, None].expand(-1, cols)) and torch.equal(dst[sample], want)):
            return None
        return EdgeGrid(
            first_edge=e0, rows=rows, cols=cols, groups=groups, out_start=start, feeder=feeder, group=group_of
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).numpy().astype(np.int64, copy=False) for name in ARRAY_NAMES}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> GraphArrays:
        """From stored arrays (numpy or torch); a missing or malformed array is a StoreError."""
        missing = [n for n in ARRAY_NAMES if n not in arrays]
        if missing:
            raise StoreError(f"graph arrays {missing} are missing; regenerate the run or drop its graph/ group")
        t = {
            n: (arrays[n] if isinstance(arrays[n], torch.Tensor) else torch.from_numpy(np.asarray(arrays[n]))).to(
                torch.long
            )
            for n in ARRAY_NAMES
        }
        out = cls(**t)
        out._validate()
        return out

    def _validate(self) -> None:
        info = self.graph_info
        if info.numel() != 3 or int(info[0]) != GRAPH_FORMAT:
            raise StoreError(
                f"graph format {int(info[0]) if info.numel() else '?'} is not {GRAPH_FORMAT}; "
                "regenerate the run with this autosparse (or delete its graph/ group to rebuild it from the model)"
            )
        n, e, L = self.num_nodes, self.num_edges, self.num_layers
        problems = []
        if self.node_unit.shape != (n,):
            problems.append("node_unit length")
        if self.edge_index.dim() != 2 or self.edge_index.shape[0] != 2 or self.edge_layer.shape != (e,):
            problems.append("edge_index / edge_layer shape")
        if self.layer_meta.shape != (L, 4):
            problems.append("layer_meta shape")
        for name in ("in_ptr", "edge_ptr", "slice_ptr"):
            if getattr(self, name).shape != (L + 1,):
                problems.append(f"{name} length")
        if e and (int(self.edge_index.min()) < 0 or int(self.edge_index.max()) >= n):
            problems.append("edge_index out of range")
        if self.in_pairs.shape[1] and (int(self.in_pairs[1].min()) < 0 or int(self.in_pairs[1].max()) >= n):
            problems.append("in_pairs out of range")
        if self.slice_edge.shape[1] and (int(self.slice_edge[1].min()) < 0 or int(self.slice_edge[1].max()) >= e):
            problems.append("slice_edge out of range")
        if problems:
            raise StoreError(
                f"the stored graph is inconsistent ({', '.join(problems)}); delete the run and regenerate it"
            )

    def check_layers(self, shapes: Sequence[Sequence[int]], where: str = "") -> None:
        """Refuse a graph whose layers do not match the feature table's weight shapes."""
        if len(shapes) != self.num_layers:
            raise StoreError(
                f"{where}graph has {self.num_layers} layers but the features have {len(shapes)}; "
                "regenerate the run (its graph was made for another model)"
            )
        for i, shape in enumerate(shapes):
            out_units, in_units, groups, k = (int(v) for v in self.layer_meta[i])
            numel = math.prod(int(s) for s in shape)
            if int(shape[0]) != out_units or numel != out_units * (in_units // max(groups, 1)) * k:
                raise StoreError(
                    f"{where}graph layer {i} ({out_units} units, {in_units} inputs, kernel {k}) does not match "
                    f"weight shape {tuple(shape)}; regenerate the run (its graph was made for another model)"
                )


def build_graph(model: nn.Module, input_shape: Sequence[int]) -> GraphArrays:
    """Trace ``model`` and pack its unit graph (see the module doc for the arrays).

    The unit edges are asked for as one window in table order, so their edge and slice arrays
    are already the stored ones (edge ids counted in table order); only the layer of each edge is
    re-numbered to its table position.
    """
    graph = trace_graph(model, tuple(int(s) for s in input_shape))
    names = [layer.name for layer in prunable_layers(model)]
    by_name = {info.name: info.index for info in graph.layers}
    order = [by_name[n] for n in names]  # table position -> graph (topological) index
    topo_to_table = torch.empty(len(order), dtype=torch.long)
    topo_to_table[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    node_layer = graph.node_layer.clone()
    inner = node_layer >= 0
    node_layer[inner] = topo_to_table[node_layer[inner]]

    out_start, in_blocks, in_ptr, meta = [], [], [0], []
    for gi in order:
        info = graph.layers[gi]
        outs = graph.out_nodes[gi]
        if outs.numel() and not torch.equal(outs, torch.arange(int(outs[0]), int(outs[0]) + outs.numel())):
            raise RuntimeError(f"graph.py gave non-contiguous output nodes for {info.name}")  # contract breach
        out_start.append(int(outs[0]) if outs.numel() else 0)
        pairs = graph.in_nodes[gi]
        in_blocks.append(pairs)
        in_ptr.append(in_ptr[-1] + pairs.shape[1])
        meta.append([info.out_units, info.in_units, info.groups, info.kernel_numel])
    ue = graph.unit_edges(order)

    return GraphArrays(
        node_layer=node_layer,
        node_unit=graph.node_unit.clone(),
        out_start=torch.tensor(out_start, dtype=torch.long),
        in_ptr=torch.tensor(in_ptr, dtype=torch.long),
        in_pairs=torch.cat(in_blocks, dim=1) if in_blocks else torch.empty(2, 0, dtype=torch.long),
        edge_index=ue.edge_index,
        edge_layer=topo_to_table[ue.edge_layer] if ue.num_edges else ue.edge_layer,
        edge_ptr=ue.layer_ptr,
        slice_ptr=ue.slice_ptr,
        slice_edge=ue.slice_index,
        layer_meta=torch.tensor(meta, dtype=torch.long).reshape(-1, 4),
        graph_info=torch.tensor([GRAPH_FORMAT, int(graph.traced), graph.num_input_nodes], dtype=torch.long),
    )


def graph_arrays(model: nn.Module, input_shape: Sequence[int]) -> dict[str, np.ndarray]:
    """The arrays stored with each IRP run under ``graph/`` (written by :mod:`autosparse.sources`)."""
    return build_graph(model, input_shape).to_arrays()
