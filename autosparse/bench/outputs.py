"""What each kind of bench writes into its ``--out``, and which kind a folder already holds.

Why one module: every kind writes its own report.md into its folder, so a run has to tell the
kinds apart by their files before it starts, and those file names belong in one place, below the
modules that write them (an accuracy run's cells, a speed run's measurements).
"""

from __future__ import annotations

from pathlib import Path

from autosparse.bench.config import config_kind
from autosparse.core.errors import AutosparseError, ConfigError

CONFIG_FILE = "bench.yaml"  # an accuracy bench's whole grid, as its runs grew it
CELLS_DIR = "cells"  # an accuracy bench's one JSON per finished cell
SPEED_JSON = "speed.json"  # a speed bench's results
MEASUREMENTS = "measurements"  # one JSON row per finished measurement: what a rerun resumes from
TRAIN_SPEED_JSON = "train_speed.json"  # a train_speed bench's results


#: the first and last lines of a bench.yaml a run writes: a file cut short keeps the first and loses the
#: last, and a cut YAML still parses — as another grid, whose defaults fill what was cut (hunt)
RECORD_HEAD = "# autosparse bench: this folder's whole grid, written by its runs (ends with '# end of bench.yaml')"
RECORD_TAIL = "# end of bench.yaml"


def record_text(yaml_text: str) -> str:
    """A folder's bench.yaml: the grid's YAML between :data:`RECORD_HEAD` and :data:`RECORD_TAIL`."""
    return f"{RECORD_HEAD}\n{yaml_text.rstrip()}\n{RECORD_TAIL}\n"


def check_record_whole(path: Path) -> None:
    """Refuse a folder's bench.yaml that a run wrote (its first line says so) but that lacks its last line:
    cut short, it read as a valid grid of other settings, and a run or ``--report-only`` acted on that grid
    (a report of every cell missing, new cells of another recipe). One written by hand, or before the
    marks, has no first line and is read as it is."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return  # the reader that follows says what is wrong with it
    while lines and not lines[-1]:  # blank lines an editor added after the last mark (review)
        lines.pop()
    if lines and lines[0] == RECORD_HEAD and lines[-1] != RECORD_TAIL:
        raise ConfigError(
            f"{path} is cut short (its last line, {RECORD_TAIL!r}, is missing): restore it from a copy, or delete it "
            f"and rerun with the bench's YAML (--config), whose grid the finished cells in {path.parent / CELLS_DIR} "
            "still match"
        )


def is_record(path: str | Path) -> bool:
    """Whether ``path`` is a bench.yaml a run wrote (its first line is :data:`RECORD_HEAD`)."""
    try:
        with open(path, errors="replace") as fh:
            return fh.readline().strip() == RECORD_HEAD
    except OSError:
        return False


def folder_kind(out: Path) -> tuple[str, str] | None:
    """(kind, the file that says so) of the bench whose output ``out`` holds; None for a new or foreign folder."""
    if (out / CONFIG_FILE).is_file():
        try:
            return config_kind(out / CONFIG_FILE), CONFIG_FILE
        except (AutosparseError, OSError):
            return "accuracy", CONFIG_FILE  # only the accuracy bench writes one
    marks = (("accuracy", CELLS_DIR + "/"), ("speed", SPEED_JSON), ("speed", MEASUREMENTS + "/"))
    for kind, name in (*marks, ("train_speed", TRAIN_SPEED_JSON)):
        if (out / name).exists():
            return kind, name
    return None


def check_folder_kind(out: str | Path, kind: str) -> None:
    """Refuse to run a ``kind`` bench (or ``--check`` one) into a folder holding another kind's output.

    Why: every kind writes its own report.md there, so a speed bench run into an accuracy bench's
    folder replaced that bench's report (and the reverse), and the folder then held two benches'
    files under one report.
    """
    found = folder_kind(Path(out))
    if found is not None and found[0] != kind:
        article = "an" if found[0][0] in "aeiou" else "a"
        raise ConfigError(
            f"--out {out} holds {article} {found[0]} bench ({found[1]}), whose report.md this {kind} bench would "
            "overwrite; choose another --out"
        )
