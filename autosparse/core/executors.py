"""Where long jobs run: in this process, in a process pool, or on a Ray cluster.

A job (an IRP run, a bench cell) is a pure function of its config that writes its result in
one place and marks it complete last. The executor only decides where it runs, so the three
executors give the same results: a finished job is skipped before submission, a failing job is
reported without stopping the others, and a killed job is simply rerun.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm
from tqdm.std import TqdmDefaultWriteLock

from autosparse.core.errors import (
    AutosparseError,
    ConfigError,
    UnknownNameError,
    log_our_warnings,
    logs_our_warnings,
)

log = logging.getLogger(__name__)

ExecutorName = Literal["local", "process", "ray"]
EXECUTORS = ("local", "process", "ray")


@dataclass
class ExecutorConfig:
    """Where the jobs of a grid run: the ``--executor``/``--address``/``--workers`` of gen, bench and demo.

    Not part of any job's config or id: the three executors give the same results, so where a job
    ran never changes what it computed.
    """

    executor: ExecutorName = "local"  # local (one job after another here) | process (a pool here) | ray (a cluster)
    address: str | None = None  # Ray cluster to join with --executor ray, e.g. auto or host:6379 (none: start one)
    workers: int = 0  # processes of --executor process (0: one per core)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise UnknownNameError("executor", self.executor, EXECUTORS)
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0 = one per core), got {self.workers}")
        if self.workers and self.executor != "process":
            log.warning(
                "--workers %d counts processes of --executor process; the %s executor ignores it",
                self.workers,
                self.executor,
            )

    def check_fits_here(self, num_cpus: float, num_gpus: float = 0.0, gpus_here: int = 0) -> None:
        """Refuse, before anything is made, a job larger than the local Ray this command would start.

        Why: the cluster's check ran only once Ray had started and the store been created, so a
        ``num_cpus: 4`` grid on a 2-core machine passed ``--check`` and left an empty store (helper).
        A cluster joined with ``--address`` is checked when joined, as before; only whether its host:port
        answers is checked here.
        """
        if self.executor == "ray":
            # a host:port nothing listens on passed --check, and the run refused it after making the store (helper)
            _check_reachable(self.address)
        cores = os.cpu_count() or 1
        # ray.init without an address joins RAY_ADDRESS's cluster, or the one `ray start` left running here
        ray_tmp = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir())  # where Ray itself looks (review)
        joins = os.environ.get("RAY_ADDRESS") or (ray_tmp / "ray" / "ray_current_cluster").exists()
        if self.executor == "ray" and self.address is None and not joins and num_cpus > cores:
            raise ConfigError(
                f"each job asks for num_cpus={num_cpus:g}, but the local Ray this command starts has this machine's "
                f"{cores} CPUs: lower num_cpus in the config (or its flag), or join a larger cluster with --address"
            )
        # ``gpus_here``: the GPUs torch sees, which the caller counts (this layer does not import torch); a
        # num_gpus above them passed --check and failed once Ray had started and the folder been made (hunt)
        if self.executor == "ray" and self.address is None and not joins and num_gpus > gpus_here:
            raise ConfigError(
                f"each job asks for num_gpus={num_gpus:g}, but the local Ray this command starts has this machine's "
                f"{gpus_here} GPU(s): lower num_gpus (0 for CPU jobs), or join a cluster with GPUs with --address"
            )

    def options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`run_jobs` (and of the drivers that pass them on)."""
        return {"executor": self.executor, "address": self.address, "workers": self.workers}


def check_resources(num_cpus: float, num_gpus: float) -> None:
    """What each job reserves on a Ray cluster, checked with the config (Ray refused it only at submission)."""
    if not (num_cpus >= 0 and num_gpus >= 0):
        raise ConfigError(f"num_cpus and num_gpus must be >= 0, got {num_cpus} and {num_gpus}")


@dataclass
class JobOutcome:
    key: str
    ok: bool
    value: Any = None
    error: str = ""


def is_elsewhere(outcome: JobOutcome) -> bool:
    """Whether an outcome is a job another process held (:func:`autosparse.core.claims.in_progress_elsewhere`;
    once returned by :func:`~autosparse.core.claims.run_claimed_jobs`, completed there). Here so that a
    progress line does not read such a job as done by this process, which skipped it."""
    return outcome.ok and isinstance(outcome.value, dict) and bool(outcome.value.get("elsewhere"))


def _state(outcome: JobOutcome) -> str:
    """How a progress line names a finished job that this process did not compute."""
    if not outcome.ok:
        return ", failed"
    if is_elsewhere(outcome):
        return ", in progress in another process: waited for at the end"
    value = outcome.value if isinstance(outcome.value, dict) else {}
    if value.get("same_as_another_row"):
        return ", the same as another row's"
    # found complete when its turn came: another process finished it after this one planned (helper)
    return ", done by another process" if value.get("skipped") else ""


def _call(fn: Callable[[Any], Any], job: Any, key: str) -> JobOutcome:
    try:
        return JobOutcome(key, True, fn(job))
    except AutosparseError as exc:
        return JobOutcome(key, False, error=str(exc))
    except Exception as exc:  # a bug in one job must not stop the grid; keep the traceback for the report
        return JobOutcome(key, False, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the parent dies (even by SIGKILL), so no orphan keeps
    writing into a store that a rerun is about to resume."""
    import threading
    import time

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def run_jobs(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    keys: Sequence[str],
    *,
    executor: str = "local",
    workers: int = 0,
    address: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    desc: str = "jobs",
) -> list[JobOutcome]:
    """Run ``fn(job)`` for every job; return outcomes in completion order.

    ``fn`` must be a top-level (picklable) function for the process and Ray executors.
    """
    if executor not in EXECUTORS:
        raise UnknownNameError("executor", executor, EXECUTORS)
    if not jobs:
        return []
    outcomes: list[JobOutcome] = []
    bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=None)

    def done(outcome: JobOutcome) -> None:
        outcomes.append(outcome)
        if not outcome.ok:
            log.error("%s failed: %s", outcome.key, outcome.error.splitlines()[0] if outcome.error else "")
        bar.update(1)
        if bar.disable:  # no terminal (nohup, a log file, CI): one line per finished job is the progress
            log.info(
                "%s: %d of %d done (%s%s)",
                desc,
                len(outcomes),
                len(jobs),
                outcome.key,
                _state(outcome),
            )

    # log lines through the bar (tqdm.write) where it draws: on a terminal they were glued onto its line
    redirect = _log_through_bars() if not bar.disable else contextlib.nullcontext()
    try:
        with redirect:
            if executor == "local":
                for job, key in zip(jobs, keys, strict=True):
                    bar.set_postfix_str(key[-40:])
                    done(_call(fn, job, key))
            elif executor == "process":
                _run_pool(fn, list(zip(jobs, keys, strict=True)), workers or max(1, (os.cpu_count() or 1)), done)
            else:
                # each outcome as it arrives: a grid of hours showed its progress (and its failures) only at the end
                _run_ray(fn, jobs, keys, address=address, num_cpus=num_cpus, num_gpus=num_gpus, done=done)
    finally:
        bar.close()
    return outcomes


_started: Any = None  # in a pool's worker: the queue that tells the parent which job it took


def _logging_setup() -> tuple[str | None, dict[str, int], bool]:
    """The parent's log format, the levels set on its loggers, and whether our warnings are log lines
    there (the CLI), for a spawned worker to repeat."""
    root = logging.getLogger()
    fmt = next((h.formatter._fmt for h in root.handlers if h.formatter is not None), None)
    levels = {"": root.level}
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return fmt, levels, logs_our_warnings()


class _BarSafeHandler(logging.Handler):
    """A console handler's records written with ``tqdm.write``, which clears the bars and redraws them."""

    def __init__(self, like: logging.StreamHandler) -> None:
        super().__init__(like.level)  # tqdm's own redirect dropped the level: INFO reached a WARNING console
        self.setFormatter(like.formatter)
        self.filters = list(like.filters)
        self.stream = like.stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # as logging's own handlers do
            self.handleError(record)


@contextlib.contextmanager
def _log_through_bars() -> Iterator[None]:
    """The root logger's console handlers, for the block, write through the bars: a line logged while a
    bar was drawn was glued onto it (helper). No handler is added where there was none."""
    root = logging.getLogger()
    swapped = [
        (h, _BarSafeHandler(h))
        for h in root.handlers
        if type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.stdout)
    ]
    for old, new in swapped:
        root.removeHandler(old)
        root.addHandler(new)
    try:
        yield
    finally:
        for old, new in swapped:
            root.removeHandler(new)
            root.addHandler(old)


class _NoTerminal:
    """A worker's stderr that says it is no terminal: its jobs' progress bars stay off."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _pool_worker(
    parent_pid: int, started: Any, logs: tuple[str | None, dict[str, int], bool], records: Any = None
) -> None:
    """Pool initializer: exit with the parent, report each job taken on ``started``, and log as the parent.

    Why the last two: each worker drew its jobs' round bars over the parent's bar line, the
    workers' bars interleaving, and printed its warnings without the parent's format (a spawned
    process starts with logging unset; helper).
    """
    global _started
    _started = started
    _exit_with_parent(parent_pid)
    # a worker's bars are off (no terminal), yet each makes tqdm create a multiprocessing lock, which a
    # worker stopped by terminate() never releases: "resource_tracker: … leaked semaphore objects" at the
    # parent's exit after Ctrl-C or SIGTERM. A thread lock is all one process's bars need.
    TqdmDefaultWriteLock.mp_lock = None
    sys.stderr = _NoTerminal(sys.stderr)
    fmt, levels, ours = logs
    logging.basicConfig(format=fmt) if fmt else logging.basicConfig()
    if ours:  # SNIP's ties in a bench cell printed as "…/registry.py:127: RuntimeWarning: …" (review)
        log_our_warnings()
    for name, level in levels.items():
        # warnings and errors only: the parent already says each job's end
        logging.getLogger(name or None).setLevel(max(level, logging.WARNING))
    if records is not None:  # to the parent, which writes them through its bars (_Relay) and reads the queue
        # until every worker has exited, so a worker's exit, which flushes what it logged last, cannot block
        logging.getLogger().handlers = [logging.handlers.QueueHandler(records)]


def _call_in_pool(fn: Callable[[Any], Any], job: Any, key: str, token: int) -> JobOutcome:
    _started.put(token)  # before the work: if this worker dies, the parent knows what it was running
    return _call(fn, job, key)


#: what a pool whose workers die before any job says: the most common cause, a script without the spawn
#: guard, printed only the children's tracebacks and "terminated abruptly" for every job (Python-jobs hunt)
_NO_START_HINT = (
    " (its workers died before taking a job: a script that runs the process executor must make its calls "
    'under `if __name__ == "__main__":`, and define the job\'s function in a module the workers can import, '
    "not in a notebook or `python -c`; the workers' own error is printed above)"
)


def _run_pool(
    fn: Callable[[Any], Any], todo: list[tuple[Any, str]], n: int, done: Callable[[JobOutcome], None]
) -> None:
    """The jobs on a pool of ``n`` spawned processes; a pool broken by a dying worker is replaced.

    Why replace it: when one worker dies (out of memory, ``kill -9``) the pool fails every job
    left, those of the healthy workers and those not yet started included, so one killed run
    stopped a grid of hours (helper). The unfinished jobs go to a fresh pool of ``n``; a job that
    was running at two breaks is tried once more alone, in a pool of one worker, where a death
    is its own (it fails: out of memory, most likely, or killed). Running every bystander alone
    after the first break cost a grid of hour-long jobs its parallelism (review).
    """
    ctx = get_context("spawn")
    pending = list(enumerate(todo))  # (token, (job, key)): keys may repeat, tokens do not
    strikes: dict[int, int] = {}
    alone: list[tuple[int, tuple[Any, str]]] = []
    while pending or alone:
        solo = bool(alone)
        batch = alone if solo else pending
        broken, taken, error = _one_pool(ctx, fn, batch, 1 if solo else n, done)
        if solo:
            alone = []
        else:
            pending = []
        if broken and not taken & {token for token, _ in broken}:
            # no job was running when it broke: the pool cannot run here, and a new one would not either
            for _, (_job, key) in broken:
                done(JobOutcome(key, False, error=f"the process pool could not run a job: {error}{_NO_START_HINT}"))
            continue
        for token, item in broken:
            if token not in taken:
                (alone if solo else pending).append((token, item))
            elif solo:  # the one job running in a pool of one
                why = f"its worker process died running it alone (out of memory? killed?): {error}"
                done(JobOutcome(item[1], False, error=why))
            else:
                strikes[token] = strikes.get(token, 0) + 1
                (alone if strikes[token] >= 2 else pending).append((token, item))
        if broken and not solo:
            log.warning(
                "a worker process died (out of memory, or killed); %d unfinished job(s) go to a fresh pool%s",
                len(pending),
                f", and {len(alone)} running at two such deaths are tried alone first" if alone else "",
            )


def _one_pool(
    ctx: Any,
    fn: Callable[[Any], Any],
    jobs: list[tuple[int, tuple[Any, str]]],
    n: int,
    done: Callable[[JobOutcome], None],
) -> tuple[list[tuple[int, tuple[Any, str]]], set[int], str]:
    """Run ``jobs`` on one pool until it ends or breaks: (the jobs a break failed, the tokens of the
    jobs workers had taken, the break's error)."""
    started = ctx.SimpleQueue()
    records = ctx.Queue()  # the workers' log records, handled here: through the bars, each warning once
    relay = logging.handlers.QueueListener(records, _Relay())
    relay.start()
    pool = ProcessPoolExecutor(
        max_workers=n,
        mp_context=ctx,
        initializer=_pool_worker,
        initargs=(os.getpid(), started, _logging_setup(), records),
    )
    broken: list[tuple[int, tuple[Any, str]]] = []
    taken: set[int] = set()
    error = ""
    try:
        futures = {pool.submit(_call_in_pool, fn, job, key, token): (token, (job, key)) for token, (job, key) in jobs}
        for fut in as_completed(futures):
            while not started.empty():  # read as it comes: a full pipe stalled every worker (review)
                taken.add(started.get())
            try:
                done(fut.result())
            except BrokenProcessPool as exc:  # a worker died, and with it this pool
                broken.append(futures[fut])
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # its job or result could not be sent (pickling): this job's failure alone
                done(JobOutcome(futures[fut][1][1], False, error=f"{type(exc).__name__}: {exc}"))
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): stop the workers now rather than leaving them
        # running jobs nobody waits for; their unfinished jobs resume on the next run.
        _stop_workers(pool)
        # then wait for the pool's own thread to close its queues: left running, it held their
        # semaphores past exit and the resource tracker warned of "leaked semaphore objects"
        pool.shutdown(wait=True, cancel_futures=True)
        started.close()
        _close_relay(relay, records)
        raise
    pool.shutdown()
    while not started.empty():
        taken.add(started.get())
    started.close()
    _close_relay(relay, records)
    return broken, taken, error


class _Relay(logging.Handler):
    """A worker's log record, handed to this process's logger of its name.

    Why: each worker wrote to the terminal itself, so its warnings were glued onto the parent's bar
    line, and a warning each worker says once (autos' guards) was printed once per worker (helper).
    """

    def __init__(self) -> None:
        super().__init__()
        self._said: set[tuple[str, int, str]] = set()

    def emit(self, record: logging.LogRecord) -> None:
        said = (record.name, record.levelno, record.getMessage())
        if said in self._said:
            return
        self._said.add(said)
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def _close_relay(relay: logging.handlers.QueueListener, records: Any) -> None:
    """Hand on what the workers sent last, then close the queue (its semaphores with it)."""
    relay.stop()
    records.close()
    records.join_thread()


def _stop_workers(pool: ProcessPoolExecutor, grace_s: float = 5.0) -> None:
    """Terminate the pool's workers; one that has not ended after ``grace_s`` seconds is killed, so
    that waiting for the pool afterwards cannot hang on a worker ignoring SIGTERM."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()


def _take_back_sigterm(handler: Any) -> None:
    """Give SIGTERM back to the handler it had before ``ray.init`` (the CLI's: stop as on Ctrl-C).

    Why: ``ray.init`` installs its own handlers, so a SIGTERM to a Ray-driving `gen` or `bench`
    printed Ray's crash dump and exited with SIGABRT, or exited 1 without a word (helper).
    """
    if threading.current_thread() is threading.main_thread() and handler is not None:
        signal.signal(signal.SIGTERM, handler)


#: what --address takes, said by each error about one it cannot take
_ADDRESS_FORMS = "give host:port (the head's port, usually 6379), auto on a node of the cluster, or ray://host:10001"


def _check_reachable(address: str | None) -> None:
    """Ray retries an unreachable ``host:port`` for minutes with log spam; fail in seconds instead."""
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, colon, port = address.rpartition(":")
    # no colon: Ray refused it only after gen had made the store; no host (":6379"): ray.init logged its own
    # traceback before our error (helper)
    if not colon or not host:
        raise ConfigError(
            f"--address {address!r} {'has no host' if colon else 'is not a Ray address'}: {_ADDRESS_FORMS}"
        )
    if not port.isdigit():
        return
    try:
        with socket.create_connection((host, int(port)), timeout=10):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address!r} ({exc}); start one with `ray start --head` "
            "and pass the address it prints, or --address auto on a node of the cluster"
        ) from exc


def _check_fits(ray: Any, num_cpus: float, num_gpus: float) -> None:
    """Refuse a job no node of the cluster can hold: Ray queues it forever, and with its logs kept
    from the driver the run printed nothing (a 4-CPU job on a 2-CPU cluster)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for what, asked, flag in (("CPU", num_cpus, "num_cpus"), ("GPU", num_gpus, "num_gpus")):
        largest = max((float(r.get(what, 0.0)) for r in nodes), default=0.0)
        if asked > largest:
            raise ConfigError(
                f"each job asks for {flag}={asked:g}, but the largest node of the Ray cluster has {largest:g} "
                f"{what}s: lower {flag} in the config (or its flag), or add a node with enough"
            )


def _run_ray(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    keys: Sequence[str],
    *,
    address: str | None,
    num_cpus: float,
    num_gpus: float,
    done: Callable[[JobOutcome], None],
) -> None:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("the ray executor needs Ray: pip install 'autosparse[ray]'") from exc
    started = False
    if not ray.is_initialized():
        _check_reachable(address)
        on_sigterm = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        except ValueError as exc:  # "Invalid address format: bogus" came as a traceback
            raise ConfigError(f"--address {address!r} is not a Ray address ({exc}): {_ADDRESS_FORMS}") from None
        except ConnectionError as exc:
            if "Could not find any running Ray instance" in str(exc):  # nothing to join: token advice misled (helper)
                raise ConfigError(
                    f"--address {address}: no Ray cluster is running on this machine; start one with "
                    "`ray start --head`, or leave --address out to start a local one for this run"
                ) from exc
            token = Path("~/.ray/auth_token").expanduser().is_file() and not os.environ.get("RAY_AUTH_MODE")
            raise ConfigError(
                f"cannot reach the Ray cluster at {address!r}: {exc}; "
                + (
                    "this machine holds a Ray auth token (~/.ray/auth_token): a cluster started with token "
                    "authentication needs RAY_AUTH_MODE=token in the environment"
                    if token
                    else "start one with `ray start --head`"
                )
            ) from exc
        started = True
        _take_back_sigterm(on_sigterm)
    try:
        _check_fits(ray, num_cpus, num_gpus)
        remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(_call)
        refs = {remote.remote(fn, job, key): key for job, key in zip(jobs, keys, strict=True)}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # a worker that died (OOM, killed) is a failed job, not a failed grid
                    outcome = JobOutcome(refs[ref], False, error=f"ray task died: {exc}")
                done(outcome)
    finally:
        if started and address is None:
            ray.shutdown()
