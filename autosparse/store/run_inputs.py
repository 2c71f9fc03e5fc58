"""What a caller hands ``FeatureStore.write_run``, checked and turned into exactly what the layout stores.

Every check runs before anything touches the disk, so a wrong argument is a ``ValueError`` that
names the fix, never a half-written run. Torch tensors are accepted as well as numpy arrays
without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autosparse.store.layout import RESERVED_ATTRS, check_name, jsonable

#: Rows checked per step for non-finite features: bounds the temporaries of the finite check.
CHECK_BLOCK_BYTES = 64 * 2**20


def as_numpy(x: Any) -> np.ndarray:
    """Accept torch tensors (on any device, with grad) as well as numpy arrays."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_attrs(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """The run's JSON-like attributes and its number of IRP rounds R (labels are rounds in [0, R])."""
    user_attrs = jsonable(dict(attrs), "attrs")
    clash = RESERVED_ATTRS & set(user_attrs)
    if clash:
        raise ValueError(f"attrs may not set {sorted(clash)}: the store writes those itself")
    rounds = user_attrs.get("rounds")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 0 <= rounds <= np.iinfo(np.int8).max:
        raise ValueError(
            f"attrs['rounds'] must be the number of IRP rounds R (an int in [0, 127]), got {rounds!r}: "
            "labels are rounds in [0, R]"
        )
    if not isinstance(user_attrs.get("versions", {}), dict):
        raise ValueError("attrs['versions'] must be a dict of package -> version (it is merged with the detected ones)")
    return user_attrs, rounds


def normalise_table(layers_table: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check the layer table and fill in offset/numel, so readers can trust it without recomputing."""
    if not layers_table:
        raise ValueError("layers_table is empty: a run needs at least one prunable layer")
    table: list[dict[str, Any]] = []
    offset = 0
    for i, entry in enumerate(layers_table):
        e = dict(jsonable(dict(entry), f"layers_table[{i}]"))
        if "name" not in e or "shape" not in e:
            raise ValueError(f"layers_table[{i}] needs 'name' and 'shape' (and usually 'kind'); got keys {sorted(e)}")
        shape = [int(s) for s in e["shape"]]
        numel = int(np.prod(shape)) if shape else 1
        if "numel" in e and int(e["numel"]) != numel:
            raise ValueError(f"layers_table[{i}] ({e['name']}): numel {e['numel']} != prod(shape {shape}) = {numel}")
        if "offset" in e and int(e["offset"]) != offset:
            raise ValueError(
                f"layers_table[{i}] ({e['name']}): offset {e['offset']} but the layers before it hold {offset} "
                "weights; rows must be the layers' flattened weights concatenated in table order"
            )
        e.update(name=str(e["name"]), shape=shape, offset=offset, numel=numel, kind=str(e.get("kind", "unknown")))
        table.append(e)
        offset += numel
    if len({e["name"] for e in table}) != len(table):
        raise ValueError("layers_table has duplicate layer names")
    if len(table) > np.iinfo(np.int16).max:
        raise ValueError(f"{len(table)} layers do not fit the int16 layer index")
    return table


def normalise_arrays(arrays: Mapping[str, Any] | None, what: str) -> dict[str, np.ndarray]:
    """Graph/extra arrays as bool, int64 or float32 — the dtypes the GNN side expects."""
    out: dict[str, np.ndarray] = {}
    for name, value in (arrays or {}).items():
        check_name(name, f"{what} array name")
        a = as_numpy(value)
        if a.dtype == np.bool_:
            pass
        elif np.issubdtype(a.dtype, np.integer):
            a = a.astype(np.int64, copy=False)
        elif np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32, copy=False)
        else:
            raise ValueError(f"{what}[{name!r}] has dtype {a.dtype}; store bool, integer or floating arrays")
        out[name] = np.ascontiguousarray(a)
    return out


def check_features(features: Any, n: int, feature_names: Sequence[str]) -> np.ndarray:
    """(n_weights, n_features) finite float32: a non-finite feature would poison scorer training."""
    n_features = len(feature_names)
    feats = as_numpy(features)
    if feats.ndim != 2 or feats.shape != (n, n_features):
        raise ValueError(
            f"features must be (n_weights={n}, n_features={n_features}) for this store's schema, got {feats.shape}"
        )
    if not np.issubdtype(feats.dtype, np.floating) and not np.issubdtype(feats.dtype, np.integer):
        raise ValueError(f"features must be numeric, got {feats.dtype}")
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    step = max(1, CHECK_BLOCK_BYTES // (4 * n_features))
    for a in range(0, n, step):
        block = feats[a : a + step]
        if not np.isfinite(block).all():
            bad = [feature_names[j] for j in np.flatnonzero(~np.isfinite(block).all(axis=0))]
            raise ValueError(
                f"features contain NaN/inf in columns {bad}; fix the feature computation (e.g. a per-layer "
                "std of zero) — a non-finite feature would poison scorer training"
            )
    return feats


def check_label(label: Any, n: int, rounds: int) -> np.ndarray:
    """One IRP round in [0, R] per weight, as int8."""
    lab = as_numpy(label)
    if lab.shape != (n,):
        raise ValueError(f"label must have shape ({n},) (one IRP round per weight), got {lab.shape}")
    is_int = np.issubdtype(lab.dtype, np.integer)
    if not is_int and not (np.issubdtype(lab.dtype, np.floating) and np.array_equal(lab, np.round(lab))):
        raise ValueError(f"label must hold integer rounds, got dtype {lab.dtype}")
    if n and (lab.min() < 0 or lab.max() > rounds):
        raise ValueError(
            f"labels must be in [0, R={rounds}] (R = survived every round), got [{lab.min()}, {lab.max()}]"
        )
    return np.ascontiguousarray(lab, dtype=np.int8)


def check_layer(layer: Any, table: list[dict[str, Any]]) -> np.ndarray:
    """Each row's int16 index into the table: derived from it, or checked against it when given."""
    expected = np.repeat(np.arange(len(table), dtype=np.int16), [e["numel"] for e in table])
    if layer is None:
        return expected
    lay = as_numpy(layer)
    if lay.shape != expected.shape or not np.array_equal(lay, expected):
        raise ValueError(
            "layer must give each row's index into layers_table, rows ordered by layer "
            f"(expected {len(table)} consecutive blocks of sizes {[e['numel'] for e in table]}); "
            "omit it to have it derived from the table"
        )
    return expected
