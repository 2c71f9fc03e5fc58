"""Records others read: NaN and infinities as null, at any depth."""

from __future__ import annotations

import json
import math

import pytest

from autosparse.core import json_text


def test_non_finite_floats_are_null_at_any_depth_and_the_rest_is_kept() -> None:
    record = {"loss": math.nan, "history": [{"loss": math.inf}, {"loss": 1.5}], "pair": (-math.inf, 2), "n": 3}
    text = json_text.dumps(record)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "loss": None,
        "history": [{"loss": None}, {"loss": 1.5}],
        "pair": [None, 2],
        "n": 3,
    }


def test_a_nan_the_default_hook_makes_is_an_error_not_a_file() -> None:
    with pytest.raises(ValueError):
        json_text.dumps({"x": object()}, default=lambda _: math.nan)
