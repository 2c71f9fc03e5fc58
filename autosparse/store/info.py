"""What is in a store, for humans: a summary and one table row per run.

A user choosing a ``--holdout`` filter, or deciding what to delete, needs each run's id and the
values a filter compares (model label, dataset, seed), what the run measured (rounds, final
density and accuracy) and whether it is usable (complete / incomplete / writing / broken). The
status comes from the quick check of :func:`~autosparse.store.validate.validate_store`
(metadata, shapes, chunk files present; no chunk is decoded), so this stays fast on big stores.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from autosparse.core.errors import StoreError
from autosparse.store.filters import display_name, lookup
from autosparse.store.layout import LOCKS, foreign_entries, read_root_attrs, read_run_attrs, run_dir
from autosparse.store.locks import is_being_written
from autosparse.store.validate import validate_store

#: Columns of the run table: (header, row key).
COLUMNS = (
    ("run id", "run_id"),
    ("model_label", "model_label"),
    ("dataset", "dataset"),
    ("seed", "seed"),
    ("rounds", "rounds"),
    ("final density", "final_density"),
    ("final acc", "final_accuracy"),
    ("status", "status"),
)


def _dir_bytes(p: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(p):
        for f in files:
            with contextlib.suppress(OSError):  # a file deleted while we walk
                total += os.path.getsize(os.path.join(dirpath, f))
    return total


def _raw_bytes(run_path: Path) -> int:
    """Uncompressed size of every array of a run, from its zarr.json metadata (no chunk reads)."""
    total = 0
    for meta in run_path.rglob("zarr.json"):
        try:
            m = json.loads(meta.read_text())
            if m.get("node_type") == "array":
                total += int(np.prod(m["shape"])) * np.dtype(m["data_type"]).itemsize
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return total


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _last(values: Any) -> Any:
    return values[-1] if isinstance(values, list) and values else None


def run_table(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """One row per run on disk (complete or not): the :data:`COLUMNS` values, ``None`` where unknown."""
    path = Path(path).absolute()
    report = validate_store(path, check_chunks=False)
    if report.store_errors:
        raise StoreError(report.store_errors[0])
    status = {r: "complete" for r in report.complete_runs}
    status.update({r: "incomplete" for r in report.incomplete_runs})
    status.update({r: "writing" for r in report.writing_runs})
    status.update({r: "broken" for r in report.run_errors})
    rows = []
    for run_id in sorted(status):
        try:
            attrs = read_run_attrs(path, run_id) or {}
        except StoreError:
            attrs = {}
        model = attrs.get("model_label", display_name(lookup(attrs, "model")[1]))
        rows.append(
            {
                "run_id": run_id,
                "model_label": model,
                "dataset": display_name(lookup(attrs, "dataset")[1]),
                "seed": lookup(attrs, "seed")[1],
                "rounds": attrs.get("rounds"),
                "final_density": _last(attrs.get("densities")),
                "final_accuracy": _last(attrs.get("accuracies")),
                "status": status[run_id],
                "n_weights": attrs.get("n_weights"),
            }
        )
    return rows


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "final_density" and isinstance(value, float):
        return f"{value:.4g}"
    if key == "final_accuracy" and isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_table(rows: list[dict[str, Any]], indent: str = "  ") -> list[str]:
    """The run table as aligned text lines (numbers right-aligned)."""
    cells = [[_cell(k, r[k]) for _h, k in COLUMNS] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _k) in enumerate(COLUMNS)]
    right = {"seed", "rounds", "final_density", "final_accuracy"}

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if k in right else v.ljust(w) for v, w, (_h, k) in zip(values, widths, COLUMNS, strict=True)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [line([h for h, _k in COLUMNS]), *(line(c) for c in cells)]


def store_info(path: str | os.PathLike[str]) -> str:
    """A human summary: schema, runs by model/dataset, sizes, and a table of every run with its status."""
    path = Path(path).absolute()
    root = read_root_attrs(path)
    names = list(root["feature_names"])
    rows = run_table(path)
    per: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    raw = disk = 0
    for row in rows:
        if row["status"] != "complete":
            continue
        per[(str(row["model_label"]), str(row["dataset"]))][0] += 1
        per[(str(row["model_label"]), str(row["dataset"]))][1] += int(row["n_weights"] or 0)
        raw += _raw_bytes(run_dir(path, row["run_id"]))
        disk += _dir_bytes(run_dir(path, row["run_id"]))
    by_status: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_status[row["status"]].append(row["run_id"])
    rounds = sorted({r["rounds"] for r in rows if r["status"] == "complete" and isinstance(r["rounds"], int)})
    shown = ", ".join(names[:12]) + (f", ... (+{len(names) - 12})" if len(names) > 12 else "")
    incomplete = by_status["incomplete"] + by_status["writing"]
    lines = [
        f"feature store {path}",
        f"  schema v{root['schema_version']}, label {root['label_kind']}, created by {root.get('created_by', '?')}",
        f"  {len(names)} features: {shown}",
        f"  runs: {len(by_status['complete'])} complete, {len(incomplete)} incomplete"
        + (f" ({len(by_status['writing'])} being written now)" if by_status["writing"] else "")
        + (f", {len(by_status['broken'])} broken" if by_status["broken"] else ""),
        f"  weights: {sum(w for _n, w in per.values()):,} in complete runs; IRP rounds: {rounds or '-'}",
        f"  size on disk: {_human(_dir_bytes(path))} total; complete runs {_human(disk)} for {_human(raw)} raw"
        + (f" (compression x{raw / disk:.2f})" if disk else ""),
    ]
    if per:
        w_model = max(len("model"), *(len(m) for m, _ in per))
        w_data = max(len("dataset"), *(len(d) for _, d in per))
        lines.append(f"  {'model':<{w_model}}  {'dataset':<{w_data}}  {'runs':>5}  {'weights':>13}")
        for (model, dataset), (n_runs, n_w) in sorted(per.items()):
            lines.append(f"  {model:<{w_model}}  {dataset:<{w_data}}  {n_runs:>5}  {n_w:>13,}")
    if rows:
        lines += ["", *format_table(rows)]
        lines.append(
            "  filter runs by these columns, e.g. --holdout 'model_label!=NAME;seed=2' (values in the stored type)"
        )
    if by_status["incomplete"]:
        lines.append(
            f"  incomplete (killed jobs; rerunning the command that wrote them completes them): "
            f"{', '.join(by_status['incomplete'])}"
        )
    # a run `gen` is generating has no group until its IRP ends: only its claim says so (it read "0 incomplete")
    known = {row["run_id"] for row in rows}
    claimed = sorted(p.stem for p in (path / LOCKS).glob("*.lock")) if (path / LOCKS).is_dir() else []
    generating = [r for r in claimed if r not in known and is_being_written(path, r)]
    if generating:
        lines.append(
            f"  claimed by a live process, no group yet (IRP rounds of a gen, or a copy starting): {', '.join(generating)}"
        )
    if by_status["broken"]:
        lines.append(
            f"  broken: {', '.join(by_status['broken'])} — `autosparse store validate {path}` says why and what "
            "fixes each (`store repair` drops damaged runs for `gen` to regenerate; `store refeaturize` recomputes "
            "the features of runs of another schema, keeping their labels)"
        )
    foreign = foreign_entries(path)
    if foreign:
        lines.append(
            f"  not runs (readers and `store repair` leave them alone): {', '.join(sorted(foreign))} — "
            f"`autosparse store validate {path}` says what each is"
        )
    return "\n".join(lines)


__all__ = ["COLUMNS", "format_table", "run_table", "store_info"]
