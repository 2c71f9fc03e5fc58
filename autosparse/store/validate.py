"""Checking a feature store end to end (the human summary is :mod:`autosparse.store.info`).

Scorer training trusts the store; a flipped bit or a chunk lost to a full disk would otherwise
show up as a mysteriously worse scorer weeks later. ``validate_store`` reads every chunk and
checks every invariant the writer promised, and it separates *broken* runs (must be deleted and
regenerated) from *incomplete* ones (a killed job: harmless, readers skip them, the next data
generation rewrites them).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from autosparse.core.errors import StoreError
from autosparse.store.durability import unpublish_run
from autosparse.store.layout import (
    RUNS,
    TRASH,
    is_complete_attrs,
    read_root_attrs,
    read_run_attrs,
    run_dir,
    run_entries,
)
from autosparse.store.locks import claim_run, is_being_written

_DTYPES = {"features": np.float32, "label": np.int8, "layer": np.int16}


@dataclass
class ValidationReport:
    """What ``validate_store`` found; ``ok`` means every complete run is fully readable and consistent."""

    path: str
    schema_version: int | None = None
    n_features: int = 0
    store_errors: list[str] = field(default_factory=list)
    run_errors: dict[str, list[str]] = field(default_factory=dict)
    complete_runs: list[str] = field(default_factory=list)
    incomplete_runs: list[str] = field(default_factory=list)
    writing_runs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: How the store's feature schema compares with this code's, and what to do if it differs.
    schema_note: str = ""
    n_weights: int = 0
    chunks_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.store_errors and not self.run_errors

    @property
    def bad_runs(self) -> list[str]:
        return sorted(self.run_errors)

    @property
    def valid_runs(self) -> list[str]:
        return [r for r in self.complete_runs if r not in self.run_errors]

    @property
    def schema_runs(self) -> list[str]:
        """Runs whose only fault is a feature schema other than the store's: their labels are intact
        and `store refeaturize` recomputes their features, so they are never dropped."""
        return [r for r in self.bad_runs if all(e.startswith(SCHEMA_MISMATCH) for e in self.run_errors[r])]

    @property
    def broken_runs(self) -> list[str]:
        """What `store repair` drops: runs with damaged data (not merely another schema)."""
        return [r for r in self.bad_runs if r not in self.schema_runs]

    def format(self) -> str:
        lines = [f"feature store {self.path}: {'OK' if self.ok else 'BROKEN'}"]
        if self.schema_version is not None:
            lines.append(
                f"  schema v{self.schema_version}, {self.n_features} features; {len(self.valid_runs)} valid runs, "
                f"{self.n_weights:,} weights, {self.chunks_read} chunks read"
            )
        if self.schema_note:
            lines.append(f"  {self.schema_note}")
        lines += [f"  store error: {e}" for e in self.store_errors]
        for run_id in self.bad_runs:
            lines += [f"  run {run_id}: {e}" for e in self.run_errors[run_id]]
        if self.schema_runs:
            lines.append(
                f"  fix for the {len(self.schema_runs)} run(s) whose schema differs from the store's: "
                f"`autosparse store refeaturize {self.path} --out NEW.zarr` recomputes their features and keeps their "
                "labels (`store repair` leaves them alone)"
            )
        if self.broken_runs:
            lines.append(
                f"  fix: `autosparse store repair {self.path}` drops the {len(self.broken_runs)} broken run(s) "
                "(or `autosparse store delete-run STORE RUN_ID` one by one); then rerun `autosparse gen` with the "
                "same config: complete runs are skipped, so only those are regenerated"
            )
        stale = [r for r in self.incomplete_runs if r not in self.writing_runs]
        if stale:
            lines.append(
                f"  {len(stale)} incomplete run(s) (killed jobs; the command that was writing them — `gen`, `store copy` "
                f"or `store refeaturize` — rerun as it was completes them): {', '.join(stale)}"
            )
        if self.writing_runs:
            lines.append(f"  {len(self.writing_runs)} run(s) being written now: {', '.join(self.writing_runs)}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    __str__ = format

    def raise_for_errors(self) -> None:
        """Raise a StoreError carrying the formatted report if anything is broken."""
        if not self.ok:
            raise StoreError(self.format())


def schema_note(path: Path, version: int, names: Sequence[str], code_version: int, code_names: Sequence[str]) -> str:
    """The store's feature schema against the code's: the same, or what to do about the difference."""
    if version == code_version and list(names) == list(code_names):
        return f"schema v{version} is this autosparse's feature schema: its scorers can train on this store"
    fix = (
        f"recompute the features under v{code_version}, keeping the IRP labels (no IRP rerun), with "
        f"`autosparse store refeaturize {path} --out NEW.zarr`"
    )
    if version == code_version:
        return (
            f"schema v{version} but other feature columns than this autosparse's v{code_version} (the feature code "
            f"changed without a version bump); {fix}"
        )
    return (
        f"schema v{version}, but this autosparse computes schema v{code_version}: its train-scorer and `autos` "
        f"cannot use this store as it is; {fix}, or use the autosparse version that wrote it"
    )


def _chunk_slices(arr: Any) -> Iterator[tuple[slice, ...]]:
    """Every chunk of ``arr`` as a tuple of slices, so each chunk file is decoded exactly once."""
    grid = [range(0, s, c) for s, c in zip(arr.shape, arr.chunks, strict=True)]
    for starts in itertools.product(*grid):
        yield tuple(slice(a, min(a + c, s)) for a, c, s in zip(starts, arr.chunks, arr.shape, strict=True))


def _check_table(attrs: dict[str, Any], n: int) -> tuple[list[str], np.ndarray | None]:
    """Problems with the layer table, and the per-row layer index it implies."""
    table = attrs.get("layers")
    if not isinstance(table, list) or not table:
        return ["attrs 'layers' (the layer table) is missing or empty"], None
    problems, offset = [], 0
    for i, e in enumerate(table):
        try:
            numel = int(np.prod(e["shape"])) if e["shape"] else 1
            if int(e["numel"]) != numel:
                problems.append(f"layer table entry {i} ({e.get('name')}): numel {e['numel']} != prod(shape) {numel}")
            if int(e["offset"]) != offset:
                problems.append(f"layer table entry {i} ({e.get('name')}): offset {e['offset']}, expected {offset}")
            offset += numel
        except (KeyError, TypeError, ValueError) as exc:
            return [f"layer table entry {i} is malformed ({exc!r})"], None
    if offset != n:
        problems.append(f"layer table covers {offset} weights but n_weights = {n}")
    if problems:
        return problems, None
    return [], np.repeat(np.arange(len(table), dtype=np.int64), [int(e["numel"]) for e in table])


#: How a run's schema fault starts: repair leaves such runs to `store refeaturize` (their labels are intact).
SCHEMA_MISMATCH = "feature schema differs from the store's"


def _validate_run(
    path: Path, run_id: str, attrs: dict[str, Any], root: dict[str, Any], check_chunks: bool
) -> tuple[list[str], int]:
    import zarr
    from zarr.storage import LocalStore

    errors: list[str] = []
    chunks = 0
    n_features = len(root["feature_names"])
    if attrs.get("schema_version") != root["schema_version"]:
        errors.append(
            f"{SCHEMA_MISMATCH}: schema_version {attrs.get('schema_version')} != store's {root['schema_version']}"
        )
    if attrs.get("n_features") != n_features:
        errors.append(f"{SCHEMA_MISMATCH}: n_features {attrs.get('n_features')} != store's {n_features}")
        if isinstance(attrs.get("n_features"), int) and attrs["n_features"] > 0:
            n_features = attrs["n_features"]  # its arrays are checked against its own columns: they are its data
    n, rounds = attrs.get("n_weights"), attrs.get("rounds")
    if not isinstance(n, int) or n < 1:
        return [*errors, f"n_weights {n!r} is not a positive int"], chunks
    if not isinstance(rounds, int) or rounds < 0:
        errors.append(f"rounds {rounds!r} is not a non-negative int (labels are rounds in [0, R])")
        rounds = None
    table_errors, expected_layer = _check_table(attrs, n)
    errors += table_errors

    store = LocalStore(path, read_only=True)
    arrays: dict[str, Any] = {}
    for name, dtype in _DTYPES.items():
        try:
            arr = zarr.open_array(store=store, path=f"{RUNS}/{run_id}/{name}", mode="r")
        except Exception as exc:
            errors.append(f"array {name!r} missing or unreadable metadata ({type(exc).__name__}: {exc})")
            continue
        want_shape = (n, n_features) if name == "features" else (n,)
        if tuple(arr.shape) != want_shape:
            errors.append(f"{name} has shape {tuple(arr.shape)}, expected {want_shape}")
            continue
        if np.dtype(arr.dtype) != np.dtype(dtype):
            errors.append(f"{name} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
            continue
        arrays[name] = arr
    for sub in ("graph", "extra"):
        if (run_dir(path, run_id) / sub).exists():
            try:
                group = zarr.open_group(store=store, path=f"{RUNS}/{run_id}/{sub}", mode="r")
                arrays.update({f"{sub}/{k}": v for k, v in group.arrays()})
            except Exception as exc:
                errors.append(f"{sub}/ metadata unreadable ({type(exc).__name__}: {exc})")

    for name, arr in arrays.items():
        try:
            present, total = arr.nchunks_initialized, arr.nchunks
        except Exception as exc:
            errors.append(f"cannot list chunks of {name} ({exc})")
            continue
        if present != total and arr.size:
            errors.append(f"{name}: {total - present} of {total} chunk files missing")
        if not check_chunks:
            continue
        for sel in _chunk_slices(arr):
            try:
                block = np.asarray(arr[sel])
            except Exception as exc:
                errors.append(
                    f"{name}: chunk at rows {sel[0].start}:{sel[0].stop} unreadable ({type(exc).__name__}: {exc})"
                )
                break
            chunks += 1
            rows = sel[0] if sel else slice(None)
            if name == "features" and not np.isfinite(block).all():
                errors.append(f"features rows {rows.start}:{rows.stop} contain NaN/inf (or a missing chunk)")
                break
            if name == "label" and rounds is not None and (block.min() < 0 or block.max() > rounds):
                errors.append(f"label rows {rows.start}:{rows.stop} outside [0, R={rounds}]")
                break
            if name == "layer" and expected_layer is not None and not np.array_equal(block, expected_layer[rows]):
                errors.append(f"layer rows {rows.start}:{rows.stop} disagree with the layer table")
                break
    return errors, chunks


def validate_store(
    path: str | os.PathLike[str],
    *,
    check_chunks: bool = True,
    code_schema: tuple[int, Sequence[str]] | None = None,
) -> ValidationReport:
    """Check the root attrs and every run; with ``check_chunks`` every chunk is decoded (slow but thorough).

    ``code_schema`` (the caller's ``SCHEMA_VERSION, FEATURE_NAMES``; the store layer does not
    import the feature code, which would pull in torch) adds a :attr:`~ValidationReport.schema_note`
    saying whether that code can use the store and what to do if not. A different schema is not
    an error: the store is intact, only this code cannot train on it.

    Incomplete runs are listed separately and are not errors: readers never see them and data
    generation rewrites them.
    """
    path = Path(path).absolute()
    report = ValidationReport(path=str(path))
    try:
        root = read_root_attrs(path)
    except StoreError as exc:
        report.store_errors.append(str(exc))
        return report
    names = root["feature_names"]
    if not isinstance(root["schema_version"], int) or not isinstance(names, list) or not names:
        report.store_errors.append("root attrs schema_version/feature_names malformed; regenerate the store")
        return report
    report.schema_version, report.n_features = root["schema_version"], len(names)
    if code_schema is not None:
        report.schema_note = schema_note(path, root["schema_version"], names, *code_schema)
    runs, foreign = run_entries(path)
    for run_id in tqdm(runs, desc="validate runs", unit="run", disable=None):
        try:
            attrs = read_run_attrs(path, run_id)
        except StoreError as exc:
            report.run_errors[run_id] = [str(exc)]
            continue
        if not is_complete_attrs(attrs):
            report.incomplete_runs.append(run_id)
            if is_being_written(path, run_id):
                report.writing_runs.append(run_id)
            continue
        assert attrs is not None
        report.complete_runs.append(run_id)
        errors, chunks = _validate_run(path, run_id, attrs, root, check_chunks)
        report.chunks_read += chunks
        if errors:
            report.run_errors[run_id] = errors
        else:
            report.n_weights += int(attrs["n_weights"])
    for name, why in sorted(foreign.items()):
        report.warnings.append(
            f"{path / RUNS / name} is no run of this store ({why}); readers and `store repair` leave it alone: "
            "move it out of runs/"
        )
    for entry in path.parent.glob(f".{path.name}.tmp-*"):
        report.warnings.append(f"leftover temporary store {entry} from an interrupted creation; safe to delete")
    trash = path / TRASH
    if trash.is_dir() and any(trash.iterdir()):
        report.warnings.append(f"{trash} holds runs whose deletion was interrupted; safe to delete")
    return report


def repair_store(
    path: str | os.PathLike[str],
    *,
    check_chunks: bool = True,
    dry_run: bool = False,
    report: ValidationReport | None = None,
) -> list[tuple[str, str]]:
    """Drop every broken run and every incomplete run nobody is writing, so a rerun of
    ``autosparse gen`` regenerates exactly those; returns ``[(run_id, why)]`` of what was (or,
    with ``dry_run``, would be) dropped. Runs being written now and intact runs are never touched.

    Dropping an incomplete run keeps its IRP round checkpoints (outside the store), so the
    rerun resumes it rather than starting over. ``report``: a :func:`validate_store` of ``path``
    the caller already made (it also reads what repair leaves alone), so the store is not read twice.
    """
    path = Path(path).absolute()
    if report is None:
        report = validate_store(path, check_chunks=check_chunks)
    if report.store_errors:
        raise StoreError(f"store {path} itself is broken, not just some runs: {report.store_errors[0]}")
    targets = [(r, f"broken: {report.run_errors[r][0]}") for r in report.broken_runs]  # never a schema mismatch
    targets += [(r, "incomplete") for r in report.incomplete_runs if r not in report.writing_runs]
    dropped = []
    for run_id, why in sorted(targets):
        if dry_run:
            dropped.append((run_id, why))
            continue
        with claim_run(path, run_id) as mine:
            if not mine:
                continue  # a process started writing it since the check: it is that process's now
            if why == "incomplete":
                with contextlib.suppress(StoreError):
                    if is_complete_attrs(read_run_attrs(path, run_id)):
                        continue  # completed since the check
            if unpublish_run(path, run_id, durable=True):
                dropped.append((run_id, why))
    trash = path / TRASH
    if not dry_run and trash.is_dir():
        for leftover in trash.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
    return dropped


__all__ = ["ValidationReport", "repair_store", "schema_note", "validate_store"]
