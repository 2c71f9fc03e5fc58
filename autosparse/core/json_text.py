"""JSON that every reader takes: NaN and infinities written as null.

Python's ``json`` writes a diverged run's loss as a bare ``NaN``, which strict readers (JavaScript,
``jq``, a ``parse_constant`` that refuses it) reject, so one NaN made a whole results file unreadable
outside Python. Every record a run writes for others to read goes through :func:`dumps`.
"""

from __future__ import annotations

import json
import math
from typing import Any


def strict(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth of dicts, lists and tuples, as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` of :func:`strict` ``value``; a NaN it still met (in an object ``default``
    turned into floats) is an error here, not a file others cannot read."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)
