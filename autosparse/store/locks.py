"""One run, one writer: per-run locks, shared by every process that writes a store.

Several processes (two ``autosparse gen`` on one store, process-pool or Ray workers) divide a
grid's runs between them by *claiming* each run before working on it: the claim is a
:func:`autosparse.core.claims.claim` on ``.locks/<run>.lock``, held for the whole job (features,
IRP, write). A run claimed by a live process is "in progress elsewhere" — skipped now, waited
for later — never a failure; a dead holder never blocks anyone, and taking over the lock of a
run whose holder died before completing it is said in one log line.

Claims are re-entrant per thread, so a job holding its run's claim can call ``write_run`` /
``delete_run`` (which claim it too). POSIX only; elsewhere claims always succeed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from autosparse.core import claims
from autosparse.core.claims import holder_name
from autosparse.core.errors import StoreError
from autosparse.store.layout import LOCKS, check_name, run_is_complete

log = logging.getLogger(__name__)


def lock_file(path: Path, run_id: str) -> Path:
    """The run's lock file; absolute, so one run has one key in the re-entrancy table."""
    return Path(path).absolute() / LOCKS / f"{check_name(run_id)}.lock"


def claim_run(path: Path, run_id: str) -> contextlib.AbstractContextManager[bool]:
    """Try to claim ``run_id`` of the store at ``path``; yields whether this thread holds it.

    ``False`` means a live process holds it (the caller skips the run and may wait for it);
    nothing is written then. Never blocks.
    """

    def takeover(previous: str) -> None:
        # a complete run's last holder finished its job (stores written before claims were cleared
        # on release still name it), so taking its lock over is nothing to report
        if not run_is_complete(path, run_id):
            log.warning(
                "run %s: taking over the lock left by %s, which stopped (killed, interrupted or crashed) while working on it",
                run_id,
                previous,
            )

    return claims.claim(lock_file(path, run_id), on_takeover=takeover)


def holder(path: Path, run_id: str) -> str:
    """Who holds the run's lock, as written in it (``"another process"`` if it does not say)."""
    return claims.holder(lock_file(path, run_id))


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
    return claims.is_held(lock_file(path, run_id))


def wait_for_release(path: Path, run_ids: Sequence[str], *, poll_s: float = 1.0, report_s: float = 60.0) -> None:
    """Block until no live process holds any of ``run_ids`` (they completed, failed or died)."""
    claims.wait_for_release({r: lock_file(path, r) for r in run_ids}, what="run", poll_s=poll_s, report_s=report_s)


__all__ = ["claim_run", "holder", "holder_name", "is_being_written", "lock_file", "run_lock", "wait_for_release"]
