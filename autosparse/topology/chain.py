"""The fallback graph for a model torch.fx cannot follow: prunable layers as a chain in registration order.

An approximation, documented in :mod:`autosparse.topology.graph`: residual and concat structure
is lost, but every consumer (GNN, diagnostics) still gets a graph of the right shapes, so an
untraceable model degrades rather than fails. ``NetworkGraph.traced`` is ``False`` for it.
"""

from __future__ import annotations

import math

import torch

from autosparse.core.layers import PrunableLayer
from autosparse.topology.unit_graph import NetworkGraph, layer_in_units, layer_info, unique_pairs


def chain_graph(layers: list[PrunableLayer], input_shape: tuple[int, ...]) -> NetworkGraph:
    """Registration order as a chain: the documented approximation for untraceable models."""
    n_input = layer_in_units(layers[0])
    offset = n_input
    out_nodes, in_nodes = [], []
    node_layer = [torch.full((n_input,), -1, dtype=torch.long)]
    node_unit = [torch.arange(n_input)]
    prev_nodes = torch.arange(n_input)
    for i, layer in enumerate(layers):
        n_out = int(layer.shape[0])
        n_in = layer_in_units(layer)
        prev = layers[i - 1] if i else None
        if prev is not None and prev.kind == "attention" and layer.module_name == prev.module_name + ".out_proj":
            e = n_in
            j = torch.arange(e)
            idx, nodes = j.repeat(3), torch.cat([prev_nodes[j], prev_nodes[e + j], prev_nodes[2 * e + j]])
        else:
            p = prev_nodes.numel()
            f = torch.arange(n_in)
            src = f // (n_in // p) if n_in % p == 0 else (f * p) // n_in
            idx, nodes = f, prev_nodes[src.clamp(max=p - 1)]
        in_nodes.append(unique_pairs(idx, nodes))
        prev_nodes = torch.arange(offset, offset + n_out)
        out_nodes.append(prev_nodes)
        node_layer.append(torch.full((n_out,), i, dtype=torch.long))
        node_unit.append(torch.arange(n_out))
        offset += n_out
    return NetworkGraph(
        layers=[layer_info(i, layer, i) for i, layer in enumerate(layers)],
        layer_edges=[(i - 1, i) for i in range(1, len(layers))],
        input_layers=[0],
        output_layers=[len(layers) - 1],
        num_input_nodes=n_input,
        node_layer=torch.cat(node_layer),
        node_unit=torch.cat(node_unit),
        in_nodes=in_nodes,
        out_nodes=out_nodes,
        input_shape=input_shape,
        input_axis=_chain_input_axis(layers[0], input_shape),
        traced=False,
    )


def _chain_input_axis(first: PrunableLayer, shape: tuple[int, ...]) -> int | None:
    n_in = layer_in_units(first)
    if first.kind == "conv" and len(shape) > 1 and shape[0] == n_in:
        return 0
    if n_in == math.prod(shape) or len(shape) == 1:
        return None
    return len(shape) - 1 if shape[-1] == n_in else None
