"""One job, one worker, across processes: claims on lock files, and running jobs that take them.

Several processes on one output (two ``autosparse gen`` on one store, two ``autosparse bench`` on
one folder, process-pool or Ray workers) divide the work by *claiming* each job before doing it:
the claim is an exclusive ``flock`` on a lock file per job, held for the whole job. A job
claimed by a live process is "in progress elsewhere" — skipped now, waited for later — never a
failure and never computed twice. The kernel drops an ``flock`` when its process dies (even by
``kill -9``), so a dead holder never blocks anyone; the holder's name is written into the file
while held and cleared on release, so a file that still names a holder when it is claimed was
left by a process that died. Lock files are never deleted: deleting one while held would let a
second process lock a new file of the same name.

Claims are re-entrant per thread, so a job holding its claim can call code that claims it too.
POSIX only; elsewhere claims always succeed. The store's run locks (:mod:`autosparse.store.locks`),
the bench's cell claims, the speed benches' ``.measuring.lock``, ``train --out``'s ``.train.lock``
and a scorer folder's ``.train-scorer.lock`` are all this; :func:`exclusive` is the blocking kind,
for millisecond sections such as the bench's grid file.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from autosparse.core.errors import ConfigError, UnwritableError
from autosparse.core.executors import JobOutcome, is_elsewhere, run_jobs
from autosparse.core.text import name_list

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: (lock file, thread id) -> nesting depth of the claims this thread holds.
_held: dict[tuple[str, int], int] = {}
_held_guard = threading.Lock()


def holder_name() -> str:
    """How a lock names its holder (and a store run or bench cell its writer): ``pid N on HOST``."""
    return f"pid {os.getpid()} on {platform.node()}"


def holder_is_gone(text: str) -> bool:
    """Whether the holder named in a lock file no longer runs (unknown on another host: assume gone)."""
    parts = text.split()
    if len(parts) != 4 or parts[0] != "pid" or parts[2] != "on" or not parts[1].isdigit():
        return True
    if parts[3] != platform.node():
        return True  # its flock is gone, so its process is (flock is what guards the job)
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False  # alive: a lock released by an older autosparse, which left its holder's name behind


@contextlib.contextmanager
def claim(lock: Path, *, on_takeover: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Try to claim the job guarded by the file ``lock``; yields whether this thread holds it.

    ``False`` means a live process holds it (the caller skips the job and may wait for it).
    Never blocks. ``on_takeover(previous_holder)`` is called when the file still names a holder
    that is gone — a process that died holding it — so the caller can say so in its own words.
    """
    lock = Path(lock).absolute()
    key = (str(lock), threading.get_ident())
    with _held_guard:
        reentered = key in _held
        if reentered:
            _held[key] += 1
    if reentered or fcntl is None:
        try:
            yield True
        finally:
            if reentered:
                with _held_guard:
                    _held[key] -= 1
        return
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):  # a folder where the lock goes, a file above it
            raise ConfigError(
                f"cannot open the lock file {lock}: {exc.strerror.lower() if exc.strerror else exc}; autosparse "
                "keeps its lock there, so move that folder or file away"
            ) from None
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        # a read-only store gave a traceback from here (delete-run, repair) or one per run (gen) (helper)
        raise UnwritableError(
            f"cannot write {lock.parent} ({exc.strerror}): work needs its lock there; work on a writable copy "
            "(e.g. `autosparse store copy STORE --out COPY.zarr` for a feature store), or fix its permissions"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        previous = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if previous and on_takeover is not None and holder_is_gone(previous):
            on_takeover(previous)
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


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold ``lock`` for a short read-modify-write, waiting for another process that holds it.

    Why: two bench processes on one folder each read the recorded grid, merged their own rows into
    it and wrote it back; the later write dropped the earlier one's rows. Unlike :func:`claim` this
    blocks, since the section it guards takes milliseconds.
    """
    if fcntl is None:
        yield
        return
    lock = Path(lock).absolute()
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def holder(lock: Path) -> str:
    """Who holds ``lock``, as written in it (``"another process"`` if it does not say)."""
    try:
        with open(lock, "rb") as f:
            return f.read(200).decode(errors="replace").strip() or "another process"
    except OSError:
        return "another process"


def is_held(lock: Path) -> bool:
    """Whether a live process holds ``lock`` (as opposed to a killed job's leftover file)."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe lock
    return False


def wait_for_release(
    locks: Mapping[str, Path], *, what: str = "job", poll_s: float = 1.0, report_s: float = 60.0
) -> None:
    """Block until no live process holds any of ``locks`` (job key -> lock file).

    Why poll rather than block in ``flock``: one line now and one every ``report_s`` seconds say
    what is being waited for and who holds it, so a user can tell waiting from hanging.
    """
    waiting = [k for k, lock in locks.items() if is_held(lock)]
    next_report = time.monotonic()
    while waiting:
        if time.monotonic() >= next_report:
            shown = name_list((f"{k} ({holder(locks[k])})" for k in waiting), shown=5)
            log.info("waiting for %d %s(s) in progress elsewhere: %s", len(waiting), what, shown)
            next_report = time.monotonic() + report_s
        time.sleep(poll_s)
        waiting = [k for k in waiting if is_held(locks[k])]


def in_progress_elsewhere(key: str) -> dict[str, Any]:
    """A job's result when a live process holds its claim: skipped here, to be waited for."""
    return {"run_id": key, "skipped": True, "elsewhere": True}


def run_claimed_jobs(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    keys: Sequence[str],
    *,
    lock_of: Callable[[str], Path],
    is_done: Callable[[str], bool],
    what: str = "job",
    poll_s: float = 1.0,
    **executor: Any,
) -> list[JobOutcome]:
    """Run ``fn(job)`` for every job (``executor`` kwargs go to :func:`run_jobs`) until each has ended.

    ``fn`` claims ``lock_of(key)`` and returns :func:`in_progress_elsewhere` if it cannot. Those
    jobs are waited for; one that ends done (``is_done``) is reported as done elsewhere (not a
    failure, not recomputed); one released *without* being done (its holder failed or was
    killed) is run here, so the call ends only when every job has ended, and a failure it
    reports is a real one. Returns one outcome per key, in order.
    """
    job_of = dict(zip(keys, jobs, strict=True))
    final: dict[str, JobOutcome] = {}
    pending = list(keys)
    while pending:
        outcomes = run_jobs(fn, [job_of[k] for k in pending], pending, **executor)
        held = [o.key for o in outcomes if is_elsewhere(o)]
        final.update({o.key: o for o in outcomes if not is_elsewhere(o)})
        if not held:
            break
        wait_for_release({k: lock_of(k) for k in held}, what=what, poll_s=poll_s)
        pending = []
        for key in held:
            if is_done(key):
                final[key] = JobOutcome(key, True, in_progress_elsewhere(key))
            else:
                pending.append(key)
        if pending:
            log.info(
                "%d %s(s) were released by another process without finishing (it failed or was killed); "
                "running them here: %s",
                len(pending),
                what,
                ", ".join(pending),
            )
    return [final[k] for k in keys]


__all__ = [
    "claim",
    "holder",
    "holder_is_gone",
    "holder_name",
    "in_progress_elsewhere",
    "is_elsewhere",
    "is_held",
    "run_claimed_jobs",
    "wait_for_release",
]
