"""Executors only decide *where* a job runs: local, process pool and Ray give the same store.

A failing job is reported without stopping the others, a worker that dies is a failed job
(not a crashed grid), and a grid entry with a bad option fails alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import _gen_helpers as helpers
import pytest
from _gen_helpers import assert_same_store, write_config

from autosparse.cli import main as cli_main
from autosparse.core.errors import ConfigError, StoreError, UnknownNameError
from autosparse.core.executors import JobOutcome, run_jobs
from data_gen.grid import GenConfig, expand_grid, generate

KEYS = [f"job{i}" for i in range(5)]


def by_key(outcomes: list[JobOutcome]) -> dict[str, JobOutcome]:
    assert len({o.key for o in outcomes}) == len(outcomes)
    return {o.key: o for o in outcomes}


# ------------------------------------------------------------------------------------ run_jobs


@pytest.mark.parametrize("executor", ["local", "process"])
def test_run_jobs_returns_every_outcome(executor: str) -> None:
    out = by_key(run_jobs(helpers.square, list(range(5)), KEYS, executor=executor, workers=2))
    assert {k: (o.ok, o.value) for k, o in out.items()} == {f"job{i}": (True, i * i) for i in range(5)}


@pytest.mark.parametrize("executor", ["local", "process"])
def test_without_a_terminal_each_finished_job_is_a_progress_line(
    executor: str, caplog: pytest.LogCaptureFixture
) -> None:
    # a nohup'd `bench --executor process` printed nothing between its first and last line
    with caplog.at_level("INFO", logger="autosparse.core.executors"):
        run_jobs(helpers.square, list(range(3)), KEYS[:3], executor=executor, workers=2, desc="grid")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("grid:")]
    assert [ln.split(" (")[0] for ln in lines] == ["grid: 1 of 3 done", "grid: 2 of 3 done", "grid: 3 of 3 done"]


def test_a_job_held_elsewhere_is_not_logged_as_done_here(caplog: pytest.LogCaptureFixture) -> None:
    # two gen processes on one store: each logged the runs it skipped as "k of N done (RUN)"
    from autosparse.core.claims import in_progress_elsewhere

    with caplog.at_level("INFO", logger="autosparse.core.executors"):
        run_jobs(in_progress_elsewhere, ["a"], ["a"], executor="local", desc="grid")
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("grid:")]
    assert line == "grid: 1 of 1 done (a, in progress in another process: waited for at the end)"


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_failing_job_is_reported_and_the_others_finish(executor: str) -> None:
    out = by_key(run_jobs(helpers.fail_on_three, list(range(5)), KEYS, executor=executor, workers=2))
    assert not out["job3"].ok
    assert out["job3"].error.startswith("ValueError: three is not allowed")
    assert "Traceback" in out["job3"].error  # a bug keeps its traceback for the report
    assert all(out[k].ok and out[k].value == i * i for i, k in enumerate(KEYS) if k != "job3")


def _user_error(x: int) -> int:
    raise StoreError(f"store says no to {x}")


def test_user_errors_are_reported_without_traceback() -> None:
    (o,) = run_jobs(_user_error, [1], ["k"])
    assert not o.ok and o.error == "store says no to 1"


def test_a_dying_worker_fails_its_own_job_only(caplog: pytest.LogCaptureFixture) -> None:
    """A dead worker broke the pool, which failed every job left, the other worker's and those not
    started included: one killed run stopped a whole grid (helper). A fresh pool takes them over."""
    for fn in (helpers.die_on_three, helpers.slow_die_on_three):  # the second: a bystander is running at the break
        out = by_key(run_jobs(fn, list(range(5)), KEYS, executor="process", workers=2))
        assert set(out) == set(KEYS)
        assert not out["job3"].ok and "worker process died running it alone" in out["job3"].error
        assert all(out[k].ok and out[k].value == int(k[-1]) ** 2 for k in KEYS if k != "job3"), out
    assert "go to a fresh pool" in caplog.text


def test_a_long_grid_on_a_pool_does_not_stall() -> None:
    """Each worker reports the job it takes through a pipe; read only after a break, it filled at ~700
    bench-length keys and every worker stalled on it (review)."""
    keys = [f"lenet_300_100__fashion-mnist__random_erk__d0.001__s{i}__0123456789abcdef" for i in range(1500)]
    out = run_jobs(helpers.square, list(range(1500)), keys, executor="process", workers=2)
    assert len(out) == 1500 and all(o.ok for o in out)


def test_a_job_no_worker_can_take_fails_once_not_forever() -> None:
    # a function the pool cannot send to its workers: no worker ever starts it, so no fresh pool would either
    (outcome,) = run_jobs(lambda x: x, [1], ["a"], executor="process", workers=1)
    assert not outcome.ok and "pickle" in outcome.error.lower()  # its own failure, not a dead worker's


def test_unknown_executor_and_empty_job_list() -> None:
    with pytest.raises(UnknownNameError, match="executor"):
        run_jobs(helpers.square, [1], ["a"], executor="dask")
    assert run_jobs(helpers.square, [], [], executor="process") == []


# ------------------------------------------------------------------------------------ same store


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs (seeds 0 and 1) of the tiny MLP grid."""
    return write_config(tmp_path_factory.mktemp("grid") / "two.yaml", seeds=[0, 1])


@pytest.fixture(scope="module")
def local_store(grid: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("local") / "store.zarr"
    outcomes = generate(GenConfig.from_yaml(grid), store, executor="local")
    assert all(o.ok for o in outcomes) and len(outcomes) == 2, [o.error for o in outcomes]
    return store


@pytest.mark.slow
def test_process_executor_writes_the_same_store(grid: Path, local_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "process.zarr"
    outcomes = generate(GenConfig.from_yaml(grid), store, executor="process", workers=2)
    assert sorted(o.key for o in outcomes if o.ok) == sorted(s.run_id for s in expand_grid(GenConfig.from_yaml(grid)))
    assert_same_store(store, local_store)


@pytest.fixture
def local_ray() -> object:
    ray = pytest.importorskip("ray")
    tests_dir = str(Path(__file__).parent)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        # so workers can import the picklable jobs of tests/_gen_helpers.py by name
        runtime_env={"env_vars": {"PYTHONPATH": tests_dir}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.ray
def test_ray_executor_writes_the_same_store(local_ray: object, grid: Path, local_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "ray.zarr"
    outcomes = generate(GenConfig.from_yaml(grid), store, executor="ray")
    assert [o.ok for o in outcomes] == [True, True], [o.error for o in outcomes]
    assert_same_store(store, local_store)
    # A failing job on Ray is reported like anywhere else, and the others finish.
    out = by_key(run_jobs(helpers.fail_on_three, list(range(5)), KEYS, executor="ray"))
    assert not out["job3"].ok and "three is not allowed" in out["job3"].error
    assert all(out[k].ok for k in KEYS if k != "job3")
    assert local_ray.is_initialized()  # run_jobs leaves a Ray it did not start running
    # a job no node can hold was queued forever without a word
    with pytest.raises(ConfigError, match=r"num_cpus=4, but the largest node of the Ray cluster has 2 CPUs"):
        run_jobs(helpers.fail_on_three, [0], ["job0"], executor="ray", num_cpus=4)


@pytest.mark.slow
def test_a_bad_grid_entry_is_refused_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every model is built for its dataset before the first IRP round: a bad option used to fail its run
    alone while the others trained, and the user heard of it hours in. (A job that fails at run time
    still fails alone: test_a_failing_job_is_reported_and_the_others_finish.)"""
    models = [
        {"model": "mlp", "model_kwargs": {"widths": [32, 16]}},
        {"model": "mlp", "model_kwargs": {"widths": [32, 16], "dropout": 0.5}},  # mlp has no dropout option
    ]
    cfg = write_config(tmp_path / "bad.yaml", models=models)
    store = tmp_path / "bad.zarr"
    rc = cli_main(["gen", "--config", str(cfg), "--store", str(store), "--executor", "process", "--workers", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "dropout" in err[0]
    assert not store.exists()  # nothing was made


def test_unreachable_ray_cluster_is_one_line_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Ray itself retries an unreachable address for minutes; the executor fails in seconds."""
    pytest.importorskip("ray")
    cfg = write_config(tmp_path / "tiny.yaml")
    args = ["gen", "--config", str(cfg), "--store", str(tmp_path / "s.zarr"), "--executor", "ray"]
    assert cli_main([*args, "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("autosparse gen: error: cannot reach the Ray cluster at '127.0.0.1:1'")
    # --check called an address nothing listens on valid; the run then refused it after making the store (helper)
    assert not (tmp_path / "s.zarr").exists()
    assert cli_main([*args, "--address", "127.0.0.1:1", "--check"]) == 2
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in capsys.readouterr().err
    assert cli_main([*args, "--address", "bogus"]) == 2  # was a 30-line ValueError traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'bogus' is not a Ray address" in err[0] and "6379" in err[0]
    assert not (tmp_path / "s.zarr").exists()  # refused before the store is made (helper)
    assert cli_main([*args, "--address", ":6379"]) == 2  # Ray's own traceback came first (helper)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out and "':6379' has no host" in captured.err


def _helpers_env() -> dict[str, str]:
    """A script's environment in which it, and the pool workers it spawns, import tests/_gen_helpers."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}


def _run_script(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=_helpers_env(), timeout=120
    )


def _run_main(tmp_path: Path, *lines: str) -> subprocess.CompletedProcess[str]:
    """A script of ``lines`` under the spawn guard, with the helpers and ``run_jobs`` imported, run."""
    script = tmp_path / "run.py"
    head = "import logging, sys\nimport _gen_helpers as helpers\nfrom autosparse.core.executors import run_jobs\n"
    script.write_text(head + "if __name__ == '__main__':\n" + "".join(f"    {line}\n" for line in lines))
    return _run_script(script)


def test_pool_workers_log_as_the_parent_and_draw_no_bars(tmp_path: Path) -> None:
    """A spawned worker starts with logging unset (its warnings came without level and name) and drew
    its jobs' bars over the parent's (helper); it now logs warnings in the parent's format, no bars."""

    proc = _run_main(
        tmp_path,
        "logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')",
        "logging.getLogger('autosparse').setLevel(logging.INFO)",
        "out = run_jobs(helpers.warn_and_square, [2, 3], ['a', 'b'], executor='process', workers=2)",
        "print(sorted(o.value for o in out))",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[4, 9]"
    assert "WARNING autosparse.jobtest: job 2 warns" in proc.stderr
    assert "job 2 informs" not in proc.stderr  # info stays in the worker: the parent says each job's end


def test_pool_workers_log_through_the_parent_each_warning_once(tmp_path: Path) -> None:
    """Each worker wrote to the terminal itself: its warnings were glued onto the parent's bar line, and
    a warning each worker says once (autos' guards) came once per worker (helper)."""
    proc = _run_main(
        tmp_path,
        "logging.basicConfig(format='PARENT %(levelname)s %(name)s: %(message)s')",
        "out = run_jobs(helpers.warn_the_same, [1, 2, 3, 4], list('abcd'), executor='process', workers=2)",
        "print(sorted(o.value for o in out))",
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "[1, 2, 3, 4]", proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "the same in every job" in ln]
    assert lines == ["PARENT WARNING autosparse.jobtest: the same in every job"], proc.stderr


def test_pool_workers_show_our_warnings_as_the_cli_does(tmp_path: Path) -> None:
    """The CLI shows our warnings as log lines; its pool workers printed them as
    `…/allocation.py:107: RuntimeWarning: …` (review)."""

    proc = _run_main(
        tmp_path,
        "from autosparse.cli import configure_logging",
        "configure_logging(0)",
        "print([o.ok for o in run_jobs(helpers.warn_ties, [1], ['a'], executor='process', workers=1)])",
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "[True]", proc.stderr
    assert "WARNING autosparse.core.allocation: 50 of the 100 kept weights" in proc.stderr
    assert "RuntimeWarning" not in proc.stderr


def test_an_interrupted_pool_stops_every_worker_and_leaks_nothing(tmp_path: Path) -> None:
    """Ctrl-C left the pool's thread holding its queues past exit, and the resource tracker warned of
    "leaked semaphore objects"; a worker ignoring SIGTERM would also have outlived the run."""
    import signal
    import time

    pids = tmp_path / "pids"
    pids.mkdir()
    script = tmp_path / "run.py"
    script.write_text(
        "import signal, sys\n"
        "import _gen_helpers as helpers\n"
        "from autosparse.core.executors import run_jobs\n"
        "if __name__ == '__main__':\n"
        "    signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job starts with it ignored\n"
        "    try:\n"
        f"        run_jobs(helpers.note_pid_and_wait, [({str(pids)!r}, True), ({str(pids)!r}, False), "
        f"({str(pids)!r}, False)], ['a', 'b', 'c'], executor='process', workers=2)\n"
        "    except KeyboardInterrupt:\n"
        "        sys.exit(130)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True, env=_helpers_env())
    deadline = time.monotonic() + 120
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert len(list(pids.iterdir())) == 2, "the two workers did not start their jobs"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "leaked" not in err, err
    for pid in (int(p.stem) for p in pids.iterdir()):  # the SIGTERM-deaf worker was killed too
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_progress_line_names_jobs_this_process_did_not_compute() -> None:
    from autosparse.core.executors import JobOutcome, _state

    assert _state(JobOutcome("k", True, {"run_id": "k"})) == ""
    assert _state(JobOutcome("k", False, error="x")) == ", failed"
    assert (
        _state(JobOutcome("k", True, {"skipped": True, "elsewhere": True}))
        == ", in progress in another process: waited for at the end"
    )
    # complete when its turn came (another process finished it after this one planned): not "done" here
    assert _state(JobOutcome("k", True, {"skipped": True})) == ", done by another process"
    assert (
        _state(JobOutcome("k", True, {"skipped": True, "same_as_another_row": True})) == ", the same as another row's"
    )


def test_a_job_larger_than_the_local_ray_is_refused_before_anything_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from autosparse.cli import main as cli_main
    from autosparse.core.errors import ConfigError
    from autosparse.core.executors import ExecutorConfig

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))  # no cluster `ray start` left running here
    cores = os.cpu_count() or 1
    with pytest.raises(ConfigError, match=f"num_cpus={cores + 1}, but the local Ray .* {cores} CPUs"):
        ExecutorConfig("ray").check_fits_here(cores + 1)
    ExecutorConfig("ray").check_fits_here(cores)
    ExecutorConfig("ray", address="auto").check_fits_here(cores + 1)  # a joined cluster is checked when joined
    # GPUs too: num_gpus above this machine's passed --check and failed once Ray had started (hunt)
    with pytest.raises(ConfigError, match=r"num_gpus=1, but the local Ray .* 0 GPU\(s\)"):
        ExecutorConfig("ray").check_fits_here(1, num_gpus=1, gpus_here=0)
    ExecutorConfig("ray").check_fits_here(1, num_gpus=1, gpus_here=1)
    ExecutorConfig("process").check_fits_here(1, num_gpus=4, gpus_here=0)  # not a Ray job's reservation
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")  # where ray.init without an address goes (review)
    ExecutorConfig("ray").check_fits_here(cores + 1)
    monkeypatch.delenv("RAY_ADDRESS")
    ExecutorConfig("process").check_fits_here(cores + 1)  # Ray's reservation: the pool ignores it
    code = cli_main([
        "gen", "--config", str(helpers.write_config(tmp_path / "g.yaml")), "--store", str(tmp_path / "s.zarr"),
        "--executor", "ray", "--num-cpus", str(cores + 1), "--check",
    ])  # fmt: skip
    assert code == 2 and not (tmp_path / "s.zarr").exists()
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("127.0.0.1:6379")
    ExecutorConfig("ray").check_fits_here(cores + 1)  # ray.init joins that cluster: checked when joined
    (tmp_path / "ray" / "ray_current_cluster").unlink()
    (tmp_path / "elsewhere" / "ray").mkdir(parents=True)
    (tmp_path / "elsewhere" / "ray" / "ray_current_cluster").write_text("127.0.0.1:6379")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "elsewhere"))  # Ray reads it before TMPDIR
    ExecutorConfig("ray").check_fits_here(cores + 1)


def test_log_lines_go_through_the_bars_at_the_console_handlers_level() -> None:
    """tqdm's redirect dropped the handler's level (INFO reached a WARNING console) and added a console
    handler where a library caller had none (review)."""
    import logging

    from autosparse.core.executors import _BarSafeHandler, _log_through_bars

    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        for h in saved:
            root.removeHandler(h)
        with _log_through_bars():
            assert root.handlers == []  # none added
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING)
        root.addHandler(console)
        with _log_through_bars():
            (swapped,) = root.handlers
            assert isinstance(swapped, _BarSafeHandler) and swapped.level == logging.WARNING
        assert root.handlers == [console]
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)


def test_a_repeated_key_is_not_blamed_for_its_twins_death() -> None:
    """Jobs were tracked by key: a harmless job sharing the killer's key failed with it (review)."""
    out = run_jobs(helpers.die_on_three, [3, 2, 1], ["a", "a", "b"], executor="process", workers=2)
    assert sorted((o.key, o.ok, o.value) for o in out) == [("a", False, None), ("a", True, 4), ("b", True, 1)]


def test_a_script_without_the_spawn_guard_is_told_so(tmp_path: Path) -> None:
    """Spawned workers re-run a script's top level: without `if __name__ == "__main__":` each died before
    taking a job, and every job failed with "terminated abruptly", naming no fix (Python-jobs hunt)."""
    script = tmp_path / "run.py"
    script.write_text(
        "import _gen_helpers as helpers\n"
        "from autosparse.core.executors import run_jobs\n"
        "out = run_jobs(helpers.square, [1, 2], ['a', 'b'], executor='process', workers=1)\n"
        "print([not o.ok and 'under `if __name__ == \"__main__\":`' in o.error for o in out])\n"
    )
    proc = _run_script(script)
    assert proc.stdout.strip().splitlines()[-1] == "[True, True]", proc.stdout + proc.stderr[-500:]


def test_a_gpu_device_on_ray_without_a_gpu_reserved_is_refused() -> None:
    """Ray hands a job a GPU only when it reserves one: `device: cuda` with num_gpus 0 passed --check and
    failed every cell (hunt)."""
    from autosparse.core.errors import ConfigError
    from autosparse.training.trainer import check_job_device

    with pytest.raises(ConfigError, match=r"device 'cuda:0' on Ray with num_gpus 0: .*--num-gpus 1"):
        check_job_device("cuda:0", "ray", 0)
    check_job_device("cuda", "ray", 0.5)  # the driver needs no GPU of its own
    check_job_device("cpu", "ray", 0)
