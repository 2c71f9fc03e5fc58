"""Output folders: made, or refused in one line when a file stands where a folder must go.

Why its own module: ``Path.mkdir`` raises ``FileExistsError`` / ``NotADirectoryError`` with a
traceback when ``--out`` (or one of its parents) is a file — sometimes after a run has done its
work. Every command that writes a folder checks here first.
"""

from __future__ import annotations

from pathlib import Path

from autosparse.core.errors import ConfigError


def check_output_path(path: str | Path, flag: str = "--out") -> Path:
    """``path`` if it and its parents can be folders, else a ConfigError naming the file in the way."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            where = "is" if part == path else f"is inside {part}, which is"
            raise ConfigError(f"{flag} {path} {where} a file; give a folder path")
    return path


def make_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create ``path`` (and its parents) as a folder, after :func:`check_output_path`."""
    path = check_output_path(path, flag)
    path.mkdir(parents=True, exist_ok=True)
    return path
