"""The main job end to end on a tiny setting: every step runs, the table has the rows, a rerun reuses."""

from __future__ import annotations

import time

import pytest

from autosparse.demo import DemoConfig, resolve_dataset, run_demo
from autosparse.task import ModelSpec


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(tmp_path) -> None:
    cfg = DemoConfig(
        out=str(tmp_path / "demo"),
        dataset="fashion-mnist",
        n_train=1500,
        n_test=500,
        densities=(0.05, 0.02),
        source_models=[ModelSpec("mlp", {"widths": [48, 24]}), ModelSpec("mlp", {"widths": [64]})],
        heldout_model="lenet_300_100",
        irp_rounds=3,
        gen_epochs=0.5,
        bench_epochs=0.5,
        scorer_steps=30,
        baselines=("random", "synflow"),
    )
    table = run_demo(cfg)
    for row in ("autos", "autos (shipped)", "random", "synflow", "imp"):
        assert row in table
    assert (tmp_path / "demo" / "bench" / "report.md").exists()
    assert list((tmp_path / "demo" / "bench" / "plots").glob("*.png"))
    start = time.perf_counter()
    again = run_demo(cfg)
    assert again.split("report:")[0] == table.split("report:")[0]
    assert time.perf_counter() - start < 60  # nothing retrained: store, scorer and cells are reused


def test_dataset_auto_prefers_installed_fashion_mnist() -> None:
    assert resolve_dataset("mnist1d") == "mnist1d"
    assert resolve_dataset("auto") in ("fashion-mnist", "mnist1d")
