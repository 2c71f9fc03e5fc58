"""The packed unit graph equals the unit-edge list it packs, reordered to the feature table.

``build_graph`` asks for the unit edges as one window in table order (written in place: on
ResNet-50 the old block-and-concatenate assembly was two thirds of the GNN scorer's time); the
reference below takes the whole graph in topological order and re-orders it by hand, the way
``build_graph`` used to.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autosparse.core.layers import prunable_layers
from autosparse.models import build_model
from autosparse.topology.graph import trace_graph
from autosparse.topology.graph_arrays import ARRAY_NAMES, build_graph


def _reference(model: nn.Module, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    graph = trace_graph(model, shape)
    order = [{i.name: i.index for i in graph.layers}[layer.name] for layer in prunable_layers(model)]
    ue = graph.unit_edges()
    edges, layer_of, slices, edge_ptr, slice_ptr = [], [], [], [0], [0]
    for t, gi in enumerate(order):
        lo, hi = int(ue.layer_ptr[gi]), int(ue.layer_ptr[gi + 1])
        edges.append(ue.edge_index[:, lo:hi])
        layer_of.append(torch.full((hi - lo,), t, dtype=torch.long))
        se = ue.slice_edge[gi]
        slices.append(torch.stack([se[0], se[1] - lo + edge_ptr[-1]]))
        edge_ptr.append(edge_ptr[-1] + hi - lo)
        slice_ptr.append(slice_ptr[-1] + se.shape[1])
    return {
        "edge_index": torch.cat(edges, dim=1),
        "edge_layer": torch.cat(layer_of),
        "edge_ptr": torch.tensor(edge_ptr),
        "slice_edge": torch.cat(slices, dim=1),
        "slice_ptr": torch.tensor(slice_ptr),
    }


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("resnet20", {"width": 0.25}, (1, 28, 28)),  # residual sums: inputs fed by several units
        ("mobilenet", {"width": 0.25, "blocks": 3}, (3, 32, 32)),  # depthwise: groups == channels
        ("vit_tiny", {"depth": 1, "dim": 32}, (1, 28, 28)),  # attention, a flatten of tokens
        ("lenet_300_100", {}, (1, 28, 28)),  # a flatten into the first linear layer
    ],
)
def test_packed_edges_equal_the_unit_edge_list(name: str, kwargs: dict, shape: tuple[int, ...]) -> None:
    model = build_model(name, shape, 10, seed=0, **kwargs)
    packed = build_graph(model, shape)
    for key, want in _reference(model, shape).items():
        assert torch.equal(getattr(packed, key), want), key
    arrays = packed.to_arrays()
    assert set(arrays) == set(ARRAY_NAMES)


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("resnet20", {"width": 0.25}, (1, 28, 28)),
        ("mobilenet", {"width": 0.25, "blocks": 3}, (3, 32, 32)),
        ("vit_tiny", {"depth": 1, "dim": 32}, (1, 28, 28)),
        ("lenet_300_100", {}, (1, 28, 28)),
    ],
)
def test_every_layer_is_an_edge_grid_that_lists_its_edges(name: str, kwargs: dict, shape: tuple[int, ...]) -> None:
    """The grid the GNN sums over must be exactly the layer's edges, in their order, on every row
    (the layout check samples rows; this compares all of them)."""
    graph = build_graph(build_model(name, shape, 10, seed=0, **kwargs), shape)
    for li in range(graph.num_layers):
        grid = graph.edge_grid(li)
        assert grid is not None, li
        e0, e1 = int(graph.edge_ptr[li]), int(graph.edge_ptr[li + 1])
        assert (grid.first_edge, grid.rows * grid.cols) == (e0, e1 - e0)
        src = grid.feeder[:, None].expand(-1, grid.cols)
        dst = grid.out_start + grid.group[:, None] * grid.cols + torch.arange(grid.cols)
        assert torch.equal(graph.edge_index[:, e0:e1], torch.stack([src.reshape(-1), dst.reshape(-1)]))
    in_deg, out_deg = graph.degrees()  # counted from the grids
    assert torch.equal(in_deg, torch.bincount(graph.edge_index[1], minlength=graph.num_nodes))
    assert torch.equal(out_deg, torch.bincount(graph.edge_index[0], minlength=graph.num_nodes))


def test_edges_out_of_grid_order_are_not_taken_for_a_grid() -> None:
    graph = build_graph(build_model("lenet_300_100", (1, 28, 28), 10, seed=0), (1, 28, 28))
    e0, e1 = int(graph.edge_ptr[1]), int(graph.edge_ptr[2])
    graph.edge_index[:, e0:e1] = graph.edge_index[:, e0:e1].flip(1)  # same edges, another order
    assert graph.edge_grid(1) is None
    assert graph.edge_grid(0) is not None
