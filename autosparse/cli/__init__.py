"""The ``autosparse`` command line.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``;
modules are discovered automatically, so a new subcommand is a new file. Packages outside the
library add subcommands through the ``autosparse.commands`` entry-point group (``gen`` comes
from ``data_gen``, which sits above the library and must not be imported by it). ``register``
only names the subcommand and passes ``arguments=`` (a function adding its options); it imports
nothing heavy, so ``autosparse --help`` never waits for torch
(:class:`~autosparse.cli.arguments.CommandParser`). A user error
(:class:`~autosparse.core.errors.AutosparseError`) is printed in one line and exits with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import importlib.metadata
import logging
import os
import pkgutil
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from autosparse import __version__
from autosparse.cli.arguments import VERBOSE_HELP, CommandParser, TopParser
from autosparse.core.config import OTHER_NAMES
from autosparse.core.errors import DISK_FULL_FIX, AutosparseError, disk_full, full_disk_error, log_our_warnings

ENTRY_POINTS = "autosparse.commands"


#: loggers that ``-v`` turns up; every other library's logger stays at WARNING unless ``-vv``
OUR_LOGGERS = ("autosparse", "data_gen")


def build_parser() -> argparse.ArgumentParser:
    parser = TopParser(
        prog="autosparse",
        description="Learn to prune neural networks at initialisation from iterative pruning.",
    )
    parser.add_argument("--version", action="version", version=f"autosparse {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help=VERBOSE_HELP,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):  # the others are helpers (arguments)
            module.register(sub)
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        entry.load().register(sub)
    return parser


def configure_logging(verbose: int) -> None:
    """INFO (``-v``: DEBUG) for our loggers; WARNING for every other library's unless ``-vv``.

    Why not one root level: at DEBUG, matplotlib's font manager, PIL, urllib3 and friends print
    hundreds of lines that bury ours.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose >= 2 else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 1 else logging.INFO)
    log_our_warnings()


def _refuse_extra(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> None:
    """Words no option took, refused by the subcommand they were typed for, with the option each
    mistyped one was likely meant as: argparse's own message comes from the top-level parser and
    names neither."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
    while True:  # down to the action typed (`store info`): its options, and its name in the error
        nested = next((a for a in sub._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, nested.dest, None) if nested is not None else None
        if nested is None or chosen not in nested.choices:
            break
        sub = nested.choices[chosen]
    options = sorted(o for o in sub._option_string_actions if o.startswith("--"))
    method, hparams = _method_hparams(args) if "--hp" in options else (None, set())
    words: list[str] = []
    taken = -1  # the value word a hyperparameter flag's hint already shows
    for i, word in enumerate(extra):
        if i == taken:
            continue
        flag, _, value = word.partition("=")
        key = flag.lstrip("-").replace("-", "_")
        if word.startswith("--") and key in hparams:
            # a method hyperparameter typed as a flag (`--scorer X`): say how it is given
            if not value and i + 1 < len(extra) and not extra[i + 1].startswith("--"):
                value, taken = extra[i + 1], i + 1
            typed = word if taken != i + 1 else f"{word} {value}"  # as the user wrote it
            words.append(f"{typed} (a hyperparameter of {method}: give it as {_hp_hint(method, key, value)})")
            continue
        meant = ["--hp"] if "--hp" in options and key in _HP_ALIASES else []
        section, dot, last = key.rpartition(".")
        other = f"--{section}{dot}{OTHER_NAMES.get(last, '')}".replace("_", "-")  # --learning-rate: --lr
        meant = meant or ([other] if other in options else [])
        meant = meant or (difflib.get_close_matches(flag, options, n=1) if word.startswith("--") else [])
        words.append(f"{word} (did you mean {meant[0]}?)" if meant else word)
    sub.error(f"unrecognized arguments: {' '.join(words)}")


def _hp_hint(method: str | None, key: str, value: str) -> str:
    """``--hp key=value`` where the method takes that value; else what it takes (`--scope layerwise`
    was told `--hp scope=layerwise`, which snip then refused). A list value is shown in brackets, as
    ``--hp`` splits at commas."""
    from autosparse.cli.prune import parse_hparams
    from autosparse.pruners import get_pruner, make_pruner

    if not value or method is None:
        return f"--hp {key}=VALUE"
    fields = {f.name: str(f.type) for f in dataclasses.fields(get_pruner(method).Config)}
    listed = fields.get(key, "").startswith(("tuple", "list", "Sequence"))  # a list value: in brackets, as --hp splits
    written = f"[{value}]" if listed and not value.startswith("[") else value
    try:
        make_pruner(method, **parse_hparams(method, (f"{key}={written}",)))
    except AutosparseError as exc:
        return f"--hp {key}=VALUE, but not {value!r}: {exc}"
    except Exception:  # the hint must never replace the error it decorates with a traceback (review)
        return f"--hp {key}=VALUE"
    return f"--hp {key}={written}"


#: what users type for ``--hp`` (the Python API's keyword is ``hparams``)
_HP_ALIASES = {"hparams", "hparam", "hyperparameters", "hyperparams", "hyper_parameters"}


def _method_hparams(args: argparse.Namespace) -> tuple[str | None, set[str]]:
    """The method the command line (or its ``--config``) chose and its hyperparameter names; none
    if it names no known method."""
    from autosparse.core.config import read_config
    from autosparse.core.errors import AutosparseError
    from autosparse.pruners import available, get_pruner

    method = getattr(args, "method", None)
    if method is None and getattr(args, "config", None):
        try:  # only for the hint: a bad config is reported by the command itself, in full
            method = read_config(args).get("method")
        except (AutosparseError, OSError, ValueError):  # ValueError: a binary file (UnicodeDecodeError)
            method = None
    if not isinstance(method, str) or method not in available():
        return None, set()
    return method, {f.name for f in dataclasses.fields(get_pruner(method).Config)}


#: Path arguments (by dest) that an empty string would turn into the working folder, and how to name them.
_PATH_ARGUMENTS = {
    "store": "--store",
    "path": "the store path",
    "out": "--out",
    "masks": "--masks",
    "config": "--config",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so it stops as on Ctrl-C: workers stopped, finished
    steps kept, one line said (it printed nothing, or Ray's crash dump; helper)."""


_signals: list[int] = []  # SIGTERM received during this command (a library may re-raise it as a KeyboardInterrupt)


def _terminate(signum: int, frame: object) -> None:
    _signals.append(signum)
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)  # only the main thread may set a signal handler
    previous = signal.signal(signal.SIGTERM, _terminate)
    _signals.clear()
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    # our warnings are log lines for this command only: a notebook or test calling main() keeps real
    # warnings for its later Python calls (review)
    shown = warnings.showwarning
    try:
        return _command(argv)
    finally:
        warnings.showwarning = shown


def _command(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _refuse_extra(parser, args, extra)
    configure_logging(args.verbose)
    for key, what in _PATH_ARGUMENTS.items():
        value = getattr(args, key, None)
        if isinstance(value, str) and not value.strip():
            # '' is Path('.'): `gen --store ''` read the working folder as the store (helper)
            print(
                f"autosparse {args.command}: error: {what} is empty (it would be the working folder); give a path",
                file=sys.stderr,
            )
            return 2
    try:
        return int(args.func(args) or 0)
    except AutosparseError as exc:
        print(f"autosparse {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # only the long jobs (gen, bench, store copy/refeaturize, demo) keep finished steps; a command that
        # writes its result at the end says so (resumes=False in its set_defaults)
        terminated = bool(_signals)  # what the handler saw: ray.wait re-raises Terminated as a plain KeyboardInterrupt
        stopped = "terminated" if terminated else "interrupted"
        if getattr(args, "resumes", True):
            print(f"{stopped}; finished steps are kept and a rerun resumes", file=sys.stderr)
        else:
            print(
                f"{stopped}; {args.command} writes its result when it ends, so nothing was written"
                + getattr(args, "interrupted_save", ""),
                file=sys.stderr,
            )
        return 143 if terminated else 130  # 128 + the signal, as a shell reports it
    except BrokenPipeError:  # `autosparse store info S | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        return 0
    except Exception as exc:
        if not disk_full(exc):
            raise  # a bug: its traceback is what gets it fixed
        # whichever library was writing (safetensors, zarr, torch, json) said it its own way, in a traceback
        full = full_disk_error(exc)
        where = full.filename if isinstance(full, OSError) and full.filename else None  # that write's file, no other
        print(
            f"autosparse {args.command}: error: the disk is full{f' (writing {where})' if where else ''}: {DISK_FULL_FIX}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
