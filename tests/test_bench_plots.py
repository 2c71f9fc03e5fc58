"""Bench figures: every row told apart, the legend off the data, diverged points as the table marks them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autosparse.bench import plots
from autosparse.bench.plots import Series, plot_accuracy, plot_layer_densities

DENSITIES = [0.1, 0.05, 0.02]


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures drawn, kept as they are saved."""
    kept: list = []
    real = plots._save

    def keep(fig, path):
        kept.append(fig)
        return real(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


def _style(line) -> tuple:
    return line.get_color(), line.get_marker(), str(line.get_linestyle()), str(line._dash_pattern)


def _rows(n: int, diverged_at: int | None = None) -> list[Series]:
    return [
        Series(f"m{i}", DENSITIES, [0.8 - 0.01 * i] * 3, [0.01] * 3, diverged=[k == diverged_at for k in range(3)])
        for i in range(n)
    ]


def test_every_accuracy_row_has_its_own_style_and_many_rows_put_the_legend_beside_the_axes(
    tmp_path: Path, figures: list
) -> None:
    """Past 10 rows the colours repeated with one marker for all: rows 0 and 10 were drawn alike, and the
    legend ("best") sat on the data."""
    plot_accuracy(tmp_path / "a.png", _rows(14), DENSITIES, title="t")
    (ax,) = figures[-1].axes
    lines = [c.lines[0] for c in ax.containers]  # each row's data line (its error bars are the others)
    assert len(lines) == 14 and len({_style(line) for line in lines}) == 14
    legend = ax.get_legend()
    anchor = legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted())
    assert anchor.x0 >= 1.0  # to the right of the axes
    assert [t.get_text() for t in legend.get_texts()] == [f"m{i}" for i in range(14)]
    # a few rows keep the legend inside
    plot_accuracy(tmp_path / "b.png", _rows(3), DENSITIES, title="t")
    legend = figures[-1].axes[0].get_legend()
    assert legend.get_bbox_to_anchor().transformed(figures[-1].axes[0].transAxes.inverted()).x0 < 1.0


def test_row_styles_differ_for_any_number_of_rows() -> None:
    styles = [plots.row_style(i) for i in range(1000)]
    assert len({(s["color"], s["marker"], str(s["linestyle"])) for s in styles}) == 1000


def test_a_diverged_point_is_hollow_and_not_joined_into_its_line(tmp_path: Path, figures: list) -> None:
    """The table marks a diverged cell ‡ and leaves it out of bold and the verdict; the plot drew it as an
    ordinary point of the line."""
    plot_accuracy(tmp_path / "a.png", _rows(2, diverged_at=1), DENSITIES, title="t")
    (ax,) = figures[-1].axes
    data = [c.lines[0] for c in ax.containers]  # each row's data line (its error bars are the others)
    joined = [line for line in data if len(line.get_xdata()) == 3]
    assert len(joined) == 2 and all(np.isnan(np.asarray(line.get_ydata(), float)[1]) for line in joined)
    hollow = [line for line in data if list(line.get_xdata()) == [0.05]]
    assert len(hollow) == 2 and all(line.get_markerfacecolor() == "white" for line in hollow)
    assert all(line.get_linestyle() == "None" for line in hollow)
    assert any("diverged" in t.get_text() for t in ax.get_legend().get_texts())


def test_a_point_over_fewer_seeds_than_the_grids_says_how_many(tmp_path: Path, figures: list) -> None:
    """A one-seed point drew like a point of zero spread, under a title of the grid's seeds (helper)."""
    rows = _rows(2)
    rows[0].partial = [0, 1, 0]
    plot_accuracy(tmp_path / "a.png", rows, DENSITIES, title="t")
    (ax,) = figures[-1].axes
    notes = [t for t in ax.texts if t.get_text().startswith("n=")]
    assert [(t.get_text(), t.xy) for t in notes] == [("n=1", (0.05, pytest.approx(80.0)))]


def test_layer_panels_give_every_method_its_own_style_in_the_grids_order(tmp_path: Path, figures: list) -> None:
    layers = ["a", "b"]
    rows = [f"m{i}" for i in range(12)]
    per_density = {d: {m: {"a": d, "b": d} for m in reversed(rows)} for d in DENSITIES}
    plot_layer_densities(tmp_path / "l.png", layers, per_density, title="t", rows=rows)
    lines = [line for line in figures[-1].axes[0].get_lines() if line.get_label() in rows]
    assert len({_style(line) for line in lines}) == 12
    assert [t.get_text() for lg in figures[-1].legends for t in lg.get_texts()] == rows
