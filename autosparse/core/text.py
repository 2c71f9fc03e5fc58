"""Lists of names in one line of a message: the first few, then how many more.

Why: a warning about 80 of a model's layers that names all 80 buries what it says; the first
names show which part of the model it is about, the count says how much of it.
"""

from __future__ import annotations

from collections.abc import Iterable


def name_list(names: Iterable[str], shown: int = 8) -> str:
    """``a, b, c`` — or ``a, b, … and 77 more`` past ``shown`` names."""
    names = list(names)
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def count_of(n: float, noun: str) -> str:
    """``1 epoch``, ``6 epochs``, ``0.5 epochs``, ``1 seed``: a number with its noun, plural unless 1."""
    return f"{n:g} {noun}{'' if n == 1 else 's'}"


def sparsity_percent(density: float, digits: int = 4) -> str:
    """The sparsity of ``density`` in percent, as every table and plot heads it: four significant digits
    (``99%``, ``99.5%``, ``99.99%``), more where four would round it off (99.995% and 99.998% both read
    ``100%``, two columns of one name)."""
    sparsity = 100 * (1 - float(density))
    text = f"{sparsity:.{digits}g}"
    while float(text) == 100 and sparsity < 100 and digits < 12:
        digits += 1
        text = f"{sparsity:.{digits}g}"
    if "e" in text:  # a density of 0.99999999 read "1e-06%": the same digits, written out
        text = f"{float(text):.12f}".rstrip("0").rstrip(".")
    return f"{text}%"


def sparsity_headers(densities: Iterable[float]) -> list[str]:
    """:func:`sparsity_percent` of each density, with as many more digits as it takes for different
    densities to read differently (0.0001 and 0.00012 both read 99.99%: two columns of one name)."""
    densities = [float(d) for d in densities]
    heads = [sparsity_percent(d) for d in densities]
    for digits in range(5, 13):
        if len(set(heads)) == len(set(densities)):
            break
        heads = [sparsity_percent(d, digits) for d in densities]
    return heads


#: what markdown reads as emphasis, code, strikethrough or an escape
_MARKUP = str.maketrans({c: "\\" + c for c in "\\*_`~"})


def markdown_literal(label: str) -> str:
    """``label`` as its own text in markdown: a bench row ``random_*uniform*`` rendered "uniform" in
    italics in a report's tables (``|``, which splits a table's row, is the table's to escape)."""
    return label.translate(_MARKUP)


__all__ = ["count_of", "markdown_literal", "name_list", "sparsity_headers", "sparsity_percent"]
