"""Writing the feature store: one zarr group per IRP run, marked complete only when durable.

The contract the rest of the pipeline relies on:

* the root attributes (schema version, feature names) are written once, when the store is
  created, and never touched again — so any number of processes can add runs concurrently
  without a read-modify-write race on shared metadata (runs are discovered by listing ``runs/``);
* a run is written by one worker; ``complete: true`` is set only after every chunk is on disk,
  so a job killed at any point leaves a run that readers ignore and the next attempt rewrites;
* every failure a user can hit (wrong path, another schema, a corrupt file) is a
  :class:`~autosparse.core.errors.StoreError` / :class:`~autosparse.core.errors.SchemaMismatchError`
  whose message names the fix.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from autosparse.core.errors import ConfigError, StoreError
from autosparse.core.folders import check_output_path
from autosparse.core.versions import package_version, package_versions
from autosparse.store.durability import fsync_path, fsync_tree, unpublish_run
from autosparse.store.filters import Filter
from autosparse.store.layout import (
    FEATURES_FILL,
    LABEL_FILL,
    LABEL_KIND,
    LAYER_FILL,
    RUNS,
    STORE_FORMAT,
    StorageOptions,
    check_name,
    check_outside_stores,
    check_schema,
    is_complete_attrs,
    list_run_dirs,
    not_a_run,
    read_root_attrs,
    read_run_attrs,
    run_dir,
    run_is_complete,
)
from autosparse.store.locks import claim_run, holder_name, is_being_written, run_lock
from autosparse.store.reader import StoreReader
from autosparse.store.run_inputs import (
    check_attrs,
    check_features,
    check_label,
    check_layer,
    normalise_arrays,
    normalise_table,
)
from autosparse.store.validate import ValidationReport, validate_store

log = logging.getLogger(__name__)

#: Rows handed to zarr per write call: big enough that zarr compresses several chunks in parallel,
#: small enough that the write temporaries stay bounded.
_WRITE_BLOCK_BYTES = 64 * 2**20

#: Packages whose versions a run records (numcodecs and torch_geometric only when installed):
#: the ones that can change a stored value, so drift between runs is diagnosable.
RECORDED_PACKAGES = ("autosparse", "numpy", "torch", "zarr", "numcodecs", "torch_geometric")


def _generic_chunks(shape: tuple[int, ...], itemsize: int, chunk_bytes: int) -> tuple[int, ...]:
    """Chunk an arbitrary graph/extra array by splitting its longest axis into ~chunk_bytes pieces.

    ``edge_index`` is (2, E): splitting the first axis (as one would for row tables) would make a
    single giant chunk, so the longest axis is the one that grows with the network.
    """
    if not shape:
        return ()
    if min(shape) == 0:
        return tuple(max(1, s) for s in shape)
    axis = int(np.argmax(shape))
    other = int(np.prod(shape)) // shape[axis] * itemsize
    chunks = list(shape)
    chunks[axis] = max(1, min(shape[axis], chunk_bytes // max(1, other)))
    return tuple(chunks)


class FeatureStore:
    """A zarr feature store on local disk: create it, add runs, list and delete them.

    ``FeatureStore(path, schema_version=1, feature_names=[...])`` creates the store if ``path``
    does not exist (``create=True``) and otherwise opens it, checking that it was written with
    the same feature schema — mixing schemas in one store would silently misalign columns.
    Use :func:`open_store` to open a store without knowing its schema.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        schema_version: int,
        feature_names: Sequence[str],
        create: bool = True,
        label_kind: str = LABEL_KIND,
        storage: StorageOptions | None = None,
        durable: bool = True,
    ) -> None:
        self.path = Path(path).absolute()
        self.storage = storage or StorageOptions()
        #: fsync a run's files before marking it complete (survives power loss, not just kill -9).
        self.durable = durable
        if isinstance(feature_names, str):  # a string is a sequence of one-letter names (helper)
            raise ConfigError(
                f"feature_names takes a list of names, got the string {feature_names!r}: pass [{feature_names!r}], "
                "or autosparse.features.FEATURE_NAMES for the whole schema"
            )
        feature_names = [str(f) for f in feature_names]
        twice = sorted({f for f in feature_names if feature_names.count(f) > 1})
        if twice:
            raise ConfigError(f"feature_names names {twice} more than once: give each feature once")
        if not feature_names:
            raise ConfigError("feature_names is empty: give at least one (autosparse.features.FEATURE_NAMES: all)")
        if isinstance(schema_version, bool) or not isinstance(schema_version, (int, np.integer)):
            raise ConfigError(
                f"schema_version must be an int, got {schema_version!r} (autosparse.features.SCHEMA_VERSION: this code's)"
            )
        if create and not self._exists():
            self._create(int(schema_version), feature_names, label_kind)
        attrs = read_root_attrs(self.path)
        check_schema(self.path, attrs, int(schema_version), feature_names, label_kind, writing=True)
        self._load_root(attrs)

    @classmethod
    def _open(cls, path: Path, storage: StorageOptions | None, durable: bool) -> FeatureStore:
        self = cls.__new__(cls)
        self.path = path.absolute()
        self.storage = storage or StorageOptions()
        self.durable = durable
        self._load_root(read_root_attrs(self.path))
        return self

    def _load_root(self, attrs: Mapping[str, Any]) -> None:
        self.schema_version = int(attrs["schema_version"])
        self.feature_names: list[str] = list(attrs["feature_names"])
        self.label_kind = str(attrs["label_kind"])
        self.root_attrs = dict(attrs)

    def _exists(self) -> bool:
        return store_exists(self.path)

    def _create(self, schema_version: int, feature_names: list[str], label_kind: str) -> None:
        """Build the root in a sibling temp dir and rename it into place.

        The rename is atomic, so two workers racing to create the same store end with exactly one
        root (the loser sees it exists and just opens it) and a crash never leaves a half-made root.
        """
        import zarr
        from zarr.storage import LocalStore

        check_output_path(self.path, flag="--store")
        check_outside_stores(self.path, "--store")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex}"
        attrs = {
            "schema_version": schema_version,
            "feature_names": feature_names,
            "label_kind": label_kind,
            "store_format": STORE_FORMAT,
            "created_by": f"autosparse {package_version('autosparse') or 'unknown'}",
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            store = LocalStore(tmp)
            zarr.create_group(store=store, attributes=attrs)
            zarr.create_group(store=store, path=RUNS)
            if self.durable:
                fsync_tree(tmp)
            try:
                os.rename(tmp, self.path)  # replaces an empty directory, fails on a non-empty one
            except OSError:
                if not self._exists():
                    raise
                log.debug("store %s was created concurrently; opening it", self.path)
            else:
                if self.durable:
                    fsync_path(self.path.parent)
                log.info(
                    "created feature store %s (schema v%d, %d features)", self.path, schema_version, len(feature_names)
                )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ properties / listing

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, schema_version={self.schema_version}, n_features={self.n_features})"

    def run_ids(self) -> list[str]:
        """Every run group on disk, complete or not."""
        return list_run_dirs(self.path)

    def run_attrs(self, run_id: str) -> dict[str, Any]:
        """A run's attributes (complete or not); StoreError if there is no such run."""
        attrs = read_run_attrs(self.path, check_name(run_id))
        if attrs is None:
            raise StoreError(f"no run {run_id!r} in {self.path}; known runs: {', '.join(self.run_ids()) or 'none'}")
        return attrs

    def is_complete(self, run_id: str) -> bool:
        """True only for a run whose ``complete`` flag was written; corrupt metadata counts as not complete.

        Data generation asks this to skip finished runs; a run with unreadable metadata is not
        trustworthy, so it is reported as not complete and gets regenerated.
        """
        return run_is_complete(self.path, check_name(run_id))

    def complete_runs(self) -> list[str]:
        return [r for r in self.run_ids() if self.is_complete(r)]

    def incomplete_runs(self) -> list[str]:
        """Runs that were started but not finished (killed jobs, or being written right now)."""
        return [r for r in self.run_ids() if not self.is_complete(r)]

    def is_being_written(self, run_id: str) -> bool:
        """Whether a live process holds this run's write lock (as opposed to a killed job's leftovers)."""
        return is_being_written(self.path, run_id)

    def claim(self, run_id: str) -> contextlib.AbstractContextManager[bool]:
        """``with store.claim(run_id) as mine:`` — hold the run for a whole job, or learn that a live
        process does (``mine`` is False: skip it). ``write_run`` inside the block keeps the claim."""
        return claim_run(self.path, check_name(run_id))

    # ------------------------------------------------------------------ writing

    def delete_run(self, run_id: str) -> bool:
        """Delete a run (complete or not); returns whether it existed."""
        check_name(run_id)
        with run_lock(self.path, run_id):
            existed = unpublish_run(self.path, run_id, durable=self.durable)
        if existed:
            log.info("deleted run %s from %s", run_id, self.path)
        return existed

    def write_run(
        self,
        run_id: str,
        *,
        features: np.ndarray,
        label: np.ndarray,
        layer: np.ndarray | None = None,
        layers_table: Sequence[Mapping[str, Any]],
        attrs: Mapping[str, Any],
        graph: Mapping[str, np.ndarray] | None = None,
        extra: Mapping[str, np.ndarray] | None = None,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Write one run and mark it complete; returns the run's final attributes.

        ``features`` is (n_weights, n_features) with rows = the prunable layers' flattened weights
        concatenated in ``layers_table`` order (entries: name, shape, kind; offset/numel are
        filled in and checked). ``label`` is the IRP round each weight was pruned in, in
        [0, attrs["rounds"]]. ``layer`` (the row's index into the table) is derived from the
        table when omitted and checked against it when given. ``attrs`` must be JSON-like and
        include ``rounds``; put the run's ``config`` (model, dataset, seed, IRP settings),
        ``accuracies`` and ``densities`` per round there.

        A leftover incomplete run of the same id (a killed job) is deleted and rewritten from
        scratch; a complete one is an error unless ``overwrite=True`` — a finished run is never
        recomputed by accident.
        """
        check_name(run_id)
        table = normalise_table(layers_table)
        n = sum(e["numel"] for e in table)
        user_attrs, rounds = check_attrs(attrs)
        feats = check_features(features, n, self.feature_names)
        lab = check_label(label, n, rounds)
        lay = check_layer(layer, table)
        graph_arrays = normalise_arrays(graph, "graph")
        extra_arrays = normalise_arrays(extra, "extra")

        run_attrs = {
            **user_attrs,
            "versions": {**package_versions(RECORDED_PACKAGES, missing=None), **user_attrs.get("versions", {})},
            "run_id": run_id,
            "n_weights": n,
            "n_features": self.n_features,
            "n_layers": len(table),
            "layers": table,
            "schema_version": self.schema_version,
            "storage": self.storage.as_dict(),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "written_by": holder_name(),
            "complete": False,
        }
        with run_lock(self.path, run_id):
            foreign = not_a_run(self.path, run_id)
            if foreign is not None:  # never replaced: it is not this store's run (a scorer, a copy, ...)
                raise StoreError(
                    f"{run_dir(self.path, run_id)} is in the way of run {run_id!r} and is no run of this store "
                    f"({foreign}); move it out of {RUNS}/ and rerun"
                )
            try:
                previous = read_run_attrs(self.path, run_id)
            except StoreError:
                previous = None  # unreadable metadata: not trustworthy, so it is replaced
            if is_complete_attrs(previous) and not overwrite:
                raise StoreError(
                    f"run {run_id!r} is already complete in {self.path}; skip it (check store.is_complete) "
                    "or pass overwrite=True / delete_run() to recompute it"
                )
            if unpublish_run(self.path, run_id, durable=self.durable):
                what = "complete" if is_complete_attrs(previous) else "incomplete (killed or failed)"
                log.info("run %s: replacing a previous %s run", run_id, what)
            t0 = time.perf_counter()
            try:
                self._write_group(run_id, run_attrs, feats, lab, lay, graph_arrays, extra_arrays)
            except BaseException:
                with contextlib.suppress(Exception):
                    unpublish_run(self.path, run_id, durable=self.durable)
                raise
            seconds = time.perf_counter() - t0
        log.info("run %s: wrote %d weights x %d features in %.2fs", run_id, n, self.n_features, seconds)
        return {**run_attrs, "complete": True}

    def _write_group(
        self,
        run_id: str,
        run_attrs: dict[str, Any],
        feats: np.ndarray,
        lab: np.ndarray,
        lay: np.ndarray,
        graph: dict[str, np.ndarray],
        extra: dict[str, np.ndarray],
    ) -> None:
        import zarr
        from zarr.codecs import TransposeCodec
        from zarr.storage import LocalStore

        store = LocalStore(self.path)
        group = zarr.create_group(store=store, path=f"{RUNS}/{run_id}", attributes=run_attrs)
        n, f = feats.shape
        rows = self.storage.rows_per_chunk(4 * f)
        config = {"write_empty_chunks": True}
        fa = group.create_array(
            "features",
            shape=feats.shape,
            dtype="float32",
            chunks=(rows, f),
            filters=[TransposeCodec(order=(1, 0))] if self.storage.transpose else None,
            compressors=self.storage.compressors(4),
            fill_value=FEATURES_FILL,
            dimension_names=("weight", "feature"),
            config=config,
        )
        step = rows * max(1, _WRITE_BLOCK_BYTES // (rows * 4 * f))
        for a in range(0, n, step):
            fa[a : a + step] = feats[a : a + step]
        for name, data, fill in (("label", lab, LABEL_FILL), ("layer", lay, LAYER_FILL)):
            arr = group.create_array(
                name,
                shape=data.shape,
                dtype=data.dtype,
                chunks=(rows,),
                compressors=self.storage.compressors(data.dtype.itemsize),
                fill_value=fill,
                dimension_names=("weight",),
                config=config,
            )
            arr[:] = data
        for sub, arrays in (("graph", graph), ("extra", extra)):
            if not arrays:
                continue
            g = group.create_group(sub)
            for name, data in arrays.items():
                arr = g.create_array(
                    name,
                    shape=data.shape,
                    dtype=data.dtype,
                    chunks=_generic_chunks(data.shape, data.dtype.itemsize, self.storage.chunk_bytes),
                    compressors=self.storage.compressors(data.dtype.itemsize),
                    fill_value=0,
                    config=config,
                )
                if data.size:
                    arr[...] = data
        directory = run_dir(self.path, run_id)
        if self.durable:
            fsync_tree(directory)
        # The commit point: zarr rewrites zarr.json via write-to-temp + rename, so readers see
        # either the old (incomplete) or the new (complete) metadata, never a torn file.
        group.attrs.update({"complete": True})
        if self.durable:
            fsync_path(directory / "zarr.json")
            fsync_path(directory)

    # ------------------------------------------------------------------ conveniences

    def reader(
        self,
        *,
        where: Filter | str = None,
        exclude: Filter | str = None,
        schema_version: int | None = None,
        feature_names: Sequence[str] | None = None,
        same_schema: bool = True,
        label_kind: str | None = None,
    ) -> StoreReader:
        """A :class:`StoreReader` over this store's complete runs, with its keywords.

        Explicit keywords, not ``**kwargs``: a type checker passed ``wher=`` (helper)."""
        return StoreReader(
            self.path,
            where=where,
            exclude=exclude,
            schema_version=schema_version,
            feature_names=feature_names,
            same_schema=same_schema,
            label_kind=label_kind,
        )

    def validate(
        self, *, check_chunks: bool = True, code_schema: tuple[int, Sequence[str]] | None = None
    ) -> ValidationReport:
        """:func:`validate_store` on this store."""
        return validate_store(self.path, check_chunks=check_chunks, code_schema=code_schema)


def store_exists(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds something a store would be opened from (an empty folder is created into)."""
    path = Path(path)
    return path.exists() and not (path.is_dir() and not any(path.iterdir()))


def open_store(
    path: str | os.PathLike[str], *, storage: StorageOptions | None = None, durable: bool = True
) -> FeatureStore:
    """Open an existing store whatever its schema (StoreError if ``path`` is not a store)."""
    return FeatureStore._open(Path(path), storage, durable)


__all__ = ["RECORDED_PACKAGES", "FeatureStore", "open_store", "store_exists"]
