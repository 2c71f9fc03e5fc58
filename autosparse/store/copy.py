"""Copy complete runs from one store into another: combining sources that were generated apart.

Why: ``train-scorer`` reads one store, while source runs are generated wherever there are cores
— on another machine, or into a store of their own so an experiment cannot touch the shipped
scorers' store (``configs/gen/fmnist_deep_rewind.yaml``). Runs go through the reader and the
writer rather than as copied directories, so a copied run is checked like any written one, is
published atomically (a reader never sees half of it), and two copies into one store divide the
runs between them through the writer's per-run claims.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from autosparse.core.errors import ConfigError, SchemaMismatchError, StoreError
from autosparse.core.folders import check_output_path
from autosparse.features.schema import FEATURE_NAMES, SCHEMA_VERSION
from autosparse.store.filters import Filter, parse_filter, unmatched_values
from autosparse.store.layout import RESERVED_ATTRS, check_outside_stores, read_root_attrs
from autosparse.store.locks import wait_for_release
from autosparse.store.reader import RunData, StoreReader
from autosparse.store.writer import FeatureStore

log = logging.getLogger(__name__)


@dataclass
class CopyReport:
    """Which runs :func:`copy_runs` wrote, found already complete, or left to another live copy."""

    copied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)  # written by another process while this one waited
    #: runs the source could not give (a corrupt chunk), with why: the others are copied all the same
    failed: dict[str, str] = field(default_factory=dict)
    waited: set[str] = field(default_factory=set, repr=False)

    def format(self) -> str:
        return (
            f"{len(self.copied)} run(s) copied, {len(self.already)} already complete in the target, "
            f"{len(self.elsewhere)} written by another process while this one waited"
            + (f", {len(self.failed)} unreadable in the source (not copied)" if self.failed else "")
        )


def _check_same_schema(src: Path, version: int, names: list[str], dst: Path) -> None:
    """Runs of two feature schemas cannot share a store; the fix is to bring the older one up to
    the newer schema (its labels kept), which the writer's generic schema error cannot say here."""
    if not (dst / "zarr.json").exists():
        return  # a new target: created with the source's schema
    attrs = read_root_attrs(dst)
    have_v, have_names = attrs["schema_version"], list(attrs["feature_names"])
    if have_v == version and have_names == list(names):
        return
    if max(version, have_v) > SCHEMA_VERSION:
        newer = src if version > have_v else dst
        raise SchemaMismatchError(
            f"cannot copy runs of {src} (feature schema v{version}) into {dst} (v{have_v}): {newer} was written by a "
            f"newer autosparse than this one (schema v{SCHEMA_VERSION}); run the copy with that version"
        )
    # the stores to bring up to this code's schema: not simply the destination where the versions tie
    # (refeaturizing it, current already, led to the same error again; hunt)
    current = (SCHEMA_VERSION, list(FEATURE_NAMES))
    stale = [p for p, key in ((src, (version, list(names))), (dst, (have_v, have_names))) if key != current]
    stale = stale or [src if version < have_v else dst]
    commands = " and ".join(f"`autosparse store refeaturize {p} --out NEW.zarr`" for p in stale)
    raise SchemaMismatchError(
        f"cannot copy runs of {src} (feature schema v{version}) into {dst} (v{have_v}"
        + (", other feature columns" if have_v == version else "")
        + f"): one store holds one schema. Recompute the features of {' and '.join(map(str, stale))} under this "
        f"autosparse's schema, keeping the IRP labels: {commands}, then copy with the new store in its place"
    )


def copy_runs(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, where: Filter | str = None) -> CopyReport:
    """Copy every complete run of ``src`` matching ``where`` into ``dst`` (created with ``src``'s
    feature schema if missing; an existing ``dst`` must have the same schema). Runs already complete
    in ``dst`` are skipped, so an interrupted copy resumes. ``src`` is never written."""
    src_path, dst_path = Path(src).absolute(), Path(dst).absolute()
    # resolved for the comparisons: `../runs/s.zarr` or a link to the source is the source (it was copied
    # into itself, "0 copied"; `s.zarr/../s.zarr` was refused as a store inside itself; hunt)
    if src_path.resolve() == dst_path.resolve():
        raise ConfigError(f"the target store must differ from the source {src}")
    if dst_path.resolve().is_relative_to(src_path.resolve()) or src_path.resolve().is_relative_to(dst_path.resolve()):
        # a copy inside the source read as an incomplete run of it, which `store repair` would delete (review)
        raise ConfigError(f"--out {dst} must be a store outside {src}, and not around it: the source is never changed")
    reader = StoreReader(src_path, where=where)
    # as --holdout says; every run's record read again only where a filter names values
    if where and (unmatched := unmatched_values(parse_filter(where), StoreReader(src_path).runs())):
        log.warning("--runs: %s match no run of %s, so nothing of it is copied", ", ".join(unmatched), src)
    if reader.n_runs == 0:
        raise StoreError(
            f"no complete run of {src}" + (f" matches {where!r}" if where else "") + f"; `autosparse store info {src}` "
            "lists the runs and their columns"
        )
    _check_same_schema(src_path, reader.schema_version, reader.feature_names, dst_path)
    check_output_path(dst_path, flag="--out")  # the flag this command has (the store writer would say --store)
    check_outside_stores(dst_path, "--out")
    target = FeatureStore(dst_path, schema_version=reader.schema_version, feature_names=reader.feature_names)
    report = CopyReport()
    pending = list(reader.run_ids)
    while pending:
        held = []
        for run_id in pending:
            if target.is_complete(run_id):
                (report.elsewhere if run_id in report.waited else report.already).append(run_id)
                continue
            with target.claim(run_id) as mine:
                if not mine:
                    held.append(run_id)
                    continue
                if target.is_complete(run_id):  # completed between the check and the claim
                    (report.elsewhere if run_id in report.waited else report.already).append(run_id)
                    continue
                try:
                    run = reader.load_run(run_id)
                except StoreError as exc:  # one damaged run stopped the copy of every other (hunt)
                    report.failed[run_id] = str(exc)
                    continue
                _copy_run(run, target, src_path)
                report.copied.append(run_id)
        if held:
            # another copy is writing them: wait, then take over what it left (a copy killed mid-run had
            # left one incomplete and this one exited 0 saying "being written by another process", helper)
            wait_for_release(dst_path, held)
            report.waited.update(held)
        pending = held
    return report


def _copy_run(run: RunData, target: FeatureStore, src_path: Path) -> None:
    run_id = run.run_id
    attrs = {k: v for k, v in run.attrs.items() if k not in RESERVED_ATTRS}
    note = {"from_store": str(src_path), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    attrs["copied"] = [*attrs.get("copied", []), note]
    target.write_run(
        run_id,
        features=run.features,
        label=run.label,
        layer=run.layer,
        layers_table=run.layers,
        attrs=attrs,
        graph=run.graph,
        extra=run.extra,
    )
