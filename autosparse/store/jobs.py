"""Running jobs that each write one run of a store, from any number of processes at once.

Two ``autosparse gen`` on one store and one grid (or a Ray cluster's workers) must divide the
runs, not fight over them. Each job claims its run first (:func:`~autosparse.store.locks.claim_run`)
and returns :func:`in_progress_elsewhere` when a live process holds it; the jobs then run
through :func:`autosparse.core.claims.run_claimed_jobs`, which waits for the runs held
elsewhere: a run that ends complete is reported as done elsewhere (not a failure, not a
retraining); a run released *without* completing (its holder failed or was killed) is run here,
resuming from its checkpoint, so the command ends only when every run has ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autosparse.core.claims import in_progress_elsewhere, is_elsewhere, run_claimed_jobs
from autosparse.core.executors import JobOutcome
from autosparse.store.layout import run_is_complete
from autosparse.store.locks import lock_file


def run_store_jobs(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    run_ids: Sequence[str],
    store_path: str | Path,
    *,
    poll_s: float = 1.0,
    **executor: Any,
) -> list[JobOutcome]:
    """Run ``fn(job)`` for every job (``executor`` kwargs go to :func:`run_jobs`) until each run has ended.

    ``fn`` claims ``run_ids[i]`` in the store at ``store_path`` and returns
    :func:`in_progress_elsewhere` if it cannot. Returns one outcome per run: ``fn``'s, or, for
    a run another process completed, ``in_progress_elsewhere``'s value (see :func:`is_elsewhere`).
    """
    path = Path(store_path)
    return run_claimed_jobs(
        fn,
        jobs,
        run_ids,
        lock_of=lambda r: lock_file(path, r),
        is_done=lambda r: run_is_complete(path, r),
        what="run",
        poll_s=poll_s,
        **executor,
    )


__all__ = ["in_progress_elsewhere", "is_elsewhere", "run_store_jobs"]
