"""A store run read back for the GNN scorer: its unit graph (stored or rebuilt) and its feature table.

The graph arrays themselves are :mod:`autosparse.topology.graph_arrays` (a source run writes
them; see there for the layout). Runs written before the graph was stored are handled by
:func:`run_graph`, which rebuilds the same arrays from the run's attributes: the topology
depends only on the architecture, never on θ0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from autosparse.core.errors import StoreError
from autosparse.features import SPECS, FeatureTable, LayerFeatures
from autosparse.models import build_model
from autosparse.topology.graph_arrays import ARRAY_NAMES, GraphArrays, build_graph


def run_graph(run: Any) -> GraphArrays:
    """The graph of a store run (:class:`~autosparse.store.reader.RunData`): stored, or rebuilt.

    Runs generated before graphs were stored carry none; their architecture is in the attrs
    (model, model_kwargs, input_shape, num_classes, seed), so the model is rebuilt and traced —
    the topology does not depend on the weights, only the features do, and those come from the store.
    """
    shapes = [tuple(e["shape"]) for e in run.layers]
    where = f"run {run.run_id!r}: "
    if run.graph and all(n in run.graph for n in ARRAY_NAMES):
        g = GraphArrays.from_arrays(run.graph)
    else:
        g = _rebuild(run)
    g.check_layers(shapes, where)
    return g


def _rebuild(run: Any) -> GraphArrays:
    attrs = run.attrs
    missing = [k for k in ("model", "input_shape", "num_classes") if k not in attrs]
    if missing:
        raise StoreError(
            f"run {run.run_id!r} has no stored graph and its attrs lack {missing}, so the model cannot be rebuilt; "
            "regenerate the run with `autosparse gen`"
        )
    shape = tuple(int(s) for s in attrs["input_shape"])
    model = build_model(
        attrs["model"],
        shape,
        int(attrs["num_classes"]),
        seed=int(attrs.get("seed", 0)),
        **(attrs.get("model_kwargs") or {}),
    )
    return build_graph(model, shape)


def table_from_run(run: Any, names: Sequence[str]) -> FeatureTable:
    """A :class:`FeatureTable` (the prune-time structure) from a stored run's per-weight rows.

    The store broadcasts row/column/layer features to every weight; they are read back from
    one representative weight per unit, so training and pruning build the GNN's inputs through
    the same code path. Weight-level columns are views, not copies.
    """
    feats = run.features
    feats = feats if isinstance(feats, torch.Tensor) else torch.from_numpy(np.asarray(feats))
    cols = {n: run.feature_names.index(n) for n in names}
    layers = []
    for entry in run.layers:
        off, n = int(entry["offset"]), int(entry["numel"])
        shape = tuple(int(s) for s in entry["shape"])
        lf = LayerFeatures(entry["name"], shape, str(entry.get("kind", "")))
        block = feats[off : off + n]
        per_row = n // shape[0]
        kernel = lf.kernel
        in_units = shape[1] if len(shape) > 1 else 1
        for name, c in cols.items():
            group = SPECS[name].group
            if group == "weight":
                lf.weight[name] = block[:, c]
            elif group == "row":
                lf.row[name] = block[::per_row, c].clone()
            elif group == "col":
                lf.col[name] = block[: in_units * kernel : kernel, c].clone()
            else:
                lf.layer[name] = float(block[0, c])
        layers.append(lf)
    return FeatureTable(tuple(names), layers)
