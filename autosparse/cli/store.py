"""``autosparse store info|validate PATH``: inspect and check a feature store."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "store", help="inspect or validate a feature store", description="Inspect or validate a zarr feature store."
    )
    ss = p.add_subparsers(dest="store_command", metavar="ACTION")
    ss.required = True
    info = ss.add_parser("info", help="summary: runs by model/dataset, weights, size on disk (metadata only)")
    info.add_argument("path")
    info.set_defaults(func=_info)
    val = ss.add_parser("validate", help="check every run and chunk; exit 1 if anything is broken")
    val.add_argument("path")
    val.add_argument("--quick", action="store_true", help="check metadata and shapes only, not every chunk")
    val.set_defaults(func=_validate)


def _info(args: argparse.Namespace) -> int:
    from autosparse.store import store_info

    print(store_info(args.path))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from autosparse.store import validate_store

    report = validate_store(args.path, check_chunks=not args.quick)
    print(report.format())
    return 0 if report.ok else 1
