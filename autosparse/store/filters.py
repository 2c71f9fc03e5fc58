"""Selecting runs by their attributes: how a filter is written, parsed and matched, in one place.

Readers (``StoreReader(where=..., exclude=...)``), the scorer's ``--holdout`` and ``store info``
all select runs the same way. Values are compared the way they are stored: a run records
``seed: 2`` (an int), so the text ``seed=2`` typed on a command line is read as an int before
it is compared, ``final=true`` as a bool, ``lr=0.1`` as a float — and ``True`` never equals
``1``. A key that a run lacks never matches, not even with ``!=``, so a typo selects nothing
rather than everything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from autosparse.core.errors import ConfigError

Predicate = Callable[[dict[str, Any]], bool]
Filter = Predicate | Mapping[str, Any] | None

_TRUE, _FALSE, _NONE = ("true", "yes", "1"), ("false", "no", "0"), ("none", "null")


def lookup(attrs: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """Find ``key`` (dotted paths allowed) in a run's attrs, then inside its ``config``.

    Runs record their settings as ``spec`` (reached as ``spec.irp.criterion``, ``spec.train.lr``);
    the first stores recorded them as ``config = {model, dataset, seed, irp...}``, which a short key
    such as ``irp.rounds`` still reaches, so filters written for those stores keep working.
    """
    for base in (attrs, attrs.get("config")):
        if not isinstance(base, Mapping):
            continue
        node: Any = base
        for part in key.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                break
        else:
            return True, node
    return False, None


def display_name(value: Any) -> Any:
    """A config entry like ``{"name": "vgg16", "width": 2}`` is known by its name."""
    if isinstance(value, Mapping) and "name" in value:
        return value["name"]
    return value


def read_as(text: str, like: Any) -> tuple[bool, Any]:
    """``text`` read as a value of ``like``'s type: ``(True, value)``, or ``(False, None)`` if it is not one."""
    low = text.strip().lower()
    try:
        if isinstance(like, bool):
            return (True, True) if low in _TRUE else (True, False) if low in _FALSE else (False, None)
        if isinstance(like, int):
            return True, int(text)
        if isinstance(like, float):
            return True, float(text)
        if like is None:
            return (True, None) if low in _NONE else (False, None)
        if isinstance(like, str):
            return True, text
        return True, json.loads(text)  # lists and dicts, as JSON
    except ValueError:
        return False, None


def same(stored: Any, want: Any) -> bool:
    """Typed equality: bools equal only bools; numbers compare by value; text is read in the stored type."""
    if isinstance(want, str) and not isinstance(stored, str):
        ok, want = read_as(want, stored)
        if not ok:
            return False
    if isinstance(stored, bool) != isinstance(want, bool):
        return False
    try:
        return bool(stored == want)
    except Exception:  # e.g. comparing numpy arrays; a filter should not crash on odd attrs
        return False


@dataclass(frozen=True)
class Condition:
    """One key's test: the value is any of ``values`` (or, with ``negate``, none of them).

    Text values are read in the type of the stored value they meet (see :func:`same`), which is
    what makes a command-line ``seed=2`` match the int a run stores.
    """

    values: tuple[Any, ...]
    negate: bool = False

    def test(self, stored: Any) -> bool:
        hit = any(same(c, w) for c in (stored, display_name(stored)) for w in self.values)
        return hit != self.negate

    def __str__(self) -> str:
        return ("!=" if self.negate else "=") + ",".join(map(str, self.values))


def matches(run_id: str, attrs: Mapping[str, Any], cond: Filter) -> bool:
    """Whether a run satisfies a filter.

    A callable gets the attrs (plus ``run_id``). A mapping must match on every key: a
    :class:`Condition` tests the found value, a list/tuple/set means "any of", a callable is a
    predicate on the found value, anything else is typed equality (against the value, or its
    ``name`` if the value is a config dict). A missing key never matches.
    """
    if cond is None:
        return True
    full = {**attrs, "run_id": run_id}
    if callable(cond):
        return bool(cond(full))
    for key, want in cond.items():
        found, value = lookup(full, key)
        if not found:
            return False
        if isinstance(want, Condition):
            ok = want.test(value)
        elif callable(want):
            ok = bool(want(value))
        elif isinstance(want, (list, tuple, set, frozenset)):
            ok = Condition(tuple(want)).test(value)
        else:
            ok = Condition((want,)).test(value)
        if not ok:
            return False
    return True


def parse_filter(spec: str | Filter) -> Filter:
    """A command-line filter -> a ``where`` mapping; a mapping, a callable or None passes through.

    Grammar: ``key=value[,value…]`` (any of), ``key!=value[,value…]`` (none of), several of them
    joined by ``;`` (all must hold). E.g. ``model_label!=mlp-widths300;seed=0,1``.
    """
    if not isinstance(spec, str):
        return spec
    if not spec.replace(";", "").strip():
        # "" or ";" from an unset shell variable would otherwise mean "no filter": a scorer with no held-out runs
        raise ConfigError(
            f"filter {spec!r} has no condition; write key=value (e.g. 'model_label=mlp-widths400x100'), or leave the "
            "option out for no filter"
        )
    out: dict[str, Condition] = {}
    for part in spec.split(";"):
        if not part.strip():
            continue
        negate = "!=" in part
        key, sep, text = part.partition("!=" if negate else "=")
        key = key.strip()
        values = tuple(v.strip() for v in text.split(","))
        if not sep or not key or not all(values) or text.lstrip().startswith("="):  # `key==x` is not key=x
            raise ConfigError(
                f"filter {spec!r}: {part.strip()!r} must look like key=value, key=a,b or key!=value, joined by ';' "
                "(e.g. 'model_label!=mlp-widths300;seed=2'); keys are run attributes, see `autosparse store info`"
            )
        if key in out:
            raise ConfigError(f"filter {spec!r} names {key!r} twice; list several values as {key}=a,b instead")
        out[key] = Condition(values, negate)
    return out


def unknown_keys(where: Filter, runs: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """The keys of a mapping filter that no run records, and the keys the runs do record.

    Why: a key a run lacks never matches (see the module doc), so ``model_lable=mlp`` selects
    nothing, and "matches no run" sends the user looking at the values when the key is the typo.
    """
    if not isinstance(where, Mapping) or not runs:
        return [], []
    missing = [k for k in where if not any(lookup(a, k)[0] for a in runs.values())]
    known: set[str] = set()
    for attrs in runs.values():
        known.update(k for k in attrs if k != "config")
        if isinstance(attrs.get("config"), Mapping):
            known.update(attrs["config"])
    return missing, sorted(known)


def unmatched_values(where: Filter, runs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``key=value`` for each listed value of a mapping filter's "any of" conditions that no run matches.

    Why: ``model_label=a,b`` matches the runs of ``a`` when ``b`` is a typo or not generated yet, so a
    holdout that meant to keep ``b``'s runs out of training said nothing (hunt).
    """
    if not isinstance(where, Mapping):
        return []
    out = []
    for key, want in where.items():
        if isinstance(want, Condition) and not want.negate:
            values: tuple[Any, ...] = want.values
        elif isinstance(want, (list, tuple, set, frozenset)):
            values = tuple(want)
        else:
            continue  # one value (its run count is the caller's check), a predicate, or "none of"
        for value in values if len(values) > 1 else ():
            one = {key: Condition((value,))}
            if not any(matches(run_id, attrs, one) for run_id, attrs in runs.items()):
                out.append(f"{key}={value}")
    return out


__all__ = [
    "Condition",
    "Filter",
    "Predicate",
    "display_name",
    "lookup",
    "matches",
    "parse_filter",
    "read_as",
    "same",
    "unknown_keys",
    "unmatched_values",
]
