"""The command line's parsers: subcommand options added on first use, and the task's flags.

Every subcommand reads its settings the same way (:func:`autosparse.core.config.resolve`: the
fields of its config dataclasses, defaults < ``--config`` YAML < flags, help from the fields'
comments). What is specific to the command line lives here: options are added to a subcommand's
parser only when it parses or prints help (:class:`CommandParser`), because the dataclasses live
next to torch code and ``autosparse --help`` should not wait seconds for torch to import; and the
flags of "this model on this data" shared by ``train`` and ``prune``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from autosparse.core.config import add_arguments, resolve
from autosparse.core.errors import closest_name

if TYPE_CHECKING:
    from autosparse.task import Task

VERBOSE_HELP = "-v: debug lines of autosparse (progress lines are on by default); -vv: also of the libraries it uses"

#: fields of the task that are not flags of a single run: ``name`` only labels runs of a grid
TASK_EXCLUDE = ("name",)


def one_line_error(prog: str, message: str) -> str:
    """argparse's error as the CLI's one line, naming the choice a mistyped one was likely meant as
    (`autosparse prun` listed the commands but did not say "prune")."""
    invalid = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if invalid:
        close = closest_name(invalid.group(1), re.findall(r"'([^']*)'", invalid.group(2)))
        if close:
            message += f"; did you mean {close!r}?"
    return f"{prog}: error: {message} (`{prog} --help` lists the options)\n"


class TopParser(argparse.ArgumentParser):
    """``autosparse``'s own parser: its errors in one line, as its subcommands' are."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, one_line_error(self.prog, message))


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser whose options are added by ``arguments(parser)`` on first use.

    Why: building the options imports the config dataclasses, and those import torch; deferring
    them keeps ``autosparse --help`` (which lists subcommands only) under a second. A subcommand
    registers with ``sub.add_parser(name, help=..., arguments=add_options)``.
    """

    def __init__(self, *args: Any, arguments: Callable[[argparse.ArgumentParser], None] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.pending_arguments = arguments
        # -v also after the subcommand (`autosparse prune -v …`), where users type it; SUPPRESS keeps a
        # `-v` given before the subcommand from being reset by this parser's default
        self.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=VERBOSE_HELP)

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        """One line, as every other user error of the CLI: argparse's default puts the whole usage
        block (forty lines for ``bench``) above it."""
        self.exit(2, one_line_error(self.prog, message))

    def add_pending_arguments(self) -> None:
        """Add the deferred options now (parsing and help do this themselves)."""
        add, self.pending_arguments = self.pending_arguments, None
        if add is not None:
            add(self)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        self.add_pending_arguments()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.add_pending_arguments()
        return super().format_help()

    def format_usage(self) -> str:
        self.add_pending_arguments()
        return super().format_usage()


def add_task_arguments(parser: argparse.ArgumentParser, *classes: type) -> None:
    """``--model``, ``--model-kwargs``, ``--dataset``, ``--n-train`` … and then the fields of ``classes``."""
    from autosparse.task import DataSpec, ModelSpec

    add_arguments(parser, ModelSpec, DataSpec, *classes, exclude=TASK_EXCLUDE)


def resolve_task(args: argparse.Namespace, *classes: type) -> tuple[Task, list[Any]]:
    """The task given by flags and ``--config``, and the other dataclasses built like :func:`resolve`."""
    from autosparse.task import DataSpec, ModelSpec, Task

    model, data, *rest = resolve(args, ModelSpec, DataSpec, *classes, exclude=TASK_EXCLUDE)
    return Task(model, data), rest


def check_out_is_no_store_or_scorer(out: Path, writer: str) -> None:
    """Refuse an ``--out`` that is, or lies in, a feature store, or holds a scorer, whose files ``writer``
    ("this training", "the masks") would replace: read only, so it runs before any data loads and before
    a claim makes its lock file there (which cluttered a store, review).

    Why: a scorer trained there lost its weights to a model's, and a store took a model's or a mask's
    files (helpers).
    """
    from autosparse.core.errors import ConfigError
    from autosparse.scorer.checkpoint import CARD_FILE
    from autosparse.store.layout import check_outside_stores, enclosing_store

    check_outside_stores(out, "--out")
    if enclosing_store(out, itself=True) is not None:
        raise ConfigError(f"--out {out} is a feature store; give a folder outside it")
    if (out / CARD_FILE).exists():
        raise ConfigError(
            f"--out {out} holds a scorer ({CARD_FILE}), whose files {writer} would replace; give another --out"
        )
