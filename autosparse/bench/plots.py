"""Bench figures (PNG, matplotlib's Agg canvas).

Figures are drawn on a bare :class:`~matplotlib.figure.Figure` with an Agg canvas instead of
through ``pyplot``, so making them never touches the global backend or figure registry of a
program (or notebook) that imports autosparse.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosparse.core.folders import private_tmp
from autosparse.core.text import sparsity_percent

_FLOOR = 1e-5  # lowest layer density a panel shows by default (log axis)


@dataclass
class Series:
    """One method's line: means and stds (fractions) at its densities."""

    label: str
    densities: list[float]
    means: list[float]
    stds: list[float]
    reference: bool = False
    diverged: list[bool] = field(default_factory=list)  # per density: some seed's training diverged (‡)
    partial: list[int] = field(default_factory=list)  # per density: seeds finished where fewer than the grid's, else 0


#: markers cycled against the 10 colours; 9, coprime with 10, so the first 90 rows differ in both
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">")
_LINESTYLES: tuple[Any, ...] = ("-", "--", ":", "-.")
_POINTS: dict[str, Any] = {"capsize": 3, "linewidth": 1.4, "markersize": 5}
#: more rows than this put the legend beside the axes: "best" found no free corner and sat on the data
_LEGEND_INSIDE = 6


def row_style(i: int) -> dict[str, Any]:
    """The colour, marker and line style of a figure's ``i``-th (non-reference) row, different for every ``i``.

    Why: past 10 rows the colour cycle repeated with one marker for all, so rows 0 and 10 were drawn alike.
    The colour is ``i`` mod 10 and the marker ``i`` mod 9, which together tell apart ``i`` mod 90; the line
    style counts the blocks of 90 (solid, dashed, dotted, dash-dot, then ever longer dashes).
    """
    from matplotlib import rcParams  # imported where drawn, as _figure does: the package stays light

    cycle = rcParams["axes.prop_cycle"].by_key()["color"]
    colours = cycle if len(cycle) >= 10 else [f"C{k}" for k in range(10)]
    block = i // (10 * len(_MARKERS))
    style = _LINESTYLES[block] if block < len(_LINESTYLES) else (0, (block, 1.5, 1, 1.5))
    return {"color": colours[i % 10], "marker": _MARKERS[i % len(_MARKERS)], "linestyle": style}


#: the reference row (IMP): black and dashed, in no other row's style
REFERENCE_STYLE: dict[str, Any] = {"color": "black", "linestyle": "--", "marker": "s", "zorder": 3}


def _legend(ax: Any, entries: int) -> None:
    """Inside the axes for a few entries; to the right of them for more (the saved image takes it in).
    The rows first, in their order, then the lines that explain them (dense, diverged)."""
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda k: not hasattr(handles[k], "lines"))  # errorbar containers
    handles, labels = [handles[k] for k in order], [labels[k] for k in order]
    if entries <= _LEGEND_INSIDE:
        ax.legend(handles, labels, fontsize=8, loc="best")
        return
    ncol = 1 if entries <= 24 else 2
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, ncol=ncol)


def _figure(width: float, height: float):  # -> matplotlib.figure.Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_accuracy(
    path: str | Path,
    series: Sequence[Series],
    densities: Sequence[float],
    *,
    title: str,
    dense: tuple[float, float] | None = None,
) -> Path:
    """Accuracy vs density on a log axis (sparsity grows to the right), error bars = std over seeds.

    A log density axis is what separates methods: on a linear sparsity axis 99%, 99.5% and 99.9%
    crowd into the last few pixels, exactly where pruning methods differ. A point where some seed's
    training diverged (the table's ‡, left out of its bold and the verdict) is drawn hollow and not
    joined into its row's line: its mean measures the divergence, not the mask.
    """
    fig = _figure(7.0, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    entries, any_diverged, i = 0, False, 0
    for s in series:
        if not s.densities:
            continue
        if s.reference:
            style = dict(REFERENCE_STYLE)
        else:
            style, i = row_style(i), i + 1
        label = s.label + (" (reference)" if s.reference else "")
        bad = [bool(b) for b in s.diverged] + [False] * (len(s.densities) - len(s.diverged))
        # the line runs through the other points and breaks at a diverged one (NaN): not joined across it
        ys = [math.nan if b else 100 * m for m, b in zip(s.means, bad)]
        if not all(bad):
            ax.errorbar(s.densities, ys, yerr=[100 * v for v in s.stds], label=label, **_POINTS, **style)
        lost = [k for k, b in enumerate(bad) if b]
        if lost:
            ax.errorbar(
                [s.densities[k] for k in lost],
                [100 * s.means[k] for k in lost],
                yerr=[100 * s.stds[k] for k in lost],
                label=label if all(bad) else None,
                **{**_POINTS, **style, "linestyle": "none", "markerfacecolor": "white", "markersize": 7},
            )
            any_diverged = True
        for x, m, n in zip(s.densities, s.means, s.partial):
            if n:  # one seed's point drew like a point of zero spread, under a title of the grid's seeds (helper)
                ax.annotate(f"n={n}", (x, 100 * m), xytext=(4, 4), textcoords="offset points", fontsize=7)
        entries += 1
    if any_diverged:  # one entry, last, says what a hollow point is
        ax.plot(
            [],
            [],
            linestyle="none",
            marker="o",
            color="grey",
            markerfacecolor="white",
            label="‡ diverged (hollow, not joined)",
        )
        entries += 1
    if dense is not None:
        ax.axhline(100 * dense[0], color="grey", linestyle=":", linewidth=1, label=f"dense {100 * dense[0]:.1f}%")
    ax.set_xscale("log")
    ticks = sorted(set(densities))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{sparsity_percent(d)}\n{d:g}" for d in ticks], fontsize=8)
    ax.minorticks_off()
    if ticks:
        lo, hi = min(ticks), max(ticks)
        ax.set_xlim(hi * 1.25, lo / 1.25)  # inverted: denser on the left, sparser on the right
    ax.set_xlabel("sparsity (top) / density (bottom), log scale")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(_wrapped(title, fig), fontsize=10)
    ax.grid(True, alpha=0.3)
    _legend(ax, entries + (dense is not None))
    fig.tight_layout()
    return _save(fig, path)


def plot_layer_densities(
    path: str | Path,
    layers: Sequence[str],
    per_density: Mapping[float, Mapping[str, Mapping[str, float]]],
    *,
    title: str,
    reference: str | None = None,
    rows: Sequence[str] = (),
) -> Path:
    """Per-layer density (mean over seeds) of every method, one panel per bench density.

    ``rows`` (the grid's row order) gives each method the style it has in the accuracy figure.

    Layer allocation is half of what makes a mask work at high sparsity (magnitude's collapse of
    the first layer, SynFlow's balance), so it is shown next to accuracy. Empty layers are drawn
    at the bottom of the log axis with an ``x``.
    """
    densities = sorted(per_density, reverse=True)
    n = max(1, len(densities))
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig = _figure(3.6 * ncols, 3.0 * nrows + 0.6)
    x = list(range(len(layers)))
    positive = [v for d in densities for dens in per_density[d].values() for v in dens.values() if v > 0]
    floor = min([_FLOOR * 1e3, *positive, *densities]) / 4  # where an empty layer is drawn
    # one colour per method across panels, and one legend of every method: each panel restarted the
    # cycle and the legend was the first panel's, so a method missing there shifted the colours after it
    drawn = dict.fromkeys(label for d in densities for label in per_density[d])
    methods = [m for m in rows if m in drawn] + [m for m in drawn if m not in rows]
    # a marker and line style as well as a colour: past 10 methods the colours repeated (row_style)
    styles = {m: row_style(i) for i, m in enumerate(m for m in methods if m != reference)}
    if reference is not None:
        styles[reference] = {k: v for k, v in REFERENCE_STYLE.items() if k != "zorder"}
    legend: dict[str, Any] = {}
    for i, d in enumerate(densities):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for label, dens in per_density[d].items():
            ys = [max(floor, dens.get(name, 0.0)) for name in layers]
            (line,) = ax.plot(x, ys, markersize=4, linewidth=1.1, label=label, **styles[label])
            legend.setdefault(label, line)
            empty = [xi for xi, name in zip(x, layers) if dens.get(name, 0.0) <= 0.0]
            if empty:
                ax.plot(empty, [floor] * len(empty), "x", color=line.get_color(), markersize=7)
        ax.axhline(d, color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_ylim(floor / 2, 1.5)
        ax.set_title(f"density {d:g} (sparsity {sparsity_percent(d)})", fontsize=9)
        ax.set_xticks(x)
        if len(layers) <= 12:
            ax.set_xticklabels([_short(name) for name in layers], rotation=60, ha="right", fontsize=7)
        else:
            ax.set_xticklabels([str(xi) if xi % max(1, len(layers) // 10) == 0 else "" for xi in x], fontsize=7)
        ax.grid(True, alpha=0.3)
        if i % ncols == 0:
            ax.set_ylabel("layer density")
    labels = [m for m in methods if m in legend]
    handles = [legend[m] for m in labels]
    if handles:
        # as many columns as the figure is wide: one panel (one density) is 3.6 in, and six columns cut
        # off the first and last methods; the legend hangs below the panels and the saved image takes it in
        per_entry = 0.075 * max(len(label) for label in labels) + 0.6  # inches at fontsize 8, marker included
        ncol = max(1, min(len(labels), int(fig.get_figwidth() // per_entry)))
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize=8)
    fig.suptitle(_wrapped(title, fig), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, path)


def plot_speed(
    path: str | Path,
    series: Mapping[str, Sequence[tuple[int, float]]],
    *,
    title: str,
    reference: str | None = None,
) -> Path:
    """Time to mask vs number of prunable weights, log–log, one line per method."""
    fig = _figure(7.0, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    for label, points in series.items():
        pts = sorted(p for p in points if p[1] is not None and p[1] > 0)
        if not pts:
            continue
        style = {"color": "black", "linestyle": "--"} if label == reference else {}
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=4, label=label, **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("prunable weights")
    ax.set_ylabel("time to mask (s)")
    ax.set_title(_wrapped(title, fig), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _wrapped(title: str, fig: Any) -> str:
    """``title`` in lines that fit the figure's width (a long model name ran off both sides)."""
    return textwrap.fill(title, width=max(20, int(fig.get_figwidth() * 13)))


def _short(name: str) -> str:
    return name[: -len(".weight")] if name.endswith(".weight") else name


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_tmp(path, ".tmp.png")
    try:
        fig.savefig(tmp, format="png", bbox_inches="tight")  # a legend below the panels is part of the picture
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
