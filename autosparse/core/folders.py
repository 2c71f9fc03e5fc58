"""Output folders: made, or refused in one line when a file stands where a folder must go.

Why its own module: ``Path.mkdir`` raises ``FileExistsError`` / ``NotADirectoryError`` with a
traceback when ``--out`` (or one of its parents) is a file — sometimes after a run has done its
work. Every command that writes a folder checks here first.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from autosparse.core.errors import ConfigError


def as_path(value: object, what: str) -> Path:
    """``value`` as a Path where it is a str or a path-like; one clear error otherwise (``Masks.load(3)``
    failed in pathlib with a TypeError naming neither the argument nor what it takes; typed-API hunt)."""
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    raise ConfigError(f"{what} takes a path (a str or a pathlib.Path), got a {type(value).__name__}: {value!r:.60}")


def check_output_path(path: str | Path, flag: str = "--out") -> Path:
    """``path`` if it and its parents can be folders, else a ConfigError naming the file in the way."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.is_symlink() and not part.exists():  # read as absent, then mkdir failed after the whole job
            where = "is" if part == path else f"is inside {part}, which is"
            raise ConfigError(
                f"{flag} {path} {where} a link to {os.readlink(part)}, which does not exist; create its target or "
                "give another path"
            )
        if part.exists() and not part.is_dir():
            where = "is" if part == path else f"is inside {part}, which is"
            raise ConfigError(f"{flag} {path} {where} a file; give a folder path")
        if part.exists():  # the nearest existing folder
            if part == path:  # nothing to create; and a probe inside could race a writer that renames onto it
                if not os.access(path, os.W_OK | os.X_OK):
                    raise ConfigError(f"{flag} {path}: cannot write in it; give a folder you can write to")
            else:
                _probe(part, path, flag)  # where the rest will be created
            break
    return path


def cannot_create_in(folder: str | Path) -> str | None:
    """Why no folder can be made in ``folder`` (the system's words), or None: a folder is made and
    removed, the one test that also catches /proc-like file systems and read-only mounts (where
    ``os.access`` says yes to root), before any work is done."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".autosparse-probe-", dir=folder))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _probe(folder: Path, path: Path, flag: str) -> None:
    why = cannot_create_in(folder)
    if why is not None:
        raise ConfigError(f"{flag} {path}: cannot create folders in {folder} ({why}); give a folder you can write to")


def make_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create ``path`` (and its parents) as a folder, after :func:`check_output_path`."""
    path = check_output_path(path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only or special file system (/proc, /sys): one line, not a traceback
        raise ConfigError(f"cannot create {flag} {path}: {exc.strerror}; give a folder you can write to") from None
    return path


def private_tmp(path: Path, suffix: str = ".tmp") -> Path:
    """A temporary name beside ``path``, unique to this process and call, to write then rename over it.

    Why unique: two processes finishing one bench folder wrote the report through the same temporary
    name; one renamed it away under the other (FileNotFoundError, or a report with no plots).
    """
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole, through a :func:`private_tmp` name: a reader (another process,
    or the next run after a kill) finds the old file or the new one, never half of one."""
    write_bytes(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    """:func:`write_text` for bytes (a PNG, a JSON already encoded)."""
    tmp = private_tmp(path)
    try:
        tmp.write_bytes(data)
        replace_into(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_into(tmp: Path, path: Path) -> None:
    """``os.replace(tmp, path)``, with a folder standing where the file goes said in one line: it was a
    traceback, after the work was done (a training's weights, a bench report; hunt)."""
    try:
        os.replace(tmp, path)
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder where autosparse writes a file; move it away and rerun") from None


def has_content(folder: Path) -> bool:
    """Whether ``folder`` holds anything but dot-files (the claims' lock files, temporaries being written)."""
    return folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())
