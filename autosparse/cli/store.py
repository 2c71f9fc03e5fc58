"""``autosparse store info|validate|delete-run|repair|refeaturize|copy|kept``: inspect, check, mend, upgrade and
combine stores, and read one run's IMP allocation."""

from __future__ import annotations

import argparse

from autosparse.cli.arguments import add_arguments
from autosparse.core.errors import failure_lines


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser(
        "store",
        help="inspect, validate, repair, refeaturize or combine feature stores",
        description="Inspect, validate, repair, refeaturize or combine zarr feature stores.",
        arguments=add_options,
    )


def add_options(p: argparse.ArgumentParser) -> None:
    from autosparse.core.executors import ExecutorConfig

    ss = p.add_subparsers(dest="store_command", metavar="ACTION")
    ss.required = True
    info = ss.add_parser(
        "info", help="summary and a table of every run: id, model label, dataset, seed, rounds, result, status"
    )
    info.add_argument("path", help="the zarr store")
    info.set_defaults(func=_info)
    val = ss.add_parser(
        "validate", help="check every run and chunk, and the schema against this autosparse; exit 1 if broken"
    )
    val.add_argument("path", help="the zarr store")
    val.add_argument("--quick", action="store_true", help="check metadata and shapes only, not every chunk")
    val.set_defaults(func=_validate)
    delete = ss.add_parser(
        "delete-run",
        help="delete runs (complete or not); a later `autosparse gen` regenerates them",
        description="Delete runs from a store. A later `autosparse gen` with the same config regenerates exactly "
        "those (complete runs are skipped). Run ids are listed by `autosparse store info`.",
    )
    delete.add_argument("path", help="the zarr store")
    delete.add_argument(
        "run_ids", nargs="+", metavar="RUN_ID", help="ids of the runs to delete (`store info` lists them)"
    )
    delete.set_defaults(func=_delete)
    repair = ss.add_parser(
        "repair",
        help="drop broken and incomplete runs so a `gen` rerun regenerates them",
        description="Validate the store and drop every broken run and every incomplete run that no process is "
        "writing; intact runs are never touched. Then rerun `autosparse gen` with the same config.",
    )
    repair.add_argument("path", help="the zarr store")
    repair.add_argument("--quick", action="store_true", help="find broken runs by metadata only, not every chunk")
    repair.add_argument("--dry-run", action="store_true", help="only list what would be dropped")
    repair.set_defaults(func=_repair)
    refeat = ss.add_parser(
        "refeaturize",
        help="recompute every complete run's features under this autosparse's schema into a new store",
        description="Recompute the features at initialisation of every complete run of SRC from its recorded spec "
        "(model, data, seed, pruning batch) under this autosparse's feature schema, keeping its IRP labels, into the "
        "store --out (created, or extended: complete runs there are skipped, so an interrupted call resumes). SRC is "
        "never changed and IRP is never rerun. Example: autosparse store refeaturize runs/v1.zarr --out runs/v2.zarr "
        "--executor process --workers 2",
    )
    refeat.add_argument("path", metavar="SRC", help="the store to read (never written)")
    refeat.add_argument("--out", required=True, metavar="DST", help="the store to write (a new path, or one to resume)")
    add_arguments(refeat, ExecutorConfig)
    refeat.add_argument(
        "--data-root", default=None, help="where the runs' datasets are now, if not where they were generated"
    )
    refeat.set_defaults(func=_refeaturize)
    copy = ss.add_parser(
        "copy",
        help="copy complete runs (all, or those matching --runs) into another store, e.g. to train on both",
        description="Copy every complete run of SRC matching --runs into the store --out (created with SRC's "
        "feature schema, or extended: runs complete there are skipped, so an interrupted copy resumes). SRC is never "
        "changed; runs another process is writing into --out are waited for, then copied if it left them unfinished. "
        "Example: autosparse store copy runs/sources_deep_rewind.zarr --out runs/combined.zarr",
    )
    copy.add_argument("path", metavar="SRC", help="the store to read (never written)")
    copy.add_argument("--out", required=True, metavar="DST", help="the store to copy into (created if missing)")
    copy.add_argument(
        "--runs",
        default=None,
        metavar="FILTER",
        help="only runs matching this filter, as train-scorer's --holdout: e.g. 'model_label!=vgg11-width0.25'",
    )
    copy.set_defaults(func=_copy)
    kept = ss.add_parser(
        "kept",
        help="weights kept per layer after each IRP round of one run: the allocation the scorer learns from",
        description="Print, for one complete run, every layer's kept weights after each IRP round (from the stored "
        "labels; r0 = dense), with the density and test accuracy the run recorded. Example: autosparse store kept "
        "runs/sources.zarr vgg11-width0.25__fashion-mnist__s0__84dd238f70 --last 3",
    )
    kept.add_argument("path", help="the zarr store")
    kept.add_argument("run_id", metavar="RUN_ID", help="a complete run's id (`store info` lists them)")
    kept.add_argument("--last", type=int, default=None, metavar="N", help="only the last N rounds (default: all)")
    kept.set_defaults(func=_kept)


def _info(args: argparse.Namespace) -> int:
    from autosparse.store import store_info

    print(store_info(args.path))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from autosparse.features.schema import FEATURE_NAMES, SCHEMA_VERSION
    from autosparse.store import validate_store

    report = validate_store(args.path, check_chunks=not args.quick, code_schema=(SCHEMA_VERSION, FEATURE_NAMES))
    print(report.format())
    return 0 if report.ok else 1


def _delete(args: argparse.Namespace) -> int:
    from autosparse.core.errors import StoreError
    from autosparse.store import open_store

    store = open_store(args.path)
    known = set(store.run_ids())
    unknown = [r for r in args.run_ids if r not in known]
    if unknown:
        raise StoreError(
            f"no run {', '.join(map(repr, unknown))} in {args.path}; `autosparse store info {args.path}` lists the run "
            "ids (nothing was deleted)"
        )
    for run_id in dict.fromkeys(args.run_ids):  # an id given twice is deleted, and said, once
        store.delete_run(run_id)
        print(f"deleted {run_id}")
    print(f"rerun `autosparse gen` with the same config to regenerate {'it' if len(args.run_ids) == 1 else 'them'}")
    return 0


def _repair(args: argparse.Namespace) -> int:
    from autosparse.store import repair_store, validate_store

    report = validate_store(args.path, check_chunks=not args.quick)
    dropped = repair_store(args.path, dry_run=args.dry_run, report=report)
    verb = "would drop" if args.dry_run else "dropped"
    for run_id, why in dropped:
        print(f"{verb} {run_id}: {why}")
    schema_runs = report.schema_runs
    if schema_runs:  # left alone on purpose: say so, or "nothing to repair" reads as "all is well"
        print(
            f"left {len(schema_runs)} run(s) of another feature schema than the store's; their labels are intact: "
            f"`autosparse store refeaturize {args.path} --out NEW.zarr` recomputes their features"
        )
    if not dropped and not schema_runs:
        print(
            f"nothing to repair in {args.path}: no run is damaged or left incomplete (runs being written now are left alone)"
        )
    elif dropped and not args.dry_run:
        print(
            f"rerun the command that wrote the {len(dropped)} dropped run(s) to make them again: `autosparse gen` with the "
            "same config, or the `store copy` / `store refeaturize` that made this store (seconds, no IRP)"
        )
    return 0


def _refeaturize(args: argparse.Namespace) -> int:
    from autosparse.core.config import from_dict, given
    from autosparse.core.executors import ExecutorConfig
    from autosparse.sources import refeaturize_store

    where = from_dict(ExecutorConfig, given(args, ExecutorConfig))
    report = refeaturize_store(args.path, args.out, **where.options(), data_root=args.data_root)
    done_here = [o for o in report.outcomes if o.ok and not (o.value or {}).get("skipped")]
    elsewhere = [o for o in report.outcomes if o.ok and (o.value or {}).get("skipped")]
    total = len(report.outcomes) + len(report.already_done)
    print(
        f"{total} complete runs in {args.path}: {len(done_here)} refeaturized now, {len(report.already_done)} already "
        f"in {args.out}, "
        + (f"{len(elsewhere)} refeaturized by another process, " if elsewhere else "")
        + f"{len(report.failed)} failed"
    )
    if report.not_complete:
        print(f"skipped {len(report.not_complete)} incomplete or unreadable run(s) of {args.path}")
    for line in failure_lines((o.key, o.error) for o in report.failed):
        print(line)
    print(f"store: {args.out}  (inspect with `autosparse store info {args.out}`)")
    return 1 if report.failed else 0


def _kept(args: argparse.Namespace) -> int:
    from autosparse.core.errors import ConfigError
    from autosparse.store.kept import kept_per_round

    if args.last is not None and args.last < 1:
        raise ConfigError(f"--last must be at least 1 (got {args.last}); leave it out to see every round")
    print(kept_per_round(args.path, args.run_id).format(args.last))
    return 0


def _copy(args: argparse.Namespace) -> int:
    from autosparse.store.copy import copy_runs

    report = copy_runs(args.path, args.out, where=args.runs)
    for run_id, why in report.failed.items():
        print(f"FAILED {run_id}: {why}")
    print(f"{args.path} -> {args.out}: {report.format()}")
    return 1 if report.failed else 0
