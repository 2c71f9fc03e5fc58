"""The demo's table with what it is: the setting above it, a one-line reading and the plot below it.

Why: a bare table on an unnamed dataset lets chance-level numbers pass for a result. Stating the
dataset, the held-out model and its size, the recipe and the dense accuracy next to the rows
makes a broken setting visible at a glance, and the reading line says what the rows mean for
``autos`` without the reader doing the subtraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autosparse.bench.config import BenchConfig
from autosparse.bench.contest import contests
from autosparse.bench.report import BenchReport, accuracy_table, dense_accuracy, format_stat
from autosparse.core.layers import count_prunable
from autosparse.core.text import count_of, sparsity_percent
from autosparse.data import dataset_info
from autosparse.task import ModelSpec

AUTOS_LABEL = "autos"  # the demo's own scorer's row
SHIPPED_LABEL = "autos (shipped)"


@dataclass(frozen=True)
class Sizes:
    """How big the held-out model is: what "99% sparsity" leaves of it depends on this."""

    parameters: int
    prunable: int


def model_sizes(model: ModelSpec, dataset: str) -> Sizes:
    net = model.build(dataset_info(dataset), seed=0)
    return Sizes(sum(p.numel() for p in net.parameters()), count_prunable(net))


def reading(records: Sequence[dict[str, Any]], bench: BenchConfig, autos: str = AUTOS_LABEL) -> str:
    """``autos vs best baseline: +0.4 points at 98% (synflow 83.0), …``: per column, the bench's
    verdict (:mod:`autosparse.bench.contest`) in the printed (rounded) means, so it agrees with the table."""
    model, dataset = bench.models[0].label(), bench.dataset_names()[0]
    verdicts = {c.density: c for c in contests(bench, records, model, dataset) if c.learned == autos}
    parts = []
    for d in bench.sorted_densities():
        c = verdicts.get(d)
        if c is None:
            parts.append(f"– at {sparsity_percent(d)}")
            continue
        if c.diverged:  # no verdict, as in the bench's (its margin would measure the divergence)
            parts.append(f"– at {sparsity_percent(d)} ({autos} diverged)")
            continue
        diff = round(c.mean, 1) - round(c.best_mean, 1)
        parts.append(f"{diff:+.1f} at {sparsity_percent(d)} ({c.best} {c.best_mean:.1f})")
    if parts and parts[0][0] in "+-":
        parts[0] = parts[0].replace(" at ", " points at ", 1)
    return f"{autos} vs best baseline: " + ", ".join(parts)


def describe(
    bench: BenchConfig,
    report: BenchReport,
    *,
    source: str,
    n_sources: int,
    shipped: str,
    sizes: Sizes,
) -> str:
    """The setting, the table, the reading and where the plot and report are."""
    model, dataset = bench.models[0].label(), bench.dataset_names()[0]
    info = dataset_info(dataset)
    n_train = bench.n_train if bench.n_train is not None else info.n_train
    n_test = bench.n_test if bench.n_test is not None else info.n_test
    t = bench.train
    seeds = ", ".join(map(str, bench.seeds))
    rows = f"{AUTOS_LABEL} = the demo's scorer (trained on the {n_sources} source runs of step 1)"
    if shipped:
        rows += f"; {SHIPPED_LABEL} = {shipped}"
    # this run's seeds, rows and densities only: the folder may hold more (an earlier demo's), and the table
    # said "1 seed (0)" over a mean of two, without the row that had beaten autos (review)
    titles, densities = set(bench.method_titles()), {float(d) for d in bench.densities}
    records = [
        r
        for r in report.records
        if r.get("seed") in bench.seeds and r.get("label") in titles and float(r.get("density", -1)) in densities
    ]
    dense = dense_accuracy(records, model, dataset)
    lines = [
        f"Dataset: {dataset} ({n_train} train / {n_test} test) — {source}",
        f"Held-out model: {model}, {sizes.parameters:,} parameters ({sizes.prunable:,} prunable weights), "
        f"not among the {n_sources} source models",
        f"Recipe: every mask trained {count_of(t.epochs, 'epoch')} ({t.optimizer} lr {t.lr:g}, batch {t.batch_size}, "
        f"{t.schedule}); {len(bench.seeds)} seed{'s' if len(bench.seeds) != 1 else ''} ({seeds}); "
        "IMP (reference) = iterative magnitude pruning with rewinding, trained once per round",
        f"Rows: {rows}",
        f"Dense accuracy: {format_stat(dense)}%" if dense else "Dense accuracy: – (IMP did not finish)",
        "",
        f"Test accuracy (%) at each sparsity ({len(bench.seeds)} seed{'s' if len(bench.seeds) != 1 else ''}):",
        "",
        accuracy_table(bench, records, model, dataset),
        "",
        reading(records, bench),
    ]
    plot = next((p for p in report.plots if p.name.startswith("accuracy")), None)
    if plot is not None:
        lines.append(f"plot: {plot}")
    lines.append(f"report: {report.path}")
    # this run's cells only: the folder's grid may hold an earlier demo's seeds and densities, which this
    # run never computes ("24 cells missing; rerun to compute them" after every rerun; helper)
    done = sum(1 for r in records if r.get("model") == model and r.get("dataset") == dataset)
    missing = len(titles) * len(densities) * len(bench.seeds) - done
    if missing > 0:
        lines.append(f"{missing} cells missing (failed jobs are listed in the report); rerun to compute them")
    return "\n".join(lines)
