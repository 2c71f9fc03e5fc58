"""What a config records and is named by: its JSON/YAML dict, and the hash run folders and ids carry.

Apart from ``config`` (dataclass ⇄ flags ⇄ YAML) because this side must never move: tests/test_ids.py
pins the hashes of every shipped config.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml


@functools.cache
def _float_fields(cls: type) -> dict[str, int | float | None]:
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # a forward reference only a type checker resolves
        return {}
    unions, fields = (typing.Union, types.UnionType), dataclasses.fields(cls)
    floaty = [
        n for n, t in hints.items() if get_origin(t) in unions and float in get_args(t) and int not in get_args(t)
    ]
    floats = {n for n, t in hints.items() if t is float} | set(floaty)
    return {f.name: f.default if type(f.default) in (int, float) else None for f in fields if f.name in floats}


def _as_float(value: Any, default: int | float | None) -> Any:
    """An int in a float field hashes as the float a flag or YAML gives (``TrainConfig(epochs=1)`` and
    ``--epochs 1`` named two runs), except an int default's own spelling (``epochs: float = 8`` left out),
    which pinned ids were hashed with; so ``--epochs 8`` (8.0) still names another run than leaving it
    out (tests/test_ids.py). ``label_smoothing=0`` is 0.0, its default's spelling."""
    return float(value) if type(value) is int and not (type(default) is int and value == default) else value


def to_dict(obj: Any) -> Any:
    """JSON/YAML-safe form of a (nested) dataclass: tuples become lists, numbers in float fields one spelling."""
    return _as_dict(obj, record=False)


def record_dict(obj: Any) -> Any:
    """:func:`to_dict` for a record that ``from_dict`` reads back as the same config (a bench folder's
    bench.yaml): a float field holding its int default (``epochs`` left out: 8) is left out of it too.

    Why: read back, YAML's 8 becomes the float 8.0, which hashes apart from the default's 8 (the pinned
    spelling), so a folder's recorded grid named other cells than its own run's: every cell of a grid
    that left ``epochs`` out was computed again, and its report found none of them (review)."""
    return _as_dict(obj, record=True)


def respelled(obj: Any, raw: Any) -> Any:
    """``obj`` (built by ``from_dict`` from the record ``raw``) with every float field that ``raw`` gives as
    its int default spelled as that default again, so the record hashes as the config that wrote it.

    Why: ``from_dict`` reads YAML's and JSON's 8 as 8.0, which hashes apart from the default's 8 (the
    pinned spelling): a store run's recorded spec was warned of as changed, and a folder's bench.yaml
    written before :func:`record_dict` named other cells than its run's (review)."""
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type) and isinstance(raw, Mapping)):
        return obj
    floats, changes = _float_fields(type(obj)), {}
    for f in dataclasses.fields(obj):
        if not f.init or f.name not in raw:
            continue
        value, given = getattr(obj, f.name), raw[f.name]
        if f.name in floats and type(given) is int and type(floats[f.name]) is int and given == floats[f.name]:
            changes[f.name] = given
        elif dataclasses.is_dataclass(value):
            changes[f.name] = respelled(value, given)
        elif isinstance(value, (list, tuple)) and isinstance(given, (list, tuple)) and len(value) == len(given):
            changes[f.name] = type(value)(respelled(v, g) for v, g in zip(value, given))
    changed = {k: v for k, v in changes.items() if v is not getattr(obj, k)}
    return dataclasses.replace(obj, **changed) if changed else obj


def _as_dict(obj: Any, record: bool) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        floats = _float_fields(type(obj))
        out = {}
        for f in dataclasses.fields(obj):
            v = _as_dict(getattr(obj, f.name), record)
            if f.name in floats:
                default = floats[f.name]
                v = _as_float(v, default)
                if record and type(v) is int and type(default) is int and v == default:
                    continue
            out[f.name] = v
        return out
    if isinstance(obj, (list, tuple)):
        return [_as_dict(v, record) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): _as_dict(v, record) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_hash(obj: Any, length: int = 10) -> str:
    """A stable short hash of a config: run folders and store run ids are named by it."""
    blob = json.dumps(to_dict(obj), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def dump_yaml(obj: Any, *, record: bool = False) -> str:
    """YAML of a config (``record``: of :func:`record_dict`, to be read back as the same config)."""
    return yaml.safe_dump(record_dict(obj) if record else to_dict(obj), sort_keys=False)
