"""The unit graph's data types: what :func:`~autosparse.topology.graph.trace_graph` hands out.

Kept apart from the tracing so that the GNN re-packing, the chain fallback and the replay all
build or read one :class:`NetworkGraph` without pulling in torch.fx machinery, and so that the
shape contract below has one home.

Shapes (the contract the GNN builds on)
---------------------------------------
Nodes: ``N = num_input_nodes + sum(out_units)``; input nodes first (ids ``0..num_input_nodes-1``),
then each layer's output units contiguously, layers in topological order.

* ``node_layer``: LongTensor (N,), the layer index of each node, ``-1`` for input nodes.
* ``node_unit``: LongTensor (N,), the unit index within its layer (or among the input nodes).
* ``out_nodes[i]``: LongTensor (out_units_i,), node id of each output unit of layer i
  (``weight.shape[0]``; for ``in_proj_weight`` ``3E``).
* ``in_nodes[i]``: LongTensor (2, E_i) of ``(input_index, node_id)`` pairs sorted by input index.
  ``input_index`` runs over the layer's *input units*: ``in_features`` for linear,
  ``in_channels`` for conv (for a grouped conv, ``weight[o, j]`` reads input channel
  ``(o // (out_units // groups)) * (in_units // groups) + j``). One index may be fed by several
  nodes (residual add, SE multiply) and one node may feed several indices (a Linear after
  ``Flatten`` of a ``C x H x W`` map: feature ``f`` is fed by channel ``f // (H*W)``).

:meth:`NetworkGraph.unit_edges` returns a :class:`UnitEdges` at *unit-pair* granularity (never
one edge per weight in trace_graph; for a conv one edge carries a whole kernel):

* ``edge_index``: LongTensor (2, E) of ``(src_node, dst_node)``; edges of layer i are the
  contiguous block ``layer_ptr[i]:layer_ptr[i+1]`` and ``edge_layer`` (E,) repeats i over it.
  Within a layer, an edge is a unique ``(source node, output unit)`` pair, so
  ``E_layer = out_units * |in_nodes[i]|`` (divided by ``groups``).
* ``slice_edge[i]``: LongTensor (2, M_i) of ``(slice_id, edge_id)``. A *slice* is
  ``weight[o, j]`` (``kernel_numel[i]`` elements: the whole kernel of a conv, one element for
  linear); ``slice_id = o * weight.shape[1] + j`` and the weight element with flat index ``e``
  (in ``weight.reshape(-1)``) lies in slice ``e // kernel_numel[i]``. The map is many-to-many:
  several slices share an edge after a flatten; one slice has several edges when its input index
  is fed by a residual sum. :meth:`UnitEdges.weight_edges` expands it to weight elements for one
  layer on request.

Sizes: ResNet-18 (11.7M weights) has 4.0M unit edges, 1.2M with ``max_sources=1``; a linear
layer has one edge per weight anyway, and in a transformer every residual-stream feature is fed
by every earlier writer, so ViT-B/16 has 690M uncapped edges (86M with ``max_sources=1``). Ask
for windows of layers (``unit_edges(layers=[...])``) and/or a cap; :meth:`NetworkGraph.num_unit_edges`
counts without building.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from autosparse.core.errors import ConfigError, UnknownNameError
from autosparse.core.layers import PrunableLayer


@dataclass
class LayerInfo:
    """One prunable weight as a node of the layer graph."""

    index: int  # position in topological order
    name: str  # qualified parameter name, as in autosparse.core.layers ("layer1.0.conv1.weight")
    module_name: str
    kind: str  # linear | conv | attention
    in_units: int  # input features / channels (the input_index range of in_nodes)
    out_units: int  # output neurons / channels (weight.shape[0])
    kernel: tuple[int, ...]  # () for linear and attention
    groups: int
    depth: int  # longest path in layers from the input; 0 = fed by the input directly
    shape: tuple[int, ...]  # weight shape

    @property
    def kernel_numel(self) -> int:
        return math.prod(self.kernel) if self.kernel else 1


@dataclass
class UnitEdges:
    """Unit-pair edges of a :class:`NetworkGraph` and how weights map onto them (see module doc)."""

    edge_index: Tensor  # (2, E) src node, dst node (global node ids)
    edge_layer: Tensor  # (E,) global layer index of each edge
    layer_ptr: Tensor  # (len(layers) + 1,) edges of layers[k] are layer_ptr[k]:layer_ptr[k+1]
    slice_index: Tensor  # (2, M) slice_id, edge id (into this edge list), layers[k]'s in slice_ptr[k]:slice_ptr[k+1]
    slice_ptr: Tensor  # (len(layers) + 1,)
    kernel_numel: list[int]  # aligned with layers
    layers: list[int]  # the layer indices covered, in order (all layers unless a window was asked for)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def slice_edge(self) -> list[Tensor]:
        """Aligned with ``layers``: each layer's (2, M_l) block of :attr:`slice_index` (views)."""
        ptr = self.slice_ptr.tolist()
        return [self.slice_index[:, a:b] for a, b in itertools.pairwise(ptr)]

    def weight_edges(self, layer: int) -> Tensor:
        """(2, M * K) pairs of (flat weight index, edge id) for one layer (a global layer index).

        Materialised per layer on request only: over a whole ResNet this is one entry per weight
        (or more under residual sums), which is what the GNN's per-weight readout needs but is
        too big to keep for every layer at once.
        """
        pos = self.layers.index(layer)
        k = self.kernel_numel[pos]
        se = self.slice_edge[pos]
        if k == 1:
            return se.clone()
        offs = torch.arange(k)
        elems = (se[0][:, None] * k + offs[None, :]).reshape(-1)
        return torch.stack([elems, se[1].repeat_interleave(k)])


@dataclass
class NetworkGraph:
    """Prunable layers in topological order, the layer DAG and the unit graph (see module doc)."""

    layers: list[LayerInfo]
    layer_edges: list[tuple[int, int]]
    input_layers: list[int]
    output_layers: list[int]
    num_input_nodes: int
    node_layer: Tensor
    node_unit: Tensor
    in_nodes: list[Tensor]
    out_nodes: list[Tensor]
    input_shape: tuple[int, ...]
    input_axis: int | None  # axis of input_shape whose coordinate is the input unit; None = elements
    traced: bool  # False when the chain-in-registration-order fallback was used
    _unit_edges: UnitEdges | None = field(default=None, repr=False, compare=False)

    @property
    def num_nodes(self) -> int:
        return int(self.node_layer.numel())

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def index(self, name: str) -> int:
        """Layer index of a parameter name; raises UnknownNameError with close matches."""
        for layer in self.layers:
            if layer.name == name:
                return layer.index
        raise UnknownNameError("layer", name, self.names, "use a name from NetworkGraph.names")

    def predecessors(self, i: int) -> list[int]:
        return sorted({a for a, b in self.layer_edges if b == i})

    def successors(self, i: int) -> list[int]:
        return sorted({b for a, b in self.layer_edges if a == i})

    def unit_edges(self, layers: Iterable[int] | None = None, *, max_sources: int | None = None) -> UnitEdges:
        """Unit-pair edge list and the weight-slice -> edge map (see the module doc for shapes).

        ``layers`` restricts it to a window of layer indices (edge ids are then local to the
        window; node ids stay global), which is how a GNN batches a big network. ``max_sources``
        keeps, per input index, only the nearest that many feeding nodes (deepest layer first):
        in a transformer every residual-stream feature is fed by every earlier writer, so the
        faithful edge count grows with depth squared (690M for ViT-B/16; see
        :meth:`num_unit_edges`). The full, uncapped graph is cached after the first call.
        """
        full = layers is None and max_sources is None
        if full and self._unit_edges is not None:
            return self._unit_edges
        chosen = list(range(len(self.layers))) if layers is None else [int(i) for i in layers]
        result = _build_unit_edges(self, chosen, max_sources)
        if full:
            self._unit_edges = result
        return result

    def num_unit_edges(self, layers: Iterable[int] | None = None, *, max_sources: int | None = None) -> int:
        """How many edges :meth:`unit_edges` would build, without building them."""
        chosen = range(len(self.layers)) if layers is None else layers
        total = 0
        for i in chosen:
            info = self.layers[i]
            pairs = _cap_sources(self, self.in_nodes[i], max_sources)
            g = pairs[0] // (info.in_units // info.groups)
            total += int(torch.unique(g * max(self.num_nodes, 1) + pairs[1]).numel()) * (info.out_units // info.groups)
        return total

    def describe(self) -> str:
        """One line per layer (index, depth, shape, feeders) for logs and the CLI."""
        lines = [
            f"{len(self.layers)} prunable layers, {self.num_nodes} unit nodes "
            f"({self.num_input_nodes} input){'' if self.traced else ' [chain fallback: not traced]'}"
        ]
        preds: dict[int, list[int]] = {i: [] for i in range(len(self.layers))}
        for a, b in self.layer_edges:
            preds[b].append(a)
        for layer in self.layers:
            src = ["input"] if layer.index in self.input_layers else []
            src += [str(p) for p in sorted(preds[layer.index])]
            lines.append(
                f"{layer.index:>4} d={layer.depth:<3} {layer.name:<50} {tuple(layer.shape)!s:<22} <- {', '.join(src)}"
            )
        return "\n".join(lines)


def _cap_sources(graph: NetworkGraph, pairs: Tensor, max_sources: int | None) -> Tensor:
    """Keep, per input index, the ``max_sources`` feeding nodes of the deepest layers."""
    if max_sources is None or pairs.shape[1] == 0:
        return pairs
    if max_sources < 1:
        raise ConfigError(f"max_sources must be a positive int or None, got {max_sources}")
    depth = torch.tensor([-1] + [layer.depth for layer in graph.layers], dtype=torch.long)
    owner = graph.node_layer[pairs[1]]
    nearness = depth[owner + 1] * (len(graph.layers) + 1) + owner + 1  # deeper, then later, is nearer
    top = int(nearness.max()) + 1
    order = torch.argsort(pairs[0] * top + (top - 1 - nearness), stable=True)
    idx = pairs[0][order]
    starts = torch.ones_like(idx, dtype=torch.bool)
    starts[1:] = idx[1:] != idx[:-1]
    group_start = torch.cummax(torch.where(starts, torch.arange(idx.numel()), 0), 0).values
    rank = torch.arange(idx.numel()) - group_start
    kept = order[rank < max_sources]
    return pairs[:, kept.sort().values]


def _build_unit_edges(graph: NetworkGraph, chosen: list[int], max_sources: int | None) -> UnitEdges:
    """The edges of the ``chosen`` layers, in that order, written in place into their final buffers.

    Sizes first (one ``unique`` per layer over its feeder pairs), then every layer's block of
    edges and slices straight into preallocated arrays: on ResNet-50 (~40M edges) building
    per-layer blocks and concatenating and re-stacking them allocated each array several times
    over, two thirds of the GNN scorer's time, on a machine where fresh memory is slow to touch.
    """
    n = max(graph.num_nodes, 1)
    plans = []
    ptr, sptr = [0], [0]
    for i in chosen:
        info = graph.layers[i]
        pairs = _cap_sources(graph, graph.in_nodes[i], max_sources)
        in_pg, out_pg = info.in_units // info.groups, info.out_units // info.groups
        ukey, u = torch.unique((pairs[0] // in_pg) * n + pairs[1], return_inverse=True)
        plans.append((info, pairs, ukey, u, in_pg, out_pg))
        ptr.append(ptr[-1] + ukey.numel() * out_pg)
        sptr.append(sptr[-1] + pairs.shape[1] * out_pg)
    edge_index = torch.empty(2, ptr[-1], dtype=torch.long)
    edge_layer = torch.empty(ptr[-1], dtype=torch.long)
    slice_index = torch.empty(2, sptr[-1], dtype=torch.long)
    for k, (info, pairs, ukey, u, in_pg, out_pg) in enumerate(plans):
        e0, e1, m0, m1 = ptr[k], ptr[k + 1], sptr[k], sptr[k + 1]
        edge_layer[e0:e1] = info.index
        if e1 == e0:
            continue
        ol = torch.arange(out_pg)[None, :]
        gu, su = ukey // n, ukey % n
        # edge (feeding node su, output unit ol of group gu): feeders in key order, outputs inner
        edge_index[0, e0:e1].view(-1, out_pg).copy_(su[:, None].expand(-1, out_pg))
        dst = edge_index[1, e0:e1].view(-1, out_pg)
        torch.add((gu * out_pg)[:, None], ol, out=dst)
        outs = graph.out_nodes[info.index]
        if torch.equal(outs, torch.arange(int(outs[0]), int(outs[0]) + outs.numel())):
            dst.add_(int(outs[0]))  # the usual case: a layer's output nodes are contiguous
        else:
            dst.copy_(outs[dst])
        # slice (output unit, input index within the group) of each feeder pair, and its edge
        j = pairs[0]
        sid = slice_index[0, m0:m1].view(-1, out_pg)
        torch.add(((j // in_pg) * out_pg)[:, None], ol, out=sid)
        sid.mul_(in_pg).add_((j % in_pg)[:, None])
        torch.add((u * out_pg + e0)[:, None], ol, out=slice_index[1, m0:m1].view(-1, out_pg))
    return UnitEdges(
        edge_index=edge_index,
        edge_layer=edge_layer,
        layer_ptr=torch.tensor(ptr, dtype=torch.long),
        slice_index=slice_index,
        slice_ptr=torch.tensor(sptr, dtype=torch.long),
        kernel_numel=[graph.layers[i].kernel_numel for i in chosen],
        layers=chosen,
    )


def layer_info(index: int, layer: PrunableLayer, depth: int) -> LayerInfo:
    """The graph's view of one prunable layer; the traced and the chain graph describe layers alike."""
    mod = layer.module
    shape = tuple(int(s) for s in layer.shape)
    if isinstance(mod, nn.modules.conv._ConvNd):
        kernel, groups = tuple(int(k) for k in mod.kernel_size), int(mod.groups)
    else:
        kernel, groups = (), 1
    return LayerInfo(
        index=index,
        name=layer.name,
        module_name=layer.module_name,
        kind=layer.kind,
        in_units=layer_in_units(layer),
        out_units=shape[0],
        kernel=kernel,
        groups=groups,
        depth=depth,
        shape=shape,
    )


def layer_in_units(layer: PrunableLayer) -> int:
    """Input units a layer reads: a grouped conv's weight holds only ``in_channels // groups`` of them."""
    groups = int(getattr(layer.module, "groups", 1)) if isinstance(layer.module, nn.modules.conv._ConvNd) else 1
    return int(layer.shape[1]) * groups


def unique_pairs(idx: Tensor, nodes: Tensor) -> Tensor:
    """(2, P) unique ``(input index, node)`` pairs, sorted: the canonical form of ``in_nodes``."""
    if idx.numel() == 0:
        return torch.empty(2, 0, dtype=torch.long)
    base = int(nodes.max()) + 1
    key = torch.unique(idx * base + nodes)
    return torch.stack([key // base, key % base])
