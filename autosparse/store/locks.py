"""One run, one writer: per-run locks, shared by every process that writes a store.

Several processes (two ``autosparse gen`` on one store, process-pool or Ray workers) divide a
grid's runs between them by *claiming* each run before working on it: the claim is an
exclusive ``flock`` on ``.locks/<run>.lock``, held for the whole job (features, IRP, write).
A run claimed by a live process is "in progress elsewhere" — skipped now, waited for later —
never a failure. The kernel drops an ``flock`` when its process dies (even by ``kill -9``), so
a dead holder never blocks anyone; the holder's name is written into the file while held and
cleared on release, so a file that still names a holder when it is claimed was left by a
process that died, and taking it over is said in one log line. Lock files are never deleted:
deleting one while held would let a second process lock a new file of the same name.

Claims are re-entrant per thread, so a job holding its run's claim can call ``write_run`` /
``delete_run`` (which claim it too). POSIX only; elsewhere claims always succeed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from autosparse.core.errors import StoreError
from autosparse.store.layout import LOCKS, check_name, is_complete_attrs, read_run_attrs

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: (lock file, thread id) -> nesting depth of the claims this thread holds.
_held: dict[tuple[str, int], int] = {}
_held_guard = threading.Lock()


def lock_file(path: Path, run_id: str) -> Path:
    """The run's lock file; absolute, so one run has one key in the re-entrancy table."""
    return Path(path).absolute() / LOCKS / f"{check_name(run_id)}.lock"


def holder_name() -> str:
    """How a lock names its holder (and a run its writer): ``pid N on HOST``."""
    return f"pid {os.getpid()} on {platform.node()}"


def _holder_is_gone(text: str) -> bool:
    """Whether the holder named in a lock file no longer runs (unknown on another host: assume gone)."""
    parts = text.split()
    if len(parts) != 4 or parts[0] != "pid" or parts[2] != "on" or not parts[1].isdigit():
        return True
    if parts[3] != platform.node():
        return True  # its flock is gone, so its process is (flock is what guards the run)
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False  # alive: a lock released by an older autosparse, which left its holder's name behind


def _finished(path: Path, run_id: str) -> bool:
    """A complete run's last holder finished its job (stores written before claims were cleared on
    release still name it), so taking its lock over is nothing to report."""
    try:
        return is_complete_attrs(read_run_attrs(Path(path), run_id))
    except StoreError:
        return False


@contextlib.contextmanager
def claim_run(path: Path, run_id: str) -> Iterator[bool]:
    """Try to claim ``run_id`` of the store at ``path``; yields whether this thread holds it.

    ``False`` means a live process holds it (the caller skips the run and may wait for it);
    nothing is written then. Never blocks.
    """
    lock = lock_file(path, run_id)
    key = (str(lock), threading.get_ident())
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered or fcntl is None:
        try:
            yield True
        finally:
            if reentered:
                with _held_guard:
                    _held[key] -= 1
        return
    lock.parent.mkdir(exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            taken = True
        except BlockingIOError:
            taken = False
        if not taken:
            yield False
            return
        previous = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if previous and _holder_is_gone(previous) and not _finished(path, run_id):
            log.warning("run %s: taking over the lock left by %s, which died while working on it", run_id, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_name().encode(), 0)
        with _held_guard:
            _held[key] = 1
        try:
            yield True
        finally:
            with _held_guard:
                del _held[key]
            os.ftruncate(fd, 0)  # a cleanly released lock names no holder
    finally:
        os.close(fd)  # releases the flock


def holder(path: Path, run_id: str) -> str:
    """Who holds the run's lock, as written in it (``"another process"`` if it does not say)."""
    try:
        with open(lock_file(path, run_id), "rb") as f:
            return f.read(200).decode(errors="replace").strip() or "another process"
    except OSError:
        return "another process"


@contextlib.contextmanager
def run_lock(path: Path, run_id: str) -> Iterator[None]:
    """Hold the write lock of ``run_id`` in the store at ``path``; StoreError naming the holder if taken."""
    with claim_run(path, run_id) as mine:
        if not mine:
            raise StoreError(
                f"run {run_id!r} in {path} is being written by {holder(path, run_id)}; a run must be written by "
                "exactly one worker — wait for it, or kill that job and rerun"
            )
        yield


def is_being_written(path: Path, run_id: str) -> bool:
    """Whether a live process holds the run's lock (as opposed to a killed job's leftovers)."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(lock_file(path, run_id), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe lock
    return False


def wait_for_release(path: Path, run_ids: Sequence[str], *, poll_s: float = 1.0, report_s: float = 60.0) -> None:
    """Block until no live process holds any of ``run_ids`` (they completed, failed or died).

    Why poll rather than block in ``flock``: one line now and one every ``report_s`` seconds say
    what is being waited for and who holds it, so a user can tell waiting from hanging.
    """
    waiting = [r for r in run_ids if is_being_written(path, r)]
    next_report = time.monotonic()
    while waiting:
        if time.monotonic() >= next_report:
            shown = ", ".join(f"{r} ({holder(path, r)})" for r in waiting[:5])
            more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
            log.info("waiting for %d run(s) in progress elsewhere: %s%s", len(waiting), shown, more)
            next_report = time.monotonic() + report_s
        time.sleep(poll_s)
        waiting = [r for r in waiting if is_being_written(path, r)]
