"""A bench cell's record on disk: reading it, and whether it is still this grid's result.

Why apart from :mod:`autosparse.bench.cells`: the cells compute results; this judges the ones on
disk — a cell made by another version of its method (a scorer's weights or card, a changed
default, or an autosparse that recorded neither) is stale, recomputed, and kept under
``cells_stale/`` rather than lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from autosparse.core import json_text
from autosparse.core.errors import UnknownNameError
from autosparse.pruners import get_pruner

log = logging.getLogger(__name__)

STALE_DIR = "cells_stale"  # cells of another version of their method (scorer, evidence, defaults), set aside


def read_cell(path: str | Path) -> dict[str, Any] | None:
    """A finished cell's record, or None if absent or unreadable (an unreadable one is recomputed)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("ignoring unreadable bench cell %s; it will be recomputed", path)
        return None
    if not isinstance(record, dict) or record.get("cell_id") != path.stem:
        log.warning("ignoring bench cell %s whose cell_id does not match its name; it will be recomputed", path)
        return None
    if lacking := [k for k in _REPORTED if k not in record]:  # a KeyError in every report, or a "–" never recomputed
        log.warning("ignoring bench cell %s, which lacks %s; it will be recomputed", path, ", ".join(lacking))
        return None
    return record


#: what every report reads of a cell: one without them is damaged (hunt)
_REPORTED = ("model", "dataset", "label", "density", "seed", "test_accuracy")


def read_current_cell(path: str | Path, identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """:func:`read_cell`, but None for a cell whose recorded method identity differs from ``identity``:
    a scorer retrained under the same name, or a method whose resolved hyperparameters changed (a
    default), must not reuse cells made the old way.

    A cell made before a key was recorded differs in it too: an ``autos`` cell from before 2026-12-01
    (no identity) or 2026-12-04 (no card hash) was reused after the scorer changed (helper). Its
    resolved hyperparameters are read from its ``pruner_config`` where its identity lacks their hash;
    a cell recording neither is judged by the rest. An unresolvable ``identity`` counts as current.
    """
    record = read_cell(path)
    if record is None or not identity:
        return record
    recorded = record.get("method_identity", {})
    if not isinstance(recorded, dict):
        return None
    if CONFIG_KEY not in recorded and isinstance(record.get("pruner_config"), dict):
        now = as_configured_now(record["pruner_config"], _defaults(record.get("method")))
        recorded = {**recorded, CONFIG_KEY: config_sha256(now)}
    for key in set(recorded) | set(identity):  # a key on one side only differs too (evidence removed)
        if key == CONFIG_KEY and key not in recorded:
            continue  # a cell from before cells recorded their configuration: nothing to compare
        if recorded.get(key) != identity.get(key):
            return None  # set_aside_stale says so when it is recomputed
    return record


#: fields added with a default that changed what earlier cells did: the value that reproduces those cells
#: from what they recorded (a review found `rescale_normalized` read at its default made old cells current)
_BEHAVIOUR_BEFORE = {
    # ab33a85, 2026-12-01: before it, rescale=True rescaled the layers a normalisation layer follows too
    "rescale_normalized": lambda old: bool(old.get("rescale")),
    # e65668d, 2026-12-03: before it, autos' repair had no rehome step
    "rehome": lambda old: False,
}


def as_configured_now(old: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """An older cell's recorded configuration in today's fields: each field added since at the value that
    reproduces what the cell did (its default where the field changed nothing).

    Why: read as "differs", every classic cell of 2026-11 was recomputed for one neutral field (review);
    read at its default, a field that changed masks (rescale_normalized) made old cells current (review).
    """
    added = {
        k: (_BEHAVIOUR_BEFORE[k](old) if k in _BEHAVIOUR_BEFORE else v) for k, v in defaults.items() if k not in old
    }
    return {**old, **added}


#: the identity key of a method's hyperparameters as resolved (defaults included)
CONFIG_KEY = "config_sha256"


def _defaults(method: object) -> dict[str, Any]:
    """The default configuration of the method a cell records, as a cell's JSON would hold it (empty for
    a method no longer registered, or one without a default for every field: nothing is filled in)."""
    try:
        default = get_pruner(str(method)).Config()
    except (UnknownNameError, TypeError):
        return {}
    return json.loads(json_text.dumps(dataclasses.asdict(default), default=str))


def config_sha256(config: dict[str, Any]) -> str:
    """A hash of a pruner configuration as a cell's JSON holds it (tuples as lists, NaN as null)."""
    text = json.dumps(json.loads(json_text.dumps(config, default=str)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def set_aside_stale(path: Path, identity: dict[str, Any] | None) -> None:
    """Keep a stale cell (see :func:`read_current_cell`) under cells_stale/ instead of overwriting it.

    Only a stale one: a current cell there was written by another bench process on the same
    folder while this one computed it (the same result), and is simply replaced.
    """
    if not path.exists() or read_current_cell(path, identity) is not None:
        return
    record = read_cell(path) or {}
    # of the whole record: cells recording no identity got one tag, and a second stale copy replaced the first (review)
    tag = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:10]
    dst = path.parent.parent / STALE_DIR / f"{path.stem}.{tag}.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dst)
    log.warning(
        "bench cell %s was made with another version of its method (its scorer's weights, card or evidence, or a "
        "hyperparameter default; or by an autosparse that did not record them): recomputing it; the old one is in %s",
        path.name,
        dst,
    )
