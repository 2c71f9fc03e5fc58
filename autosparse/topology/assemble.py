"""From a finished unit replay to the :class:`NetworkGraph`: final node ids, input granularity, layer DAG.

The replay numbers nodes as it meets them (input elements, then units as layers and embeddings
are first called); the graph's contract (:mod:`autosparse.topology.unit_graph`) wants input
nodes first at the granularity the layers actually read, then each layer's units contiguously.
Renumbering once at the end keeps the replay free of that concern.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import Tensor

from autosparse.topology.fx_trace import Untraceable
from autosparse.topology.labels import compact
from autosparse.topology.replay import LayerState, UnitReplay, tensors_in
from autosparse.topology.unit_graph import NetworkGraph, layer_info, unique_pairs

logger = logging.getLogger(__name__)


def assemble_graph(replay: UnitReplay, output: Any) -> NetworkGraph:
    """The :class:`NetworkGraph` of a finished replay whose model returned ``output`` (labels).

    Provisional node ids become final ones here (input nodes first, then each layer's units in
    first-call order), input elements collapse to the input granularity, and layer edges, input
    and output layers and depths are read off the renumbered ``in_nodes``.
    """
    called = sorted(replay.states.values(), key=lambda s: s.first_call)
    order = [s.layer for s in called]
    state_by_name = dict(replay.states)
    uncalled = [layer for layer in replay.layers if layer.name not in state_by_name]
    for layer in uncalled:
        logger.warning("prunable layer %s is never called in the forward pass; it is fed by nothing", layer.name)
        start, slots = replay.labels.new_units(int(layer.shape[0]))
        state_by_name[layer.name] = LayerState(layer, 1 << 30, start, slots)
        order.append(layer)
    for s in called:
        if s.calls > 1:
            logger.warning(
                "%s is called %d times (shared weights); its inputs are merged over calls", s.layer.name, s.calls
            )

    in_pairs = {
        name: (torch.cat(s.in_pairs, dim=1) if s.in_pairs else torch.empty(2, 0, dtype=torch.long))
        for name, s in state_by_name.items()
    }
    elem_map, n_placeholder, input_axis = _input_granularity(replay, in_pairs)

    # provisional -> final node ids
    n_embed = sum(c for _, c in replay.embeds)
    n_input = n_placeholder + n_embed
    final = torch.full((replay.labels.num_prov,), -1, dtype=torch.long)
    if replay.n_elem and elem_map is not None:
        final[: replay.n_elem] = elem_map
    offset = n_placeholder
    for start, count in replay.embeds:
        final[start : start + count] = torch.arange(offset, offset + count)
        offset += count
    node_layer = [torch.full((n_input,), -1, dtype=torch.long)]
    node_unit = [torch.arange(n_input)]
    out_nodes: list[Tensor] = []
    for i, layer in enumerate(order):
        s = state_by_name[layer.name]
        count = int(layer.shape[0])
        final[s.out_start : s.out_start + count] = torch.arange(offset, offset + count)
        out_nodes.append(torch.arange(offset, offset + count))
        node_layer.append(torch.full((count,), i, dtype=torch.long))
        node_unit.append(torch.arange(count))
        offset += count
    node_layer_t = torch.cat(node_layer)
    in_nodes = []
    for layer in order:
        p = in_pairs[layer.name]
        mapped = final[p[1]]
        keep = mapped >= 0
        in_nodes.append(unique_pairs(p[0][keep], mapped[keep]))

    edges: set[tuple[int, int]] = set()
    input_layers = []
    for j, pairs in enumerate(in_nodes):
        src = node_layer_t[pairs[1]].unique().tolist()
        if -1 in src:
            input_layers.append(j)
        edges.update((a, j) for a in src if a >= 0)
    out_slots = {s for t in tensors_in(output, {}) for s in compact(t).unique().tolist() if s >= 0}
    out_prov = torch.tensor(sorted({v for s in out_slots for v in replay.labels.slot_nodes[s]}), dtype=torch.long)
    out_final = final[out_prov]
    out_layers = {v for v in node_layer_t[out_final[out_final >= 0]].unique().tolist() if v >= 0}

    depth = [0] * len(order)
    for j in range(len(order)):  # topological order: predecessors first (back edges of shared layers ignored)
        preds = [a for a, b in edges if b == j and a < j]
        depth[j] = 1 + max(depth[a] for a in preds) if preds else 0
    infos = [layer_info(i, layer, depth[i]) for i, layer in enumerate(order)]
    return NetworkGraph(
        layers=infos,
        layer_edges=sorted(edges),
        input_layers=input_layers,
        output_layers=sorted(out_layers),
        num_input_nodes=n_input,
        node_layer=node_layer_t,
        node_unit=torch.cat(node_unit),
        in_nodes=in_nodes,
        out_nodes=out_nodes,
        input_shape=replay.input_shape,
        input_axis=input_axis,
        traced=True,
    )


def _input_granularity(replay: UnitReplay, in_pairs: dict[str, Tensor]) -> tuple[Tensor | None, int, int | None]:
    """Map input elements to input nodes: elements if each read index sees one, else an axis."""
    if not replay.n_elem:
        return None, 0, None
    reads = []
    for p in in_pairs.values():
        m = p[1] < replay.n_elem
        if bool(m.any()):
            reads.append((p[0][m], p[1][m]))
    elems = torch.arange(replay.n_elem)
    if not reads:
        return None, 0, None
    if all(int(torch.bincount(idx).max()) == 1 for idx, _ in reads):
        return elems, replay.n_elem, None
    shape = replay.input_shape
    for axis in range(len(shape)):
        stride = math.prod(shape[axis + 1 :])
        ok = True
        for idx, el in reads:
            coord = (el // stride) % shape[axis]
            size = int(idx.max()) + 1
            lo = torch.full((size,), 1 << 40, dtype=torch.long).scatter_reduce(0, idx, coord, "amin")
            hi = torch.full((size,), -1, dtype=torch.long).scatter_reduce(0, idx, coord, "amax")
            seen = hi >= 0
            if not torch.equal(lo[seen], hi[seen]):
                ok = False
                break
        if ok:
            return (elems // stride) % shape[axis], shape[axis], axis
    if replay.n_elem <= 1 << 16:
        logger.warning("no input axis is read consistently; every input element is a node")
        return elems, replay.n_elem, None
    raise Untraceable("the input is read along no consistent axis")
