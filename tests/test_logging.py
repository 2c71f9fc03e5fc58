"""Log lines tell the truth and stay ours: IRP resume messages, scorer progress, quiet libraries under ``-v``."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autosparse.data import load_dataset
from autosparse.models import build_model
from autosparse.training.irp import IRPConfig, run_irp
from autosparse.training.trainer import TrainConfig

REPO = Path(__file__).resolve().parents[1]


class Stop(Exception):
    pass


def test_irp_resume_lines_say_what_happens(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = load_dataset("fake:digits", n_train=120, n_test=40, seed=0)
    irp, train = IRPConfig(rounds=2, prune_fraction=0.5), TrainConfig(epochs=1, batch_size=64, num_threads=1)

    def stop_after_round_0(r: int, density: float, accuracy: float) -> None:
        if r == 0:
            raise Stop

    wd = tmp_path / "wd"
    model = build_model("mlp", (1, 8, 8), 10, seed=0, widths=(8,))
    with caplog.at_level(logging.INFO, logger="autosparse.training.irp"):
        with pytest.raises(Stop):
            run_irp(model, data, irp, train, seed=0, workdir=wd, on_round=stop_after_round_0)
        caplog.clear()
        run_irp(model, data, irp, train, seed=0, workdir=wd)
        assert "resuming IRP at round 1 of 2: round 0 was finished before" in caplog.text
        assert "IRP round 0/2" not in caplog.text and "IRP round 2/2" in caplog.text
        caplog.clear()
        # a finished run's checkpoint (next round 3 of a 2-round run): nothing is retrained, and it says so
        run_irp(model, data, irp, train, seed=0, workdir=wd)
    assert "all 3 trainings of this 2-round IRP were already checkpointed" in caplog.text
    assert "resuming" not in caplog.text and not re.search(r"IRP round \d", caplog.text)


@pytest.mark.slow
def test_train_scorer_verbose_shows_our_progress_and_no_library_debug(tmp_path: Path) -> None:
    """``-v`` turns up our loggers only; without a terminal the ranker's progress is a log line per
    evaluation; the held-out table ends the output; the GNN path prints no deprecation warning."""
    from autosparse.task import ModelSpec
    from data_gen.grid import GenConfig, generate

    store = tmp_path / "s.zarr"
    cfg = GenConfig(
        models=[ModelSpec("mlp", {"widths": [16]}), ModelSpec("mlp", {"widths": [12]})],
        datasets=["fashion-mnist"],
        seeds=[0],
        irp=IRPConfig(rounds=2, prune_fraction=0.5),
        train=TrainConfig(epochs=1, batch_size=128, num_threads=1),
        n_train=300,
        n_test=100,
        samples_per_class=2,
    )
    assert all(o.ok for o in generate(cfg, store))
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    args = ["--store", str(store), "--holdout", "model_label=mlp-widths12", "--out", str(tmp_path / "scorer")]
    args += ["--arch", "gnn", "--steps", "20", "--eval-every", "10", "--group-size", "64", "--alloc-steps", "20"]
    proc = subprocess.run(
        [sys.executable, "-m", "autosparse", "-v", "train-scorer", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    logged = [line for line in proc.stderr.splitlines() if re.match(r"(DEBUG|INFO) \S+: ", line)]
    theirs = [line for line in logged if not re.match(r"(DEBUG|INFO) (autosparse|data_gen)[.:]", line)]
    assert not theirs, theirs[:5]
    assert "Warning" not in proc.stderr, proc.stderr
    assert "INFO autosparse.scorer.fit: gnn ranker step 10/20: loss" in proc.stderr
    assert "held-out precision" in proc.stderr
    assert "| ranker | Spearman" in proc.stdout and proc.stdout.rstrip().splitlines()[-1].startswith("| random |")


def test_verbose_prune_says_where_autos_spent_its_time() -> None:
    # `-v` added nothing to `prune`; it now gives autos' stage times and the kept count
    cmd = [
        sys.executable,
        "-m",
        "autosparse.cli",
        "prune",
        "-v",
        "--model",
        "mlp",
        "--model-kwargs",
        '{"widths": [16]}',
    ]
    cmd += ["--dataset", "fake:fashion-mnist", "--method", "autos", "--density", "0.1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "features" in proc.stderr and "repair" in proc.stderr and "weights kept" in proc.stderr


def test_our_warnings_are_one_log_line_in_the_cli_and_others_stay_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """SNIP's tie warning printed as `…/registry.py:127: RuntimeWarning: …` among one-line
    `WARNING autosparse…` messages (helper); another library's warnings keep Python's form."""
    import warnings

    from autosparse.cli import configure_logging
    from autosparse.core.allocation import warn_position_fill

    saved = warnings.showwarning
    theirs: list[str] = []
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: theirs.append(
        f"{filename}:{lineno}: {category.__name__}: {message}"
    )
    try:
        configure_logging(0)
        configure_logging(0)  # a second main() in one process does not wrap it twice
        with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="autosparse"):
            warnings.simplefilter("always")
            warn_position_fill(100, 50, 400, 0.0, stacklevel=1)
            warnings.warn_explicit("theirs", RuntimeWarning, "/elsewhere/lib.py", 7)
    finally:
        warnings.showwarning = saved
    # a command's main() gives the caller's showwarning back: a notebook's later calls keep real warnings (review)
    from autosparse.cli import main

    before = warnings.showwarning
    assert main(["methods"]) == 0
    assert warnings.showwarning is before
    ours = [r for r in caplog.records if r.name == "autosparse.core.allocation"]
    assert len(ours) == 1 and ours[0].getMessage().startswith("50 of the 100 kept weights")
    assert theirs == ["/elsewhere/lib.py:7: RuntimeWarning: theirs"]  # passed on once, as Python shows it
