"""The seams inside the topology layer: stored graph arrays, the unit-label algebra, the path-graph modules.

test_graph.py and test_paths.py check these end to end; here each piece is pinned on its own, so
a regression points at the file that caused it.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from autosparse.models import build_model
from autosparse.topology.graph_arrays import ARRAY_NAMES, GraphArrays, graph_arrays
from autosparse.topology.labels import UnitLabels, blank, compact, emit
from autosparse.topology.path_modules import AdaptiveSumPool, SumPool, to_path_modules

#: sha256 of the arrays a source run stores under graph/, recorded with the code before the
#: topology split (commit e8a5362). The store's graph format must not drift.
STORED_GRAPH_SHA256 = {
    "mlp": "b92ff8da4a3e31c5d576d36833a53899e4950e91348f51d671a0a30075cfbfe6",
    "resnet20": "90a82aabea713a13e9606ad780f8393f94f36354932524e61bb03f9d6670a831",
}


@pytest.mark.parametrize(
    "name, shape, kwargs",
    [("mlp", (1, 28, 28), {"widths": [12]}), ("resnet20", (3, 32, 32), {})],
)
def test_stored_graph_arrays_are_bit_identical(name: str, shape: tuple[int, ...], kwargs: dict) -> None:
    arrays = graph_arrays(build_model(name, shape, 10, seed=0, **kwargs), shape)
    assert sorted(arrays) == sorted(ARRAY_NAMES)
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(str(arrays[k].dtype).encode())
        h.update(str(arrays[k].shape).encode())
        h.update(arrays[k].tobytes())
    assert h.hexdigest() == STORED_GRAPH_SHA256[name]
    g = GraphArrays.from_arrays(arrays)  # what the scorer reads back
    assert all(torch.equal(getattr(g, k), torch.from_numpy(arrays[k])) for k in ARRAY_NAMES)


def test_unit_labels_union_reduce_and_read() -> None:
    labels = UnitLabels()
    _, a = labels.new_units(2)  # nodes 0, 1
    _, b = labels.new_units(2)  # nodes 2, 3
    shape = (1, 2, 3, 3)
    x, y = emit(a, 1, shape), emit(b, 1, shape)
    assert compact(x).shape == (1, 2, 1, 1)  # labels vary along channels only
    s = labels.union([x, y, blank(shape)], shape)  # a residual add; a unit-free operand changes nothing
    assert s.shape == shape
    assert [labels.slot_nodes[int(v)] for v in compact(s).reshape(-1)] == [(0, 2), (1, 3)]
    pooled = labels.reduce(s, [1])  # a union over channels
    assert pooled.shape == (1, 1, 3, 3)
    assert labels.slot_nodes[int(pooled.reshape(-1)[0])] == (0, 1, 2, 3)
    pairs = labels.read(s, 1)  # what a conv reading s sees: (input channel, node)
    assert pairs.tolist() == [[0, 0, 1, 1], [0, 2, 1, 3]]


def test_path_modules_swap_by_type_and_pools_sum_windows() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1)
    )
    to_path_modules(net)
    assert isinstance(net[0], nn.Conv2d)  # prunable layers stay
    assert isinstance(net[1], nn.Identity) and isinstance(net[2], nn.Identity)
    assert isinstance(net[3], SumPool) and isinstance(net[4], AdaptiveSumPool)
    ones = torch.ones(1, 2, 5, 5)
    assert net[3](ones).tolist() == torch.full((1, 2, 2, 2), 4.0).tolist()  # each window: 4 edges
    assert net[4](ones).reshape(-1).tolist() == [25.0, 25.0]
