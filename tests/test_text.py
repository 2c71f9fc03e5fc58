"""Name lists in messages (a few names, then how many more) and counts with their noun."""

from __future__ import annotations

from autosparse.core.text import count_of, markdown_literal, name_list


def test_a_long_list_shows_its_first_names_and_the_count_of_the_rest() -> None:
    assert name_list(["a", "b"]) == "a, b"
    assert name_list([f"l{i}" for i in range(80)]) == "l0, l1, l2, l3, l4, l5, l6, l7 and 72 more"
    assert name_list((n for n in "abcdef"), shown=5) == "a, b, c, d, e and 1 more"
    assert name_list([]) == ""


def test_a_count_takes_the_plural_unless_it_is_one() -> None:
    # a bench report's plot title read "1 epochs"
    assert [count_of(n, "epoch") for n in (1, 1.0, 6, 0.5)] == ["1 epoch", "1 epoch", "6 epochs", "0.5 epochs"]


def test_sparsity_headers_stay_as_they_were_and_never_collide_at_100() -> None:
    from autosparse.core.text import sparsity_percent

    assert [sparsity_percent(d) for d in (0.02, 0.01, 0.005, 0.0001, 1 / 3, 1.0)] == [
        "98%", "99%", "99.5%", "99.99%", "66.67%", "0%"
    ]  # fmt: skip
    # four significant digits read 100% for both: two columns of one name
    assert (sparsity_percent(0.00005), sparsity_percent(0.00002)) == ("99.995%", "99.998%")
    # a sparsity under 0.0001% is written out, not in exponent form ("1e-06%"; hunt)
    assert (sparsity_percent(0.99999999), sparsity_percent(0.999999)) == ("0.000001%", "0.0001%")


def test_column_headers_of_different_densities_differ() -> None:
    from autosparse.core.text import sparsity_headers

    assert sparsity_headers([0.1, 0.0001, 0.00012]) == ["90%", "99.99%", "99.988%"]
    assert sparsity_headers([0.0012, 0.00125]) == ["99.88%", "99.875%"]
    assert sparsity_headers([0.02, 0.01]) == ["98%", "99%"]  # as they were where four digits differ


def test_a_label_is_its_own_text_in_markdown() -> None:
    """``random_*uniform*`` rendered "uniform" in italics in a report's tables."""
    assert markdown_literal("random_*uniform*") == "random\\_\\*uniform\\*"
    assert markdown_literal("a\\b`c`~d~") == "a\\\\b\\`c\\`\\~d\\~" and markdown_literal("snip") == "snip"
