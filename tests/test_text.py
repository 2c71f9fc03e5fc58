"""Name lists in messages: a few names, then how many more."""

from __future__ import annotations

from autosparse.core.text import name_list


def test_a_long_list_shows_its_first_names_and_the_count_of_the_rest() -> None:
    assert name_list(["a", "b"]) == "a, b"
    assert name_list([f"l{i}" for i in range(80)]) == "l0, l1, l2, l3, l4, l5, l6, l7 and 72 more"
    assert name_list((n for n in "abcdef"), shown=5) == "a, b, c, d, e and 1 more"
    assert name_list([]) == ""
