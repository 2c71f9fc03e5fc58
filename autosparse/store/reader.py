"""Reading the feature store: complete runs only, filtered by their attributes, streamed shuffled.

Scorer training needs (a) whole runs, for the GNN and for per-network validation, and (b) a
stream of shuffled per-weight rows across many runs, for the MLP, without holding every run in
memory. Shuffling whole rows globally would read one row per chunk (slow on compressed chunks),
so the stream shuffles at two levels: the order of chunks across all runs, then rows inside a
buffer of a few chunks. Every row is still yielded exactly once per epoch, and the order is a
pure function of the seed.
"""

from __future__ import annotations

import copy
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from autosparse.core.errors import StoreError, UnknownNameError
from autosparse.store.filters import Filter, display_name, lookup, matches, parse_filter, unknown_keys
from autosparse.store.layout import (
    RUNS,
    check_name,
    check_schema,
    is_complete_attrs,
    list_run_dirs,
    not_a_run,
    read_root_attrs,
    read_run_attrs,
    validate_hint,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class Batch(NamedTuple):
    """One training batch; unpacks as ``features, label, run_index, layer``.

    ``run_index`` indexes :attr:`StoreReader.run_ids` (stable whichever ``runs=`` subset is
    streamed), so per-run quantities such as R are a lookup: ``reader.run_rounds()[run_index]``.
    ``(run_index, layer)`` identifies a layer, for within-layer ranking losses.
    """

    features: torch.Tensor  # float32 (B, n_columns)
    label: torch.Tensor  # int64 (B,): IRP round the weight was pruned in, R = survived
    run_index: torch.Tensor  # int64 (B,)
    layer: torch.Tensor  # int64 (B,): index into that run's layer table


@dataclass
class RunData:
    """One run, fully loaded: arrays are numpy, or torch tensors after :meth:`to_tensors`."""

    run_id: str
    attrs: dict[str, Any]
    feature_names: list[str]
    features: Any  # (n_weights, n_columns) float32
    label: Any  # (n_weights,) int8 (int64 as tensor)
    layer: Any  # (n_weights,) int16 (int64 as tensor)
    layers: list[dict[str, Any]] = field(default_factory=list)
    graph: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_weights(self) -> int:
        return int(self.attrs["n_weights"])

    @property
    def rounds(self) -> int:
        return int(self.attrs["rounds"])

    def to_tensors(self) -> RunData:
        """Torch view of the same data; labels and layer indices widen to int64 (what losses index with)."""
        import torch

        def t(a: Any) -> Any:
            return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))

        return replace(
            self,
            features=t(self.features),
            label=t(np.asarray(self.label, dtype=np.int64)),
            layer=t(np.asarray(self.layer, dtype=np.int64)),
            graph={k: t(v) for k, v in self.graph.items()},
            extra={k: t(v) for k, v in self.extra.items()},
        )


def resolve_columns(feature_names: Sequence[str], columns: Sequence[str | int] | None) -> np.ndarray | None:
    """Feature names or indices -> column indices (None = all columns, no copy needed)."""
    if columns is None:
        return None
    idx = []
    for c in columns:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not -len(feature_names) <= c < len(feature_names):
                raise IndexError(f"feature column {c} out of range for {len(feature_names)} features")
            idx.append(int(c) % len(feature_names))
        elif c in feature_names:
            idx.append(list(feature_names).index(c))
        else:
            raise UnknownNameError("feature", str(c), feature_names, "feature names are the store's schema columns")
    return np.asarray(idx, dtype=np.int64)


class StoreReader:
    """A read-only view of a store's complete runs, optionally filtered by run attributes.

    ``where`` / ``exclude`` are a dict (every key must match; list values mean "any of"; keys
    are looked up in the run attrs, then in its ``config``; dotted paths allowed), a callable
    on the attrs, or command-line text such as ``"model_label!=mlp-widths300;seed=2"``
    (:func:`~autosparse.store.filters.parse_filter`). E.g. train on everything but LeNet and
    validate on LeNet::

        train = StoreReader(path, exclude={"model": "lenet_300_100"})
        val = StoreReader(path, where={"model": "lenet_300_100"})

    Passing ``schema_version`` / ``feature_names`` turns "store written by another feature
    schema" into a SchemaMismatchError up front. The run list is a snapshot taken at
    construction; :meth:`refresh` picks up runs completed since.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        where: Filter | str = None,
        exclude: Filter | str = None,
        schema_version: int | None = None,
        feature_names: Sequence[str] | None = None,
        same_schema: bool = True,
        label_kind: str | None = None,
    ) -> None:
        """``same_schema=False`` keeps runs written under another schema than the store's root (their
        features do not fit the store's columns): for `store refeaturize`, which reads only their labels,
        layers and spec, and is what such runs need."""
        from zarr.storage import LocalStore

        self.path = Path(path).absolute()
        self.root_attrs = read_root_attrs(self.path)
        names = list(feature_names) if feature_names else None
        check_schema(self.path, self.root_attrs, schema_version, names, label_kind)
        self.schema_version = int(self.root_attrs["schema_version"])
        self.feature_names: list[str] = list(self.root_attrs["feature_names"])
        self.where, self.exclude = parse_filter(where), parse_filter(exclude)
        self.same_schema = same_schema
        self._zstore = LocalStore(self.path, read_only=True)
        self.refresh()

    # ------------------------------------------------------------------ listing

    def refresh(self) -> None:
        """Re-list ``runs/``; only runs whose ``complete`` flag is set and that pass the filter are kept."""
        runs: dict[str, dict[str, Any]] = {}
        complete: dict[str, dict[str, Any]] = {}
        self._skipped_incomplete = 0
        for run_id in list_run_dirs(self.path):
            attrs = read_run_attrs(self.path, run_id)
            if not is_complete_attrs(attrs):
                self._skipped_incomplete += 1
                continue
            assert attrs is not None
            complete[run_id] = attrs
            if not matches(run_id, attrs, self.where) or (
                self.exclude is not None and matches(run_id, attrs, self.exclude)
            ):
                continue  # a run the filter leaves out is not this reader's to judge
            if self.same_schema and (
                attrs.get("schema_version") != self.schema_version or attrs.get("n_features") != len(self.feature_names)
            ):
                raise StoreError(
                    f"run {run_id!r} in {self.path} was written with schema v{attrs.get('schema_version')} / "
                    f"{attrs.get('n_features')} features, the store is v{self.schema_version} / "
                    f"{len(self.feature_names)}: recompute its features with `autosparse store refeaturize "
                    f"{self.path} --out NEW.zarr` (its labels are kept)"
                )
            runs[run_id] = attrs
        # where={"modle": …} selected nothing in silence, exclude={"modle": …} nothing away (helper): a key no
        # run records; a where key is named only when nothing was selected, an exclude key always
        checks = [("where", self.where)] if not runs else []
        if complete:
            for name, spec in [*checks, ("exclude", self.exclude)]:
                missing, known = unknown_keys(spec, complete)
                if missing:
                    log.warning(
                        "%s filter key(s) %s: no run in %s records them, so they match nothing; keys the runs "
                        "record: %s",
                        name,
                        ", ".join(map(repr, missing)),
                        self.path,
                        ", ".join(known),
                    )
        self._runs = runs
        self._run_ids = list(runs)

    @property
    def run_ids(self) -> list[str]:
        return list(self._run_ids)

    @property
    def n_runs(self) -> int:
        return len(self._run_ids)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_weights(self) -> int:
        return sum(int(a["n_weights"]) for a in self._runs.values())

    def runs(self) -> dict[str, dict[str, Any]]:
        """``{run_id: attrs}`` of the selected runs (copies: mutating them changes nothing on disk)."""
        return copy.deepcopy(self._runs)

    def attrs(self, run_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._runs[self._check_run(run_id)])

    def run_rounds(self) -> np.ndarray:
        """R per selected run, aligned with :attr:`run_ids` (to turn labels into r/R targets)."""
        return np.asarray([int(self._runs[r]["rounds"]) for r in self._run_ids], dtype=np.int64)

    def __repr__(self) -> str:
        return f"StoreReader({str(self.path)!r}, runs={self.n_runs}, weights={self.n_weights})"

    def summary(self) -> dict[str, Any]:
        """Counts a training log should record: what went in, by model and dataset."""
        by_model: Counter[str] = Counter()
        by_dataset: Counter[str] = Counter()
        weights_by_model: Counter[str] = Counter()
        for attrs in self._runs.values():
            model = str(display_name(lookup(attrs, "model")[1]))
            by_model[model] += 1
            by_dataset[str(display_name(lookup(attrs, "dataset")[1]))] += 1
            weights_by_model[model] += int(attrs["n_weights"])
        return {
            "path": str(self.path),
            "schema_version": self.schema_version,
            "n_features": self.n_features,
            "n_runs": self.n_runs,
            "n_weights": self.n_weights,
            "incomplete_runs_skipped": self._skipped_incomplete,
            "runs_by_model": dict(sorted(by_model.items())),
            "weights_by_model": dict(sorted(weights_by_model.items())),
            "runs_by_dataset": dict(sorted(by_dataset.items())),
            "rounds": sorted({int(a["rounds"]) for a in self._runs.values()}),
            "run_ids": self.run_ids,
        }

    # ------------------------------------------------------------------ access helpers

    def _check_run(self, run_id: str) -> str:
        """Return ``run_id`` if this reader may hand it out; otherwise say why not and what to do."""
        if run_id in self._runs:
            return run_id
        check_name(run_id)
        if not (self.path / RUNS / run_id).is_dir():
            raise StoreError(
                f"no run {run_id!r} in {self.path}; selected runs: {', '.join(self._run_ids) or 'none'} "
                f"(`autosparse store info {self.path}` lists every run and its status)"
            )
        foreign = not_a_run(self.path, run_id)
        if foreign is not None:
            raise StoreError(f"{run_id!r} in {self.path} is no run of this store ({foreign}); readers never read it")
        if not is_complete_attrs(read_run_attrs(self.path, run_id)):
            raise StoreError(
                f"run {run_id!r} in {self.path} is not complete (killed or still being written); "
                "rerun data generation for it — incomplete runs are never read"
            )
        raise StoreError(
            f"run {run_id!r} is excluded by this reader's filter (where={self.where!r}, exclude={self.exclude!r}) "
            "or completed after the reader was created (call refresh())"
        )

    def _array(self, run_id: str, name: str) -> Any:
        import zarr

        try:
            return zarr.open_array(store=self._zstore, path=f"{RUNS}/{run_id}/{name}", mode="r")
        except Exception as exc:
            raise StoreError(
                f"run {run_id!r}: array {name!r} is missing or its metadata is unreadable ({exc}); delete the run "
                f"and regenerate it; {validate_hint(self.path)}"
            ) from exc

    def _read(self, run_id: str, arr: Any, sel: Any, what: str) -> np.ndarray:
        try:
            return np.asarray(arr[sel])
        except Exception as exc:
            raise StoreError(
                f"run {run_id!r}: cannot read {what} ({type(exc).__name__}: {exc}); a chunk is corrupt or truncated: "
                f"delete the run and regenerate it; {validate_hint(self.path)}"
            ) from exc

    def _missing_chunk(self, run_id: str, what: str) -> StoreError:
        return StoreError(
            f"run {run_id!r}: {what} has a missing chunk file (the run was damaged after it completed); delete the "
            f"run and regenerate it; {validate_hint(self.path)}"
        )

    def _check_all_chunks(self, run_id: str, arr: Any, what: str) -> None:
        try:
            present = arr.nchunks_initialized
        except Exception as exc:
            raise StoreError(
                f"run {run_id!r}: cannot list chunks of {what} ({exc}); {validate_hint(self.path)}"
            ) from exc
        if present != arr.nchunks:
            raise self._missing_chunk(run_id, f"{what} ({arr.nchunks - present} of {arr.nchunks} chunks)")

    def _subgroup(self, run_id: str, sub: str) -> dict[str, np.ndarray]:
        import zarr

        if not (self.path / RUNS / run_id / sub / "zarr.json").exists():
            return {}
        try:
            group = zarr.open_group(store=self._zstore, path=f"{RUNS}/{run_id}/{sub}", mode="r")
            members = dict(group.arrays())
        except Exception as exc:
            raise StoreError(
                f"run {run_id!r}: {sub}/ metadata is unreadable ({exc}); delete the run and regenerate it"
            ) from exc
        out = {}
        for name, arr in sorted(members.items()):
            if arr.size:
                self._check_all_chunks(run_id, arr, f"{sub}/{name}")
            out[name] = self._read(run_id, arr, ..., f"{sub}/{name}")
        return out

    # ------------------------------------------------------------------ loading

    def load_run(self, run_id: str, *, columns: Sequence[str | int] | None = None, as_tensors: bool = False) -> RunData:
        """Load one complete, selected run (never an incomplete one): arrays, attrs, layer table, graph."""
        self._check_run(run_id)
        col_idx = resolve_columns(self.feature_names, columns)
        arrays = {}
        # columns=[] (the labels alone, as `store kept` reads them) reads no feature chunk: a damaged one
        # failed a table that never uses them
        for name in ("features", "label", "layer") if col_idx is None or len(col_idx) else ("label", "layer"):
            arr = self._array(run_id, name)
            self._check_all_chunks(run_id, arr, name)
            arrays[name] = self._read(run_id, arr, ..., name)
        attrs = copy.deepcopy(self._runs[run_id])
        n = int(attrs["n_weights"])
        feats = arrays.get("features", np.zeros((n, 0), dtype=np.float32))  # no column asked for
        names = self.feature_names
        if not self.same_schema and attrs.get("n_features") != self.n_features:
            # a run of another schema (read for its labels): its own columns, which this store cannot name
            names = [f"column_{i}" for i in range(int(attrs.get("n_features") or feats.shape[-1]))]
        features_fit = "features" not in arrays or feats.shape == (n, len(names))
        if not features_fit or arrays["label"].shape != (n,) or arrays["layer"].shape != (n,):
            raise StoreError(
                f"run {run_id!r}: array shapes {feats.shape}/{arrays['label'].shape}/{arrays['layer'].shape} do not "
                f"match n_weights={n}; delete the run and regenerate it"
            )
        data = RunData(
            run_id=run_id,
            attrs=attrs,
            feature_names=names if col_idx is None else [names[i] for i in col_idx],
            features=feats if col_idx is None else np.ascontiguousarray(feats[:, col_idx]),
            label=arrays["label"],
            layer=arrays["layer"],
            layers=copy.deepcopy(attrs.get("layers", [])),
            graph=self._subgroup(run_id, "graph"),
            extra=self._subgroup(run_id, "extra"),
        )
        return data.to_tensors() if as_tensors else data

    def iter_run_data(
        self, *, columns: Sequence[str | int] | None = None, as_tensors: bool = False
    ) -> Iterator[RunData]:
        """Every selected run in turn (for per-network work such as GNN batches), as :meth:`load_run` loads it."""
        for run_id in self._run_ids:
            yield self.load_run(run_id, columns=columns, as_tensors=as_tensors)

    # ------------------------------------------------------------------ streaming

    def n_batches(self, batch_size: int, *, runs: Sequence[str] | None = None, drop_last: bool = False) -> int:
        n = sum(int(self._runs[r]["n_weights"]) for r in (runs or self._run_ids))
        return n // batch_size if drop_last else -(-n // batch_size)

    def iter_batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        columns: Sequence[str | int] | None = None,
        runs: Sequence[str] | None = None,
        buffer_chunks: int = 4,
        drop_last: bool = False,
        prefetch: bool = True,
    ) -> Iterator[Batch]:
        """Stream :class:`Batch` es over the selected runs (or the ``runs`` subset), one epoch.

        Memory is bounded by ``buffer_chunks`` chunks (~4 MiB each by default) plus one batch.
        With ``shuffle`` the chunk order across runs is permuted and rows are permuted within
        each buffer; for a new order each epoch pass ``seed=base_seed + epoch``. Every row
        appears exactly once; only the final batch can be short (dropped with ``drop_last``).
        ``prefetch`` decompresses the next buffer in a background thread while the caller trains.
        """
        import torch

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if buffer_chunks < 1:
            raise ValueError(f"buffer_chunks must be >= 1, got {buffer_chunks}")
        selected = list(self._run_ids) if runs is None else [self._check_run(r) for r in runs]
        index_of = {r: i for i, r in enumerate(self._run_ids)}
        col_idx = resolve_columns(self.feature_names, columns)

        handles: dict[str, tuple[Any, Any, Any]] = {}
        units: list[tuple[str, int, int]] = []
        for run_id in selected:
            fa, la, ya = (self._array(run_id, n) for n in ("features", "label", "layer"))
            n = int(self._runs[run_id]["n_weights"])
            if fa.shape[0] != n or la.shape != (n,) or ya.shape != (n,):
                raise StoreError(
                    f"run {run_id!r}: array lengths {fa.shape[0]}/{la.shape}/{ya.shape} disagree with n_weights={n}; "
                    "delete the run and regenerate it"
                )
            handles[run_id] = (fa, la, ya)
            step = int(fa.chunks[0])
            units.extend((run_id, a, min(a + step, n)) for a in range(0, n, step))

        rng = np.random.default_rng(seed)
        if shuffle:
            units = [units[i] for i in rng.permutation(len(units))]
        groups = [units[i : i + buffer_chunks] for i in range(0, len(units), buffer_chunks)]

        def load(group: list[tuple[str, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            fs, ls, rs, ys = [], [], [], []
            for run_id, a, b in group:
                fa, la, ya = handles[run_id]
                f = self._read(run_id, fa, slice(a, b), f"features rows {a}:{b}")
                lab = self._read(run_id, la, slice(a, b), f"label rows {a}:{b}")
                lay = self._read(run_id, ya, slice(a, b), f"layer rows {a}:{b}")
                # Missing chunk files read back as the fill values (NaN / -1), never as real data.
                if np.isnan(f[0]).any() or (lab < 0).any() or (lay < 0).any():
                    raise self._missing_chunk(run_id, f"rows {a}:{b}")
                fs.append(f if col_idx is None else f[:, col_idx])
                ls.append(lab)
                ys.append(lay)
                rs.append(np.full(b - a, index_of[run_id], dtype=np.int64))
            return (
                np.concatenate(fs),
                np.concatenate(ls).astype(np.int64),
                np.concatenate(rs),
                np.concatenate(ys).astype(np.int64),
            )

        n_cols = self.n_features if col_idx is None else len(col_idx)
        carry = (
            np.empty((0, n_cols), np.float32),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
        )
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-prefetch") if prefetch else None
        try:
            pending: Future[Any] | None = pool.submit(load, groups[0]) if pool and groups else None
            for j, group in enumerate(groups):
                if pool is not None:
                    assert pending is not None
                    loaded = pending.result()
                    pending = pool.submit(load, groups[j + 1]) if j + 1 < len(groups) else None
                else:
                    loaded = load(group)
                buf = tuple(np.concatenate([c, x]) for c, x in zip(carry, loaded, strict=True))
                if shuffle:
                    perm = rng.permutation(len(buf[0]))
                    buf = tuple(np.take(x, perm, axis=0) for x in buf)  # ~3x faster than x[perm] for 2-D
                full = len(buf[0]) // batch_size * batch_size
                for a in range(0, full, batch_size):
                    yield Batch(*(torch.from_numpy(x[a : a + batch_size]) for x in buf))
                carry = tuple(x[full:] for x in buf)
            if len(carry[0]) and not drop_last:
                yield Batch(*(torch.from_numpy(np.ascontiguousarray(x)) for x in carry))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["Batch", "RunData", "StoreReader", "resolve_columns"]
