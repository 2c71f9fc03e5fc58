"""The question every bench asks of a learned method: does it beat the best classic one, and how
much of the way to IMP does it get?

A learned pruner (``autos``) is worth using at a density only if its masks train better than
those of *every* classic pruning-at-initialisation method there, and its purpose is to close the
gap to IMP, which finds its masks by training many times. The bench's accuracy table shows the
numbers; this module states the verdict the same way every time — the best classic method per
density (the highest mean over the seeds it finished, as the report's footnote says; the table's bold where
every row finished every seed), the margin on the seeds it shares with the learned row, on how many of them the learned method was
above it (paired by seed: same initial weights, same training order), and its share of the gap to IMP
— so a report is not read by eye, and a loss is printed as plainly as a win. Where the best row lacks
seeds the learned row has (its cells failed or are still to run), the verdict says so: its margin is
then on fewer seeds than the learned row's mean; seeds the learned row lacks are said too. IMP's share of
the gap is measured on the margin's own seeds only: where IMP lacks one, its mean is shown with the seeds it
lacks and no share (a gap over other seeds than the margin's flipped a loss into "44% of the gap").

A row whose training diverged at a density (any seed: its cell's ``diverged``) trained towards
chance, which says nothing about its mask: as in the accuracy table, such a classic row is not a
candidate for the best one there, and a learned row that diverged gets no verdict, only a line
that says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autosparse.bench.config import BenchConfig
from autosparse.core.text import markdown_literal, sparsity_percent

#: Registered methods that learn their masks from IRP sources (the contestants).
LEARNED_METHODS = ("autos",)


@dataclass(frozen=True)
class Contest:
    """One learned row at one density against the best classic row there (accuracies in %)."""

    learned: str
    density: float
    mean: float  # over the seeds both rows finished (paired), like best_mean
    best: str
    best_mean: float
    seeds_above: int
    seeds_paired: int
    imp_mean: float | None = None  # over the same seeds where IMP finished them all, else all of IMP's
    imp: str = "imp"
    classic_rows: int = 0  # classic rows of the grid; fewer with cells at this density are said in the table
    classic_compared: int = 0
    classic_diverged: int = 0  # classic rows left out here because their training diverged
    classic_absent: int = 0  # classic rows with no cell at this density (not "sharing none of its seeds")
    best_lacks: tuple[int, ...] = ()  # seeds the learned row finished and the best classic row did not
    learned_lacks: tuple[int, ...] = ()  # seeds of the grid the learned row has not finished here
    imp_lacks: tuple[int, ...] = ()  # seeds of the margin IMP has not finished: no share of the gap
    diverged: bool = False  # the learned row's training diverged here: no verdict
    imp_diverged: bool = False  # IMP's training diverged here: no gap to measure against it

    @property
    def margin(self) -> float:
        return self.mean - self.best_mean

    @property
    def shown_margin(self) -> float:
        """The margin as printed (0.1 points): a win, level or a loss is said by this, so "-0.0" never
        stands next to "below it" (and 0.0 is never signed)."""
        return round(self.margin, 1) + 0.0  # + 0.0: -0.0 becomes 0.0

    @property
    def gap_share(self) -> float | None:
        """Share of the gap from the best classic method to IMP that the learned one closes; None
        when IMP is not above the best classic method (then there is no gap to close) or the learned
        row diverged (then its accuracy is no measure of its mask)."""
        if self.diverged or self.imp_lacks or self.imp_mean is None or self.imp_mean <= self.best_mean:
            return None
        return self.margin / (self.imp_mean - self.best_mean)


def _accuracies(
    records: Sequence[dict[str, Any]], model: str, dataset: str
) -> dict[tuple[str, float], dict[int, float]]:
    out: dict[tuple[str, float], dict[int, float]] = {}
    for r in records:
        if r["model"] == model and r["dataset"] == dataset and r.get("test_accuracy") is not None:
            out.setdefault((r["label"], float(r["density"])), {})[int(r["seed"])] = 100 * float(r["test_accuracy"])
    return out


def _diverged(records: Sequence[dict[str, Any]], model: str, dataset: str) -> set[tuple[str, float]]:
    """(label, density) pairs where some seed's training diverged: the rows the accuracy table marks ‡."""
    return {
        (r["label"], float(r["density"]))
        for r in records
        if r["model"] == model and r["dataset"] == dataset and r.get("diverged")
    }


def contests(config: BenchConfig, records: Sequence[dict[str, Any]], model: str, dataset: str) -> list[Contest]:
    """Every learned row of ``config`` at every density where it and a classic row that did not diverge have cells."""
    acc = _accuracies(records, model, dataset)
    diverged = _diverged(records, model, dataset)
    learned = [m.title() for m in config.methods if m.method in LEARNED_METHODS]
    classic = [m.title() for m in config.methods if m.method not in LEARNED_METHODS and not m.is_imp]
    imps = [m.title() for m in config.methods if m.is_imp]
    # the row the config names; else the lottery-ticket pace (imp_lth: at most 20% a round) where a grid has both
    imp = config.gap_to or next((t for t in imps if "lth" in t), imps[0] if imps else None)
    out = []
    for d in config.sorted_densities():
        present = [c for c in classic if acc.get((c, d)) and (c, d) not in diverged]
        if not present:
            continue
        # a diverged IMP trained towards chance: a gap to it would measure the divergence (helper)
        imp_diverged = bool(imp) and (imp, d) in diverged
        imp_cells = acc.get((imp, d)) if imp and not imp_diverged else None
        for name in learned:
            mine = acc.get((name, d)) or {}
            # the best classic row as the footnote and the table's bold say: the highest mean over the seeds it
            # finished (the first in the grid's order on a tie), among the rows that share a seed with this one —
            # a margin between different seeds would not be one. It was the smallest margin on shared seeds,
            # which named a row missing seeds (one whose other cells failed) for its one weak seed.
            pairs = {c: sorted(set(mine) & set(acc[(c, d)])) for c in present}
            rivals = [c for c in present if pairs[c]]
            if not rivals:
                continue
            best = max(rivals, key=lambda c, d=d: statistics.fmean(acc[(c, d)].values()))
            paired = pairs[best]
            theirs = acc[(best, d)]
            imp_lacks = tuple(s for s in paired if s not in (imp_cells or {})) if imp_cells else ()
            imp_seeds = list(imp_cells or ()) if imp_lacks else paired
            out.append(
                Contest(
                    learned=name,
                    density=d,
                    mean=statistics.fmean(mine[s] for s in paired),  # type: ignore[index]
                    best=best,
                    best_mean=statistics.fmean(theirs[s] for s in paired),
                    seeds_above=sum(mine[s] > theirs[s] for s in paired),  # type: ignore[index]
                    seeds_paired=len(paired),
                    imp_mean=statistics.fmean(imp_cells[s] for s in imp_seeds) if imp_cells else None,
                    imp=imp or "imp",
                    classic_rows=len(classic),
                    classic_compared=len(rivals),
                    classic_diverged=sum((c, d) in diverged for c in classic if acc.get((c, d))),
                    classic_absent=sum(not acc.get((c, d)) for c in classic),
                    best_lacks=tuple(sorted(set(mine) - set(theirs))),
                    learned_lacks=tuple(s for s in config.seeds if s not in mine),
                    imp_lacks=imp_lacks,
                    diverged=(name, d) in diverged,
                    imp_diverged=imp_diverged,
                )
            )
    return out


def no_verdicts(
    config: BenchConfig, records: Sequence[dict[str, Any]], model: str, dataset: str, rows: Sequence[Contest]
) -> list[str]:
    """A line for each learned row and density of the grid that :func:`contests` gave no verdict, saying
    why: a density missing from the verdict table was read as not run (helper)."""
    acc, diverged = _accuracies(records, model, dataset), _diverged(records, model, dataset)
    classic = [m.title() for m in config.methods if m.method not in LEARNED_METHODS and not m.is_imp]
    if not classic:  # a grid of learned rows only (a screen of scorers) asks no verdict (review)
        return []
    judged = {(c.learned, c.density) for c in rows}
    out = []
    for d in config.sorted_densities():
        cells = [c for c in classic if acc.get((c, d))]
        for name in [m.title() for m in config.methods if m.method in LEARNED_METHODS]:
            if (name, d) in judged:
                continue
            if not acc.get((name, d)):
                why = f"{_cell(name)} has no finished cell here"
            elif not cells:
                why = "no classic row has a finished cell here"
            elif all((c, d) in diverged for c in cells):
                why = "every classic row's training diverged here ‡"
            else:
                why = f"no classic row that did not diverge shares a seed with {_cell(name)}"
            out.append(f"No verdict for {_cell(name)} at {sparsity_percent(d)} sparsity: {why}.")
    return out


def contest_table(rows: Sequence[Contest]) -> str:
    """Markdown: one line per learned row and density (empty string when there is nothing to compare)."""
    if not rows:
        return ""
    lines = [
        "| learned | sparsity | best classic | margin (points) | seeds above it | IMP | share of the gap to IMP |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for c in rows:
        share, shown = c.gap_share, c.shown_margin
        margin, above = f"{shown:+.1f}" if shown else "0.0", f"{c.seeds_above} of {c.seeds_paired}"
        imp = _cell(c.imp)
        imp_text = f"{imp} ‡" if c.imp_diverged else "–" if c.imp_mean is None else f"{imp} {c.imp_mean:.1f}"
        if c.imp_lacks and not c.imp_diverged:
            imp_text += f" ({_lacks(c.imp_lacks)})"
        if c.diverged:  # trained towards chance: its margin would measure the divergence, not the mask
            margin, above, share_text = "–", "–", "none: its training diverged ‡"
        elif c.imp_diverged:
            share_text = "none: IMP's training diverged ‡"
        elif c.imp_mean is None:
            share_text = "–"
        elif c.imp_lacks:
            share_text = f"none: IMP {_lacks(c.imp_lacks)} of the margin's"
        elif share is None:
            share_text = "none: IMP is not above it"
        elif shown == 0:
            share_text = "none: level with it"
        elif shown < 0:
            share_text = "none: below it"
        elif c.mean > c.imp_mean:  # past the reference, the ratio only says how small the gap was (1950%)
            share_text = f"all: {c.mean - c.imp_mean:+.1f} over IMP"
        else:
            share_text = f"{100 * share:.0f}%"
        learned = (
            _cell(c.learned)
            + (" ‡" if c.diverged else "")
            + (f" ({_lacks(c.learned_lacks)})" if c.learned_lacks else "")
        )
        best = _cell(c.best)
        lines.append(
            f"| {learned} | {sparsity_percent(c.density)} | {best} {c.best_mean:.1f}{_notes(c)} | {margin} | "
            f"{above} | {imp_text} | {share_text} |"
        )
    return "\n".join(lines)


def _cell(label: str) -> str:
    """A row label as its own text in a table cell: no emphasis, and a "|" that does not split the row."""
    return markdown_literal(label).replace("|", "\\|")


def _lacks(seeds: Sequence[int]) -> str:
    return f"lacks seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _notes(c: Contest) -> str:
    """What the best classic entry needs said: seeds the named row lacks (its margin is on fewer seeds than
    the learned row has), and why fewer classic rows than the grid's were compared — diverged, no cell at
    this sparsity, or no seed in common (a row without cells here was counted as sharing none)."""
    notes = []
    if c.best_lacks:
        notes.append(f"{_lacks(c.best_lacks)} of {_cell(c.learned)}'s")
    unshared = c.classic_rows - c.classic_compared - c.classic_diverged - c.classic_absent
    why = [f"{c.classic_diverged} diverged"] if c.classic_diverged else []
    why += (
        [f"{c.classic_absent} {'has' if c.classic_absent == 1 else 'have'} no cells here"] if c.classic_absent else []
    )
    why += [f"{unshared} share{'s' if unshared == 1 else ''} none of its seeds"] if unshared > 0 else []
    if why:
        notes.append(f"{c.classic_compared} of {c.classic_rows} classic rows compared: {', '.join(why)}")
    return f" ({'; '.join(notes)})" if notes else ""


__all__ = ["LEARNED_METHODS", "Contest", "contest_table", "contests", "no_verdicts"]
