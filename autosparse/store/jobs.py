"""Running jobs that each write one run of a store, from any number of processes at once.

Two ``autosparse gen`` on one store and one grid (or a Ray cluster's workers) must divide the
runs, not fight over them. Each job claims its run first (:func:`~autosparse.store.locks.claim_run`)
and returns :func:`in_progress_elsewhere` when a live process holds it. This module runs the
jobs on an executor, then waits for the runs held elsewhere: a run that ends complete is
reported as done elsewhere (not a failure, not a retraining); a run released *without*
completing (its holder failed or was killed) is run here, resuming from its checkpoint, so the
command ends only when every run has ended, and a failure it reports is a real one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autosparse.core.errors import StoreError
from autosparse.core.executors import JobOutcome, run_jobs
from autosparse.store.layout import is_complete_attrs, read_run_attrs
from autosparse.store.locks import wait_for_release

log = logging.getLogger(__name__)


def in_progress_elsewhere(run_id: str) -> dict[str, Any]:
    """A job's result when a live process holds its run: skipped here, to be waited for."""
    return {"run_id": run_id, "skipped": True, "elsewhere": True}


def is_elsewhere(outcome: JobOutcome) -> bool:
    """Whether an outcome is a run that another process held (and, once returned by
    :func:`run_store_jobs`, completed)."""
    return outcome.ok and isinstance(outcome.value, dict) and bool(outcome.value.get("elsewhere"))


def _complete(path: Path, run_id: str) -> bool:
    try:
        return is_complete_attrs(read_run_attrs(path, run_id))
    except StoreError:
        return False


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
    job_of = dict(zip(run_ids, jobs, strict=True))
    final: dict[str, JobOutcome] = {}
    pending = list(run_ids)
    while pending:
        outcomes = run_jobs(fn, [job_of[r] for r in pending], pending, **executor)
        held = [o.key for o in outcomes if is_elsewhere(o)]
        final.update({o.key: o for o in outcomes if not is_elsewhere(o)})
        if not held:
            break
        wait_for_release(path, held, poll_s=poll_s)
        pending = []
        for run_id in held:
            if _complete(path, run_id):
                final[run_id] = JobOutcome(run_id, True, in_progress_elsewhere(run_id))
            else:
                pending.append(run_id)
        if pending:
            log.info(
                "%d run(s) were released by another process without completing (it failed or was killed); "
                "running them here: %s",
                len(pending),
                ", ".join(pending),
            )
    return [final[r] for r in run_ids]


__all__ = ["in_progress_elsewhere", "is_elsewhere", "run_store_jobs"]
