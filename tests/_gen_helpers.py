"""Shared pieces of the data-generation tests: tiny grids, store snapshots, picklable jobs.

Kept out of the test modules so that process/Ray workers can import the job functions by a
stable module name, and so the "same store" comparison is written once for every executor.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autosparse.store import StoreReader

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).parent / "autosparse"
#: The installed console script when there is one (what a user runs), else the same entry point.
CLI = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "import sys; from autosparse.cli import main; sys.exit(main())"]
)

#: A grid small enough for a 2-core machine under load: two 784-32-16-10 MLPs (25,760 weights),
#: 2,000 Fashion-MNIST training images, one epoch per round, three rounds.
TINY: dict[str, Any] = {
    "models": [{"model": "mlp", "model_kwargs": {"widths": [32, 16]}}],
    "datasets": ["fashion-mnist"],
    "seeds": [0],
    "n_train": 2000,
    "n_test": 500,
    "irp": {"rounds": 3, "prune_fraction": 0.5},
    "train": {"epochs": 1, "batch_size": 128, "num_threads": 1},
    "samples_per_class": 4,
}


#: A grid of four runs that take about a second each: two small MLPs x two seeds on scikit-learn's
#: digits (8x8 images), half an epoch per round, three rounds. For tests of several processes.
DIGITS: dict[str, Any] = {
    "models": [
        {"model": "mlp", "model_kwargs": {"widths": [16]}},
        {"model": "mlp", "model_kwargs": {"widths": [12, 8]}},
    ],
    "datasets": ["digits"],
    "seeds": [0, 1],
    "irp": {"rounds": 3, "prune_fraction": 0.5},
    "train": {"epochs": 0.5, "batch_size": 64, "num_threads": 1},
    "samples_per_class": 2,
}


def write_config(path: Path, base: dict[str, Any] | None = None, **overrides: Any) -> Path:
    """A YAML generation config: ``base`` (default ``TINY``) with top-level keys replaced (nested dicts merged)."""
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (base or TINY).items()}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The real ``autosparse`` command line in a fresh interpreter (what a user runs)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run(
        [*CLI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


#: Attributes that record when, how fast and by whom a run was made, not what it is.
VOLATILE_ATTRS = frozenset({"written_at", "written_by", "seconds_train", "seconds_total"})


def snapshot(store: Path, ignore: frozenset[str] | set[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """Everything a run's result consists of: every array (features, label, layer, graph/…,
    extra/…) and every attribute except :data:`VOLATILE_ATTRS` (and ``ignore``)."""
    reader = StoreReader(store)
    out = {}
    for run_id in reader.run_ids:
        data = reader.load_run(run_id)
        arrays = {"features": data.features, "label": data.label, "layer": data.layer}
        arrays |= {f"graph/{k}": v for k, v in data.graph.items()} | {f"extra/{k}": v for k, v in data.extra.items()}
        skip = VOLATILE_ATTRS | set(ignore)
        out[run_id] = {
            **{k: np.asarray(v) for k, v in arrays.items()},
            "attrs": {k: v for k, v in data.attrs.items() if k not in skip},
        }
    return out


def assert_same_store(a: Path, b: Path, ignore: frozenset[str] | set[str] = frozenset()) -> None:
    """Two stores hold the same runs, bit for bit: every array's bytes and every non-volatile attribute."""
    sa, sb = snapshot(a, ignore), snapshot(b, ignore)
    assert sorted(sa) == sorted(sb), f"different runs: {sorted(sa)} vs {sorted(sb)}"
    assert sa, "no complete run to compare"
    for run_id in sa:
        ra, rb = sa[run_id], sb[run_id]
        assert sorted(ra) == sorted(rb), f"{run_id}: different arrays {sorted(ra)} vs {sorted(rb)}"
        for key in ra:
            if key == "attrs":
                continue
            assert ra[key].dtype == rb[key].dtype and ra[key].shape == rb[key].shape, (run_id, key)
            assert ra[key].tobytes() == rb[key].tobytes(), f"{run_id}: {key} differs"
        diff = {k for k in ra["attrs"].keys() | rb["attrs"].keys() if ra["attrs"].get(k) != rb["attrs"].get(k)}
        assert not diff, f"{run_id}: attrs {sorted(diff)} differ"


# ---------------------------------------------------------------- counting IRP trainings across processes

#: The real ``autosparse`` CLI with one test-only patch: every IRP round a process trains (and
#: checkpoints) is appended to $AUTOSPARSE_TEST_COUNT as "pid run_id round" — so trainings can
#: be counted across processes, including ones killed with SIGKILL.
COUNTING_CLI = textwrap.dedent(
    """
    import os, sys
    import autosparse.sources as sources
    from autosparse.cli import main

    real = sources.run_irp

    def run_irp(*args, workdir, on_round=None, **kwargs):
        def count(r, density, accuracy):
            with open(os.environ["AUTOSPARSE_TEST_COUNT"], "a") as f:
                f.write(f"{os.getpid()} {workdir.name} {r}\\n")
        return real(*args, workdir=workdir, on_round=count, **kwargs)

    sources.run_irp = run_irp
    sys.exit(main(sys.argv[1:]))
    """
)


def start_counting_cli(count_file: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUTOSPARSE_TEST_COUNT": str(count_file)}
    return subprocess.Popen(
        [sys.executable, "-c", COUNTING_CLI, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def trainings(count_file: Path) -> list[tuple[int, str, int]]:
    """The (pid, run id, round) lines the counting CLI wrote: one per IRP round trained."""
    if not count_file.exists():
        return []
    return [(int(p), run, int(r)) for p, run, r in (line.split() for line in count_file.read_text().splitlines())]


# ---------------------------------------------------------------- picklable jobs for the executors


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def die_on_three(x: int) -> int:
    """A worker killed mid-job (OOM killer, kill -9): the process vanishes without an exception."""
    if x == 3:
        os._exit(1)
    return x * x


def warn_and_square(x: int) -> int:
    """A job that logs a warning and an info line."""
    import logging

    logging.getLogger("autosparse.jobtest").warning("job %d warns", x)
    logging.getLogger("autosparse.jobtest").info("job %d informs", x)
    return x * x


def warn_the_same(x: int) -> int:
    """A job whose warning reads the same in every job (as a check each worker says once)."""
    import logging

    logging.getLogger("autosparse.jobtest").warning("the same in every job")
    return x


def slow_die_on_three(x: int) -> int:
    """die_on_three with jobs that last: the other worker's job is running when the pool breaks."""
    import time

    if x == 3:
        time.sleep(0.3)
        os._exit(1)
    time.sleep(0.8)
    return x * x


def note_pid_and_wait(job: tuple[str, bool]) -> int:
    """Write this worker's pid into the folder ``job[0]``, then wait for a minute; with ``job[1]``
    the worker ignores SIGTERM first (a job stuck where the signal cannot stop it)."""
    import signal
    import time

    from tqdm.auto import tqdm

    folder, deaf = job
    if deaf:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for _ in tqdm(range(2), disable=None):  # as a job's training bars do: tqdm's lock is made in the worker
        pass
    (Path(folder) / f"{os.getpid()}.pid").write_text("")
    time.sleep(60)
    return 0


def warn_ties(x: int) -> int:
    """A job whose pruning warns through ``warnings.warn`` from our code (SNIP's ties)."""
    from autosparse.core.allocation import warn_position_fill

    warn_position_fill(100, 50, 400, 0.0, stacklevel=1)
    return x
