"""One run, one writer: advisory per-run locks.

Two processes writing the same run would interleave their chunks silently (zarr has no
locking); the executors are meant never to schedule a run twice, and these locks turn a bug
there into an error instead of a corrupt run. They also let a validator tell a run being
written right now from a killed job's leftovers. POSIX ``flock`` only; elsewhere they are no-ops.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from pathlib import Path

from autosparse.core.errors import StoreError
from autosparse.store.layout import LOCKS, check_name

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _lock_file(path: Path, run_id: str) -> Path:
    return path / LOCKS / f"{check_name(run_id)}.lock"


@contextlib.contextmanager
def run_lock(path: Path, run_id: str) -> Iterator[None]:
    """Hold the write lock of ``run_id`` in the store at ``path``; StoreError naming the holder if taken."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock = _lock_file(path, run_id)
    lock.parent.mkdir(exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise StoreError(
                f"run {run_id!r} in {path} is being written by {holder}; a run must be written by "
                "exactly one worker — wait for it, or kill that job and rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {platform.node()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def is_being_written(path: Path, run_id: str) -> bool:
    """Whether a live process holds the run's lock (as opposed to a killed job's leftovers)."""
    if fcntl is None:  # pragma: no cover
        return False
    lock = _lock_file(path, run_id)
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe lock
    return False
