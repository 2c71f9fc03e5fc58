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
