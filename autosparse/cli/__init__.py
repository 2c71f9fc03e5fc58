"""The ``autosparse`` command line.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``;
modules are discovered automatically, so a new subcommand is a new file. Packages outside the
library add subcommands through the ``autosparse.commands`` entry-point group (``gen`` comes
from ``data_gen``, which sits above the library and must not be imported by it). A user error
(:class:`~autosparse.core.errors.AutosparseError`) is printed in one line and exits with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import pkgutil
import sys
from collections.abc import Sequence

from autosparse import __version__
from autosparse.core.errors import AutosparseError

ENTRY_POINTS = "autosparse.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autosparse",
        description="Learn to prune neural networks at initialisation from iterative pruning.",
    )
    parser.add_argument("--version", action="version", version=f"autosparse {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in ("common", "__main__"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        entry.load().register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(2, args.verbose + 1)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except AutosparseError as exc:
        print(f"autosparse {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished steps are kept and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
