"""User errors name their fix: the suggestion an unknown name gets."""

from __future__ import annotations

import pytest

from autosparse.core.errors import UnknownNameError

METHODS = ["random", "random_erk", "snip", "synflow", "iter_snip", "npb"]


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("SNIP", "snip"),  # case: names are case-sensitive, but point at the one meant
        ("synflw", "synflow"),  # a typo
        ("erk", "random_erk"),  # the paper's short name for one longer name
    ],
)
def test_an_unknown_name_suggests_the_one_meant(name: str, meant: str) -> None:
    with pytest.raises(UnknownNameError, match=rf"unknown pruning method '{name}' \(did you mean '{meant}'\?\)"):
        raise UnknownNameError("pruning method", name, METHODS)


def test_a_short_name_in_several_names_suggests_none() -> None:
    # "erk" is a part of both: guessing one would send the user to a method they did not mean
    with pytest.raises(UnknownNameError) as info:
        raise UnknownNameError("pruning method", "erk", ["random_erk_uniform", "scaled_erk_global"])
    assert "did you mean" not in str(info.value)
    with pytest.raises(UnknownNameError) as info:
        raise UnknownNameError("pruning method", "zzz", METHODS)
    assert "did you mean" not in str(info.value)
