"""Turn bench cells into results files, markdown tables, plots and ``report.md``.

The report is recomputed from the cell files every time (never updated incrementally), so it is
always exactly what the cells say: a partial run reports what is done and lists what is
missing, and ``--report-only`` is the same code without running anything.
"""

from __future__ import annotations

import csv
import io
import logging
import shlex
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosparse.bench.cells import plan_jobs, read_current_cell
from autosparse.bench.config import BenchConfig, slug
from autosparse.bench.contest import contest_table, contests, no_verdicts
from autosparse.bench.outputs import CONFIG_FILE
from autosparse.bench.plots import Series, plot_accuracy, plot_layer_densities
from autosparse.core import json_text
from autosparse.core.config_record import config_hash, dump_yaml, to_dict
from autosparse.core.errors import disk_full
from autosparse.core.executors import JobOutcome
from autosparse.core.folders import make_output_dir, write_text
from autosparse.core.text import count_of, markdown_literal, sparsity_headers

log = logging.getLogger(__name__)

REPORT_FILE = "report.md"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
PLOTS_DIR = "plots"

CSV_FIELDS = [
    "cell_id",
    "model",
    "dataset",
    "method",
    "label",
    "reference",
    "density",
    "sparsity",
    "seed",
    "test_accuracy",
    "actual_density",
    "kept",
    "total",
    "n_empty_layers",
    "empty_layers",
    "time_to_mask",
    "train_seconds",
    "train_loss",
    "diverged",
    "config_hash",
    "device",
]


@dataclass
class Stat:
    """Mean and sample standard deviation (ddof = 1; 0 for one value) over seeds."""

    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else 0.0

    def scaled_mean(self, scale: float = 100.0) -> float:
        """The mean of the scaled values, as the verdict (``contest``) takes it: ``100 * mean`` rounds
        differently on a mean ending in .x5 (80.35 was 80.4 in the table and 80.3 in the verdict)."""
        return statistics.fmean(scale * v for v in self.values)


def format_stat(stat: Stat, *, scale: float = 100.0, digits: int = 1) -> str:
    """``85.6 ± 0.3`` (a single seed has no spread to show, so just ``85.6``)."""
    if stat.n == 1:
        return f"{stat.scaled_mean(scale):.{digits}f}"
    return f"{stat.scaled_mean(scale):.{digits}f} ± {scale * stat.std:.{digits}f}"


def format_seconds(s: float) -> str:
    if s >= 100:
        return f"{s:.0f}"
    if s >= 1:
        return f"{s:.2f}"
    if s >= 0.01:
        return f"{s:.3f}"
    return f"{s:.2g}"


@dataclass
class BenchReport:
    """The report as written: where it is, its accuracy tables (what the CLI prints), and gaps."""

    path: Path
    tables: str
    records: list[dict[str, Any]]
    missing: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


def collect(config: BenchConfig, out_dir: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The finished cells of *this* config (stale cells of older recipes are ignored) and the missing ids."""
    records: list[dict[str, Any]] = []
    missing: list[str] = []
    for job in plan_jobs(config, out_dir):
        identity = job.spec.method_identity()
        job.adopt()  # a row or model renamed since its cells were written: copied under the new id
        for cid, path in zip(job.cell_ids(), job.cell_paths()):
            rec = read_current_cell(path, identity)
            if rec is None:
                missing.append(cid)
            else:
                records.append(rec)
    return records, missing


Key = tuple[str, str, str, float]  # (model label, dataset, method label, density)


def group(records: Iterable[dict[str, Any]], field_name: str = "test_accuracy") -> dict[Key, Stat]:
    out: dict[Key, list[float]] = {}
    for r in records:
        value = r.get(field_name)
        if value is None:
            continue
        out.setdefault((r["model"], r["dataset"], r["label"], float(r["density"])), []).append(float(value))
    return {k: Stat(v) for k, v in out.items()}


def _row_name(title: str, reference: bool) -> str:
    return f"{markdown_literal(title)} *(reference)*" if reference else markdown_literal(title)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A "|" inside a cell (a label "snip | layerwise") is escaped: it split the row, and the
    accuracy showed under the wrong column."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rows_text = [line(header), "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return "\n".join(rows_text + [line(row) for row in rows])


def accuracy_table(config: BenchConfig, records: Sequence[dict[str, Any]], model: str, dataset: str) -> str:
    """Rows = methods, columns = sparsity; mean ± std of test accuracy (%) over seeds.

    The best pruning-at-initialisation method of each column is bold (ties on the printed value all
    bold), where its rows finished as many seeds: a partial row's mean is over other seeds, so none is then.
    IMP is marked as the reference and not in the contest — it trains many times to find its mask,
    so beating it at init is the goal, not the baseline.
    """
    stats = group(r for r in records if r["model"] == model and r["dataset"] == dataset)
    mine = [r for r in records if r["model"] == model and r["dataset"] == dataset]
    empties = {(r["label"], float(r["density"])) for r in mine if r.get("empty_layers")}
    # a run whose loss blew up trains to chance: it is marked, and its column's best is among the others
    diverged = {(r["label"], float(r["density"])) for r in mine if r.get("diverged")}
    densities = config.sorted_densities()
    n_seeds = len(config.seeds)
    best: dict[float, float] = {}  # the bold: best printed mean, where every row finished as many seeds
    for d in densities:
        cands = [
            stats[(model, dataset, m.title(), d)]
            for m in config.methods
            if not m.is_imp and (model, dataset, m.title(), d) in stats and (m.title(), d) not in diverged
        ]
        # means over different seeds are no contest: a one-seed row was bold over a two-seed one (helper), and
        # bolding among the rows with the most seeds gave it to the worst row where the others each lacked one (review)
        if cands and len({st.n for st in cands}) == 1:
            best[d] = max(round(st.scaled_mean(), 1) for st in cands)
    rows = []
    for m in config.methods:
        row = [_row_name(m.title(), m.is_imp)]
        for d in densities:
            st = stats.get((model, dataset, m.title(), d))
            if st is None:
                row.append("–")
                continue
            text = format_stat(st)
            if not m.is_imp and d in best and round(st.scaled_mean(), 1) == best[d] and (m.title(), d) not in diverged:
                text = f"**{text}**"
            if (m.title(), d) in empties:
                text += " †"
            if (m.title(), d) in diverged:
                text += " ‡"
            if st.n < n_seeds:
                text += f" (n={st.n})"
            row.append(text)
        rows.append(row)
    return markdown_table(["method", *sparsity_headers(densities)], rows)


def time_table(config: BenchConfig, records: Sequence[dict[str, Any]], model: str, dataset: str) -> str:
    """Mean seconds to compute the mask per method and density (IMP: training of the earlier rounds)."""
    sel = [r for r in records if r["model"] == model and r["dataset"] == dataset]
    stats = group(sel, "time_to_mask")
    train = group(sel, "train_seconds")
    densities = config.sorted_densities()
    rows = []
    for m in config.methods:
        row = [_row_name(m.title(), m.is_imp)]
        for d in densities:
            st = stats.get((model, dataset, m.title(), d))
            row.append(format_seconds(st.mean) if st else "–")
        tr = [v for d in densities if (st := train.get((model, dataset, m.title(), d))) for v in st.values]
        row.append(format_seconds(statistics.fmean(tr)) if tr else "–")
        rows.append(row)
    return markdown_table(["method", *sparsity_headers(densities), "train (s/cell)"], rows)


def dense_accuracy(records: Sequence[dict[str, Any]], model: str, dataset: str) -> Stat | None:
    """Dense accuracy comes free from IMP's round 0 (one value per seed).

    Not from an imp row with ``round_epochs``: its round 0 trained briefly, not with the recipe
    (cells written before that row stopped recording it still carry the short round's value).
    """
    per_seed = {
        r["seed"]: r["dense_accuracy"]
        for r in records
        if r["model"] == model
        and r["dataset"] == dataset
        and r.get("dense_accuracy") is not None
        and not r.get("imp_round_epochs")
    }
    return Stat([float(v) for v in per_seed.values()]) if per_seed else None


def write_results(records: Sequence[dict[str, Any]], config: BenchConfig, out_dir: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        row = dict(r)
        row["n_empty_layers"] = len(r.get("empty_layers") or [])
        row["empty_layers"] = ";".join(r.get("empty_layers") or [])
        writer.writerow(row)
    write_text(out_dir / RESULTS_CSV, buf.getvalue())
    write_text(
        out_dir / RESULTS_JSON,
        json_text.dumps(
            {"config": to_dict(config), "config_hash": config_hash(config), "cells": list(records)}, indent=1
        ),
    )


def _pairs(config: BenchConfig) -> list[tuple[str, str]]:
    return [(m.label(), ds) for m in config.models for ds in config.dataset_names()]


def _plots(
    config: BenchConfig, records: Sequence[dict[str, Any]], out_dir: Path, model: str, dataset: str
) -> list[Path]:
    mine = [r for r in records if r["model"] == model and r["dataset"] == dataset]
    stats = group(mine)
    diverged = {(r["label"], float(r["density"])) for r in mine if r.get("diverged")}  # the table's ‡
    densities = config.sorted_densities()
    series = []
    for m in config.methods:
        ds = [d for d in densities if (model, dataset, m.title(), d) in stats]
        series.append(
            Series(
                m.title(),
                ds,
                [stats[(model, dataset, m.title(), d)].mean for d in ds],
                [stats[(model, dataset, m.title(), d)].std for d in ds],
                reference=m.is_imp,
                diverged=[(m.title(), d) in diverged for d in ds],
                partial=[n if (n := stats[(model, dataset, m.title(), d)].n) < len(config.seeds) else 0 for d in ds],
            )
        )
    dense = dense_accuracy(records, model, dataset)
    stem = f"{slug(model)}__{slug(dataset)}"
    # the seeds the points are means over: the grid's count, while some have no cell yet, said so
    done = {r["seed"] for r in mine}
    seeds = count_of(len(config.seeds), "seed")
    if len(done) < len(config.seeds):
        seeds = f"{len(done)} of {seeds} finished"
    title = f"{model} on {dataset} ({seeds}, {count_of(config.train.epochs, 'epoch')})"
    paths = [
        plot_accuracy(
            out_dir / PLOTS_DIR / f"accuracy__{stem}.png",
            series,
            densities,
            title=title,
            dense=(dense.mean, dense.std) if dense else None,
        )
    ]
    sel = [r for r in records if r["model"] == model and r["dataset"] == dataset and r.get("layer_densities")]
    if sel:
        layers = list(sel[0]["layer_densities"])
        per_density: dict[float, dict[str, dict[str, float]]] = {}
        for d in densities:
            per_density[d] = {}
            for m in config.methods:
                cells = [r for r in sel if r["label"] == m.title() and float(r["density"]) == d]
                if cells:
                    per_density[d][m.title()] = {
                        name: statistics.fmean(float(c["layer_densities"].get(name, 0.0)) for c in cells)
                        for name in layers
                    }
        imp = next((m.title() for m in config.methods if m.is_imp), None)
        paths.append(
            plot_layer_densities(
                out_dir / PLOTS_DIR / f"layers__{stem}.png",
                layers,
                per_density,
                title=f"per-layer density, {model} on {dataset} (mean over seeds)",
                reference=imp,
                rows=[m.title() for m in config.methods],
            )
        )
    return paths


#: the names this report gives its figures (``_plots``): only these are its to remove
_PLOT_PATTERNS = ("accuracy__*.png", "layers__*.png")


def _remove_stale_plots(out: Path, drawn: Sequence[Path]) -> None:
    """Remove this report's figures that it no longer draws (a renamed model's, a removed dataset's).

    Why: they stayed in plots/ beside the new ones, unreferenced, and read as this grid's. Only files of
    the names the report itself gives are touched; anything else in plots/ is someone else's.
    """
    keep = {p.name for p in drawn}
    for pattern in _PLOT_PATTERNS:
        for path in (out / PLOTS_DIR).glob(pattern):
            if path.name not in keep and path.is_file():
                path.unlink(missing_ok=True)


def _data_size(config: BenchConfig) -> str:
    """What the cells trained and tested on: a subset reads very differently from the full data."""
    train = f"a stratified subset of {config.n_train} training examples" if config.n_train else "every training example"
    test = f"{config.n_test} test examples" if config.n_test else "the whole test set"
    return f"{train}, accuracy on {test}"


def write_report(config: BenchConfig, out_dir: str | Path, *, failures: Sequence[JobOutcome] = ()) -> BenchReport:
    """Write results.csv/json, plots and report.md for the cells of ``config`` found in ``out_dir``."""
    out = make_output_dir(out_dir)
    records, missing = collect(config, out)
    write_results(records, config, out)
    name = config.name or out.name
    t = config.train
    md = [
        f"# Bench: {name}",
        "",
        f"Test accuracy (%) after masked training, mean ± std (sample std) over {count_of(len(config.seeds), 'seed')}"
        f" ({', '.join(map(str, config.seeds))}); the seed sets the initial weights, "
        "the pruning batch and the training order. Every method is trained with the same recipe: "
        f"{count_of(t.epochs, 'epoch')}, {t.optimizer} lr {t.lr:g}, batch {t.batch_size}, {t.schedule} schedule, "
        f"weight decay {t.weight_decay:g}; {_data_size(config)}.",
        "",
        "**Bold**: best pruning-at-initialisation method in the column (none where its rows finished different numbers of seeds). *(reference)*: IMP — iterative "
        "magnitude pruning with rewinding, which trains once per round to find its mask; it is the target, "
        "not a competitor. †: at least one seed emptied a whole layer. ‡: at least one seed's training "
        "diverged (its cell's `diverged` says how; lower the lr). (n=k): only k seeds finished.",
        "",
    ]
    tables: list[str] = []
    plots: list[Path] = []
    failed = False  # a figure could not be drawn
    for model, dataset in _pairs(config):
        has = any(r["model"] == model and r["dataset"] == dataset for r in records)
        head = f"## {model} on {dataset}"
        table = accuracy_table(config, records, model, dataset)
        dense = dense_accuracy(records, model, dataset)
        dense_line = f"Dense network (IMP round 0): {format_stat(dense)}%" if dense else ""
        if dense and any(r.get("dense_diverged") for r in records if (r["model"], r["dataset"]) == (model, dataset)):
            dense_line += (
                " ‡ (at least one seed's dense training diverged: IMP chose its masks from the diverged weights)"
            )
        rows = contests(config, records, model, dataset)
        verdict = "\n\n".join(
            filter(None, [contest_table(rows), "\n".join(no_verdicts(config, records, model, dataset, rows))])
        )
        versus = f"### The learned method against the best classic one\n\n{verdict}" if verdict else ""
        tables.append("\n".join((head, "", table, "", dense_line, "", versus)).rstrip())
        md += [head, "", table, ""]
        if dense_line:
            md += [dense_line, ""]
        if versus:
            md += [
                versus,
                "",
                "Best classic: the pruning-at-initialisation method with the highest mean at that sparsity over the "
                "seeds it finished, among those sharing a seed with the learned row (a row whose training diverged, ‡, "
                "is not one, and a learned row that diverged gets no verdict); its mean, the margin and the seeds "
                "above it are on the seeds the two share (paired by seed: same initial weights, pruning batch and "
                "training order). Share of the gap: (learned − best classic) / (IMP − best classic), on the same seeds "
                "(none where IMP lacks one of them).",
                "",
            ]
        if has:
            try:
                ps = _plots(config, records, out, model, dataset)
            except Exception as exc:  # a plotting problem must not lose the tables
                if disk_full(exc):  # not a plotting problem: the report files would fail next, or be lost
                    raise
                log.warning("could not draw plots for %s on %s: %s", model, dataset, exc)
                ps, failed = [], True
            plots += ps
            for p in ps:
                kind = "accuracy vs sparsity" if p.name.startswith("accuracy") else "per-layer density"
                md += [f"![{kind}]({p.relative_to(out).as_posix()})", ""]
            md += [
                "### Time to mask (s, mean over seeds)",
                "",
                "For IMP: the training of every earlier round. Last column: training time per cell.",
                "",
                time_table(config, records, model, dataset),
                "",
            ]
    if not failed:  # a failed drawing would read its own figures (one just redrawn among them) as stale (review)
        _remove_stale_plots(out, plots)
    done = len(records)
    run_from = _run_from(config)
    md += ["## Status", "", f"{done} of {done + len(missing)} cells finished."]
    if missing:
        # the folder's whole grid (bench.yaml: the union of every run into it), not only the last run's part
        md += [
            "",
            f"Missing cells (`{run_from}autosparse bench --out {out}` computes the grid its bench.yaml records; "
            "`--config YAML --out …` another grid's):",
            "",
        ]
        md += [f"- `{cid}`" for cid in missing[:50]]
        if len(missing) > 50:
            md.append(f"- … and {len(missing) - 50} more")
    if failures:
        md += ["", "Failed jobs in the last run:", ""]
        md += [f"- `{f.key}`: {(f.error.splitlines() or [''])[0]}" for f in failures]
    versions = next((r.get("versions") for r in records if r.get("versions")), None)
    md += [
        "",
        "## Reproduce",
        "",
        *(
            ["```", f"{run_from}autosparse bench --config {out.as_posix()}/bench.yaml --out {out.as_posix()}", "```"]
            if (out / CONFIG_FILE).exists()
            # --report-only of a folder whose bench.yaml was deleted: the command named a file that was not there
            else [
                "This folder records no bench.yaml (deleted to shrink its grid); the grid reported here, saved as "
                f"a YAML file, reruns with `{run_from}autosparse bench --config THAT.yaml --out {out.as_posix()}`:",
                "",
                "```yaml",
                dump_yaml(config, record=True).rstrip(),
                "```",
            ]
        ),
        "",
        f"Config hash {config_hash(config)}; every cell file in `cells/` holds its full spec, its config hash, "
        "the device and package versions. Per-cell numbers: `results.csv`, `results.json`.",
    ]
    if versions:
        md += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())]
    path = out / REPORT_FILE
    write_text(path, "\n".join(md) + "\n")
    return BenchReport(path, "\n\n".join(tables), records, missing, plots)


def _run_from(config: BenchConfig) -> str:
    """``cd <this folder> && `` where the config names paths relative to it (a row's ``scorer``, the
    ``data_root``), which bench.yaml keeps as written (cell ids hash them so): the report's commands,
    run from another folder, failed to find them once a cell was missing."""
    named = [m.hparams.get("scorer") for m in config.methods] + [config.data_root]
    relative = [
        p for p in named if isinstance(p, str) and p and not Path(p).expanduser().is_absolute() and Path(p).exists()
    ]
    return f"cd {shlex.quote(Path.cwd().as_posix())} && " if relative else ""
