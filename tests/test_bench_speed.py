"""The speed benchmark: time to mask, ratio to the reference, peak memory, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from autosparse.bench import MethodSpec, SpeedConfig, SpeedModel, run_speed
from autosparse.bench.measure import Measurement, measure_isolated
from autosparse.bench.speed import speed_config_from_dict
from autosparse.core.errors import ConfigError, UnknownNameError
from autosparse.task import DataSpec


def tiny_speed(**changes: object) -> SpeedConfig:
    base = {
        "name": "tiny",
        "models": [
            {"model": "mlp", "model_kwargs": {"widths": [16]}, "dataset": "fake:fashion-mnist", "name": "mlp16"},
            {"model": "mlp", "model_kwargs": {"widths": [64, 32]}, "dataset": "fake:fashion-mnist", "name": "mlp64"},
        ],
        "methods": ["random", "magnitude", "synflow"],
        "samples_per_class": 2,
        "isolate": False,
        "num_threads": 1,
    }
    return speed_config_from_dict({**base, **changes})


def test_speed_in_process(tmp_path: Path) -> None:
    cfg = tiny_speed(methods=["random", "magnitude", {"method": "synflow", "hparams": {"rounds": 5}}])
    result = run_speed(cfg, tmp_path)
    # the reference (snip) is measured although not listed, so every ratio has a denominator
    assert [m.title() for m in cfg.all_methods()] == ["snip", "random", "magnitude", "synflow(rounds=5)"]
    assert len(result.rows) == 8 and all(r["ok"] for r in result.rows), [r.get("error") for r in result.rows]
    for r in result.rows:
        assert r["seconds"] > 0 and r["weights_per_s"] == pytest.approx(r["weights"] / r["seconds"])
        ref = next(x for x in result.rows if x["model"] == r["model"] and x["label"] == "snip")
        assert r["ratio_to_reference"] == pytest.approx(r["seconds"] / ref["seconds"])
    weights = {r["model"]: r["weights"] for r in result.rows}
    assert weights == {"mlp16": 784 * 16 + 16 * 10, "mlp64": 784 * 64 + 64 * 32 + 32 * 10}
    md = (tmp_path / "report.md").read_text()
    assert "snip *(reference)*" in md and "(×1)" in md and "mlp64 (53k)" in md
    assert (tmp_path / "speed.csv").read_text().count("\n") == 9
    png = next((tmp_path / "plots").glob("*.png")).read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 5000


def test_isolated_measurement_reports_peak_memory() -> None:
    cfg = tiny_speed(samples_per_class=2)
    task = cfg.task(SpeedModel("mlp", {"widths": [256]}, dataset="fake:fashion-mnist"))
    # only shapes matter for timing: fake data just big enough for the pruning batch, seeded by the bench seed
    assert task.data == DataSpec("fake:fashion-mnist", n_train=40, n_test=10, data_seed=0)
    case = Measurement(task, MethodSpec("snip"), 0.05, 2, 0, 1, 1, "cpu")
    row = measure_isolated(case, timeout_s=300)
    assert row["ok"], row.get("error")
    assert row["weights"] == 784 * 256 + 2560 and row["peak_rss_mb"] >= 0
    assert row["memory_method"] in ("VmHWM reset before pruning", "ru_maxrss increase")
    # a measurement past its time limit is killed and recorded, not waited on
    late = measure_isolated(case, timeout_s=0.2)
    assert not late["ok"] and late["timed_out"] and "timed out" in late["error"]


def test_unknown_method_names_it() -> None:
    with pytest.raises(UnknownNameError, match="'autos_v0'"):
        tiny_speed(methods=[{"method": "autos_v0", "hparams": {"scorer": "mlp_fmnist"}}]).validate()
    with pytest.raises(ConfigError, match="imp"):
        tiny_speed(methods=["imp"]).validate()
    with pytest.raises(ConfigError, match="kind"):
        speed_config_from_dict({"kind": "accuracy"})


def test_failed_measurement_is_recorded_not_fatal(tmp_path: Path) -> None:
    # resnet20 cannot take 1-D signals: that measurement fails, the others go on
    cfg = tiny_speed(
        models=[
            {"model": "mlp", "model_kwargs": {"widths": [8]}, "dataset": "fake:fashion-mnist", "name": "ok"},
            {"model": "resnet20", "dataset": "fake:mnist1d", "name": "bad"},
        ],
        methods=["random"],
    )
    result = run_speed(cfg, tmp_path)
    bad = [r for r in result.rows if r["model"] == "bad"]
    assert bad and not any(r["ok"] for r in bad) and all(r["error"] for r in bad)
    assert "failed" in result.tables
