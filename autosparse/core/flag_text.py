"""How a flag's text becomes a value: booleans, lists, JSON objects and lists of rows.

Why a module of its own: :mod:`autosparse.core.config` turns dataclass fields into flags and
YAML; what one flag's text means is a rule of its own, shared by the flags and by YAML values
written as one string (``methods: snip,synflow``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import yaml

from autosparse.core.yaml_files import yaml_value


def parse_bool(text: str) -> bool:
    low = str(text).lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def float_text(text: str) -> float:
    """A float flag's converter: ``1%`` is said to be a percentage where a fraction belongs (argparse
    said only "invalid float value: '1%'"; hunt). Named ``float`` so argparse's own errors read as before."""
    stripped = str(text).strip()
    if stripped.endswith("%"):
        try:
            fraction = float(stripped[:-1]) / 100
        except ValueError:
            raise ValueError(text) from None
        raise argparse.ArgumentTypeError(f"{text!r} is a percentage; write the fraction, {fraction:g}")
    return float(stripped)


float_text.__name__ = "float"


def list_of(inner: Any) -> Callable[[str], tuple[Any, ...]]:
    """A list flag's converter, whose error says what an item must be (argparse names the function)."""
    kind = getattr(inner, "__name__", "value")

    def convert(text: str) -> tuple[Any, ...]:
        try:
            return tuple((float_text if inner is float else inner)(v) for v in split_list(text))
        except argparse.ArgumentTypeError:
            raise
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected a list of {kind} such as 1,2 — got {text!r}") from None

    return convert


def json_mapping(text: str) -> dict[str, Any]:
    """A ``JSON`` flag: one object, so a list or a bare word is an argparse error, not a traceback later."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}); write an object, e.g. '{{\"width\": 0.5}}'") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"width\": 0.5}}', got {text!r}")
    return value


def split_list(text: str) -> list[str]:
    """``"a,b c"`` -> ``["a", "b", "c"]``: how a list is written on the command line (or as one YAML string).

    Commas and spaces inside brackets or braces do not split, so one item may carry a list or a
    mapping: ``--hp input_shape=[1,28,28]`` is one hyperparameter, not three.
    """
    items, current, depth = [], [], 0
    for ch in str(text):
        depth += ch in "[{("
        depth -= ch in "]})"
        if depth <= 0 and (ch == "," or ch.isspace()):
            if current:
                items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        items.append("".join(current))
    return items


def parse_items(text: str) -> tuple[Any, ...]:
    """A flag for a list of dataclasses: names (``snip,synflow``) or a list or mapping in YAML flow
    syntax (``[{method: synflow, hparams: {rounds: 10}}]``) or JSON (``[{"method": "snip"}]``), or
    names and mappings mixed (``random,{method: snip, label: s}``: a stranger's first try, which was
    read as a method named ``{method: snip, …}``; helper).

    The items stay raw (strings or mappings) so they are read by :func:`from_dict` exactly like
    the same list in YAML: one rule for both, and a line of a config file can be pasted as the
    flag. JSON is read first: PyYAML reads YAML 1.1, where JSON's ``1e3`` would be a string.
    """
    first = str(text).lstrip()[:1]
    if first in ("[", "{"):
        try:
            value = _flow_value(text)
        except argparse.ArgumentTypeError:
            # a mapping followed by more items ('{method: snip}, random'); one mapping stays one value, whatever
            # brackets its quoted strings hold (split_list does not read quotes; review)
            if first == "[" or len(split_list(text)) == 1:
                raise
        else:
            return tuple(value) if isinstance(value, list) else (value,)
    return tuple(_flow_value(item) if item[:1] == "{" else item for item in split_list(text))


def _flow_value(text: str) -> Any:
    """One value written in JSON or YAML flow syntax."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return yaml_value(text)
        except yaml.YAMLError as exc:  # its own text spans five lines, drawing the input twice
            mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None) or type(exc).__name__
            where = f" at column {mark.column + 1}" if mark is not None else ""
            raise argparse.ArgumentTypeError(f"not valid YAML or JSON ({problem}{where})") from None
