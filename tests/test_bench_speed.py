"""The speed benchmark: time to mask, ratio to the reference, peak memory, clear errors."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from pathlib import Path

import pytest
import torch

from autosparse.bench import MethodSpec, SpeedConfig, SpeedModel, run_speed
from autosparse.bench.config import config_kind
from autosparse.bench.floors import floor_config, run_floor
from autosparse.bench.measure import Measurement, measure_isolated
from autosparse.bench.speed import MEASURING_LOCK, speed_config_from_dict
from autosparse.bench.train_speed import TrainSpeedConfig, TrainSpeedModel, report, run_train_speed
from autosparse.core.claims import claim
from autosparse.core.errors import ConfigError, UnknownNameError
from autosparse.data.pruning_data import PruningData
from autosparse.models import build_model
from autosparse.pruners import prune
from autosparse.task import DataSpec

REPO = Path(__file__).resolve().parents[1]


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
    # ... and the iterative method's floor loop right after it, on each model
    labels = ["snip", "random", "magnitude", "synflow(rounds=5)", "synflow(rounds=5) floor"]
    assert [r["label"] for r in result.rows[:5]] == labels
    assert len(result.rows) == 10 and all(r["ok"] for r in result.rows), [r.get("error") for r in result.rows]
    for r in result.rows:
        assert r["seconds"] > 0 and r["weights_per_s"] == pytest.approx(r["weights"] / r["seconds"])
        ref = next(x for x in result.rows if x["model"] == r["model"] and x["label"] == "snip")
        assert r["ratio_to_reference"] == pytest.approx(r["seconds"] / ref["seconds"])
        floor = next((x for x in result.rows if x["model"] == r["model"] and x["label"] == r["label"] + " floor"), None)
        assert (r["ratio_to_floor"] is None) == (floor is None)
        if floor is not None:
            assert r["ratio_to_floor"] == pytest.approx(r["seconds"] / floor["seconds"])
            assert (
                floor["floor"] and 0 < floor["kept"] <= r["kept"]
            )  # a floor prunes every weight tied at the threshold
    weights = {r["model"]: r["weights"] for r in result.rows}
    assert weights == {"mlp16": 784 * 16 + 16 * 10, "mlp64": 784 * 64 + 64 * 32 + 32 * 10}
    md = (tmp_path / "report.md").read_text()
    assert "snip *(reference)*" in md and "(×1)" in md and "mlp64 (53k)" in md
    assert "over their floor loops" in md and "synflow(rounds=5) floor" in md
    assert (tmp_path / "speed.csv").read_text().count("\n") == 11
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


def test_a_model_that_cannot_take_its_data_fails_the_check_not_every_measurement() -> None:
    with pytest.raises(ConfigError):
        tiny_speed(models=[{"model": "resnet20", "dataset": "fake:mnist1d", "name": "bad"}]).validate()
    with pytest.raises(ConfigError):
        TrainSpeedConfig(models=[TrainSpeedModel("mlp", {"widths": [-4]})], dataset="fake:fashion-mnist").validate()


def test_unknown_method_names_it() -> None:
    with pytest.raises(UnknownNameError, match="'autos_v0'"):
        tiny_speed(methods=[{"method": "autos_v0", "hparams": {"scorer": "mlp_fmnist"}}]).validate()
    with pytest.raises(ConfigError, match="imp"):
        tiny_speed(methods=["imp"]).validate()
    with pytest.raises(ConfigError, match="kind"):
        speed_config_from_dict({"kind": "accuracy"})


@pytest.mark.parametrize("timeout", [0.0, -5.0, float("nan"), float("inf")])
def test_a_timeout_that_is_no_time_is_refused_by_the_check_too(
    timeout: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 timed every measurement out, NaN or -5 too, and --check had called the config valid."""
    with pytest.raises(ConfigError, match="timeout_s must be a positive number of seconds"):
        tiny_speed(timeout_s=timeout).validate()
    from autosparse.cli import main

    assert main(["bench", "speed", "--check", "--timeout-s", str(timeout), "--out", str(tmp_path / "s")]) == 2
    assert "timeout_s must be a positive" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_a_row_whose_scorer_is_not_there_is_refused_before_measuring_and_by_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every `autos` measurement failed after the others' time was spent, and --check said valid (helper)."""
    from autosparse.cli import main
    from autosparse.core.errors import CheckpointError

    row = {"method": "autos", "hparams": {"scorer": str(tmp_path / "nowhere")}, "label": "x"}
    with pytest.raises(
        CheckpointError, match=r"bench row 'x': .*nowhere.*; or leave it out: --methods (snip,)?random$"
    ):
        run_speed(tiny_speed(methods=["random", row]), tmp_path / "s")
    assert not (tmp_path / "s" / "measurements").exists()
    methods = json.dumps(
        ["random", {"method": "autos", "hparams": {"scorer": str(tmp_path / "nowhere")}, "label": "x"}]
    )
    assert main(["bench", "speed", "--check", "--methods", methods, "--out", str(tmp_path / "s")]) == 2
    assert "bench row 'x'" in capsys.readouterr().err


def test_a_folder_another_process_measures_into_is_refused(tmp_path: Path) -> None:
    """Two speed benches on one --out each measured everything beside the other, so every time was skewed:
    the second one is refused before it measures anything, and the folder is free again once released."""
    speed_out, train_out = tmp_path / "speed", tmp_path / "train"  # one folder a kind: the other is refused by kind
    held, release = threading.Event(), threading.Event()

    def other_process() -> None:  # a claim taken in another thread is, to flock, another holder
        with claim(speed_out / MEASURING_LOCK) as mine, claim(train_out / MEASURING_LOCK) as also:
            assert mine and also
            held.set()
            release.wait(30)

    thread = threading.Thread(target=other_process)
    thread.start()
    cfg = tiny_speed(models=[{"model": "mlp", "model_kwargs": {"widths": [8]}, "dataset": "fake:fashion-mnist"}])
    cfg.methods = [MethodSpec("random")]
    try:
        assert held.wait(30)
        with pytest.raises(
            ConfigError, match=r"is being measured by another process \(pid \d+ on .*choose another --out"
        ):
            run_speed(cfg, speed_out)
        assert not list((speed_out / "measurements").glob("*.json")) and not (speed_out / "report.md").exists()
        train = TrainSpeedConfig(
            models=[TrainSpeedModel("mlp", {"widths": [8]}, dataset="fake:fashion-mnist", n_train=64)]
        )
        with pytest.raises(ConfigError, match="is being measured by another process"):
            run_train_speed(train, train_out)
    finally:
        release.set()
        thread.join()
    assert run_speed(cfg, speed_out).rows[0]["ok"]


def test_a_bench_of_one_kind_refuses_a_folder_holding_another_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each kind writes its own report.md into --out: a speed bench run into an accuracy bench's folder
    replaced that bench's report, and the reverse. Refused before any work, by --check too."""
    from autosparse.bench import run_bench
    from autosparse.bench.config import bench_config_from_dict
    from autosparse.cli import main
    from autosparse.core.config_record import dump_yaml

    accuracy = bench_config_from_dict(
        {
            "models": [{"model": "mlp", "model_kwargs": {"widths": [8]}}],
            "datasets": ["fake:fashion-mnist"],
            "methods": ["random"],
            "densities": [0.1],
            "seeds": [0],
            "n_train": 64,
            "n_test": 32,
        }
    )
    acc = tmp_path / "acc"
    (acc / "cells").mkdir(parents=True)
    (acc / "bench.yaml").write_text(dump_yaml(accuracy))
    (acc / "report.md").write_text("the accuracy bench's report\n")
    speed = tiny_speed(models=[{"model": "mlp", "model_kwargs": {"widths": [8]}, "dataset": "fake:fashion-mnist"}])
    speed.methods = [MethodSpec("random")]
    with pytest.raises(
        ConfigError, match=r"--out .*acc holds an accuracy bench \(bench\.yaml\), .*choose another --out"
    ):
        run_speed(speed, acc)
    model = TrainSpeedModel("mlp", {"widths": [8]}, dataset="fake:fashion-mnist", n_train=64)
    with pytest.raises(ConfigError, match="holds an accuracy bench"):
        run_train_speed(TrainSpeedConfig(models=[model], runs=1), acc)
    assert (acc / "report.md").read_text() == "the accuracy bench's report\n" and not (acc / "measurements").exists()
    speed_yaml = tmp_path / "speed.yaml"
    speed_yaml.write_text(
        "kind: speed\nmodels: [{model: mlp, model_kwargs: {widths: [8]}, dataset: fake:fashion-mnist}]\n"
        "methods: [random]\n"
    )
    train_yaml = tmp_path / "train.yaml"
    train_yaml.write_text(
        "kind: train_speed\nmodels: [{model: mlp, model_kwargs: {widths: [8]}, dataset: fake:fashion-mnist, "
        "n_train: 64}]\n"
    )
    for config in (speed_yaml, train_yaml):
        assert main(["bench", "--check", "--config", str(config), "--out", str(acc)]) == 2
        assert "holds an accuracy bench (bench.yaml)" in capsys.readouterr().err
    # and the reverse: an accuracy bench into a speed bench's folder
    sp = tmp_path / "sp"
    run_speed(speed, sp)
    before = (sp / "report.md").read_text()
    with pytest.raises(ConfigError, match=r"holds a speed bench \(speed\.json\), whose report\.md this accuracy bench"):
        run_bench(accuracy, sp)
    acc_yaml = tmp_path / "acc.yaml"
    acc_yaml.write_text(dump_yaml(accuracy))
    for mode in ("--check", "--report-only"):
        assert main(["bench", mode, "--config", str(acc_yaml), "--out", str(sp)]) == 2
        assert "holds a speed bench" in capsys.readouterr().err
    assert (sp / "report.md").read_text() == before and not (sp / "cells").exists() and not (sp / "bench.yaml").exists()
    assert main(["bench", "--check", "--config", str(speed_yaml), "--out", str(sp)]) == 0  # its own kind: fine
    # its folder without --config: the way that works, not "pass --config", then "drop --report-only" (a loop)
    for extra in (["--report-only"], []):
        assert main(["bench", "--out", str(sp), *extra]) == 2
        err = capsys.readouterr().err
        assert f"autosparse bench --config THAT.yaml --out {sp}" in err and "measurement is reused" in err, err
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "train_speed.json").write_text("{}")
    assert main(["bench", "--out", str(trained), "--report-only"]) == 2
    assert "holds a train_speed bench" in (err := capsys.readouterr().err) and "--config THAT.yaml" in err


def test_a_bench_whose_every_measurement_failed_draws_no_empty_plot(tmp_path: Path, monkeypatch) -> None:
    """It wrote and linked an empty figure, and its header said "? torch threads"."""
    import autosparse.bench.speed as speed_module

    one = {"model": "mlp", "model_kwargs": {"widths": [16]}, "dataset": "fake:fashion-mnist", "name": "mlp16"}
    cfg = tiny_speed(models=[one], methods=["random"])
    run_speed(cfg, tmp_path)
    plot = next((tmp_path / "plots").glob("speed__*.png"))  # an earlier run's figure
    monkeypatch.setattr(speed_module, "measure", lambda case: 1 / 0)
    for p in (tmp_path / "measurements").glob("*.json"):
        p.unlink()
    result = run_speed(cfg, tmp_path)
    assert not any(r["ok"] for r in result.rows)
    md = (tmp_path / "report.md").read_text()
    assert "plots/" not in md and not plot.exists()
    assert "1 torch thread asked for," in md and "? torch" not in md
    assert speed_module._fmt_weights(266) == "266" and speed_module._fmt_weights(2500) == "2.5k"


def test_failed_measurement_is_recorded_not_fatal(tmp_path: Path) -> None:
    # SynFlow in float32 overflows on a 300-layer MLP: that measurement fails, the others go on
    deep = {"widths": [8] * 300}
    cfg = tiny_speed(
        models=[
            {"model": "mlp", "model_kwargs": {"widths": [8]}, "dataset": "fake:fashion-mnist", "name": "ok"},
            {"model": "mlp", "model_kwargs": deep, "dataset": "fake:fashion-mnist", "name": "bad"},
        ],
        methods=[{"method": "synflow", "hparams": {"rounds": 2, "float64": False}}],
    )
    result = run_speed(cfg, tmp_path)
    bad = [r for r in result.rows if r["model"] == "bad" and not r["floor"]]  # its float64 floor loop runs
    assert bad and not any(r["ok"] for r in bad) and all(r["error"] for r in bad)
    assert all(r["ok"] for r in result.rows if r["model"] == "ok")
    assert "failed" in result.tables


def test_rounds_pair_each_ratio_within_its_round(tmp_path: Path) -> None:
    """With rounds, every method is measured once per round beside the reference; the table gives
    the median time and the median of the per-round ratios, and a rerun reuses every round."""
    cfg = tiny_speed(models=[{"model": "mlp", "model_kwargs": {"widths": [8]}, "dataset": "fake:fashion-mnist"}])
    cfg.methods = [MethodSpec("random"), MethodSpec("synflow", {"rounds": 2})]
    single = run_speed(cfg, tmp_path / "one")
    cfg.rounds = 3
    result = run_speed(cfg, tmp_path / "three")
    names = sorted(p.name for p in (tmp_path / "three" / "measurements").glob("*.json"))
    # round 0 keeps the file names a one-round bench gives; rounds 1 and 2 add a suffix
    assert sorted(p.name for p in (tmp_path / "one" / "measurements").glob("*.json")) == [
        n for n in names if not re.search(r"__r\d+\.json$", n)
    ]
    assert len(names) == 3 * 4 and sum(n.endswith("__r2.json") for n in names) == 4
    record = json.loads((tmp_path / "three" / "speed.json").read_text())
    per_round = record["measurements"]
    assert [r["round"] for r in per_round] == [0] * 4 + [1] * 4 + [2] * 4  # the plan, round by round
    assert len(result.rows) == len(single.rows) == 4
    for row in result.rows:
        mine = [r for r in per_round if r["label"] == row["label"]]
        refs = [r for r in per_round if r["label"] == "snip"]
        assert row["ok"] and row["rounds"] == 3 and row["seconds_rounds"] == [r["seconds"] for r in mine]
        assert row["seconds"] == pytest.approx(sorted(row["seconds_rounds"])[1])
        paired = sorted(m["seconds"] / r["seconds"] for m, r in zip(mine, refs, strict=True))
        assert row["ratio_to_reference"] == pytest.approx(paired[1])
    floor = next(r for r in result.rows if r["label"].endswith(" floor"))
    synflow = next(r for r in result.rows if r["label"] == floor["label"][: -len(" floor")])
    assert synflow["ratio_to_floor"] is not None and floor["ratio_to_floor"] is None
    assert "3 rounds" in (tmp_path / "three" / "report.md").read_text()
    again = run_speed(cfg, tmp_path / "three")  # every round is on disk: nothing is measured twice
    assert [r["seconds"] for r in again.rows] == [r["seconds"] for r in result.rows]
    with pytest.raises(ConfigError, match="rounds"):
        tiny_speed(rounds=0).validate()


def test_speed_resumes_per_measurement(tmp_path: Path) -> None:
    """Each row is on disk as soon as it is measured; a rerun reuses the ok ones and retries failures."""
    cfg = tiny_speed(models=[{"model": "mlp", "model_kwargs": {"widths": [8]}, "dataset": "fake:fashion-mnist"}])
    cfg.methods = [MethodSpec("random")]
    first = run_speed(cfg, tmp_path)
    files = sorted((tmp_path / "measurements").glob("*.json"))
    assert len(files) == 2 and all(r["ok"] for r in first.rows)
    # pretend the run was killed after snip, with random's measurement failed
    random_file = next(f for f in files if "random" in f.name)
    random_file.write_text('{"ok": false, "error": "killed"}')
    snip_file = next(f for f in files if "snip" in f.name)
    snip_row = json.loads(snip_file.read_text())
    snip_row["seconds"] = 123.0  # a marker: a reused row keeps what was measured before
    snip_file.write_text(json.dumps(snip_row))
    second = run_speed(cfg, tmp_path)
    rows = {r["label"]: r for r in second.rows}
    assert rows["snip"]["seconds"] == 123.0
    assert rows["random"]["ok"] and rows["random"]["seconds"] < 123.0
    assert json.loads(random_file.read_text())["ok"]
    # a row measured in one process is not reused for an isolated run (its peak memory means another thing)
    assert json.loads(snip_file.read_text())["isolated"] is False
    isolated = {r["label"]: r for r in run_speed(dataclasses.replace(cfg, isolate=True), tmp_path).rows}
    assert isolated["snip"]["seconds"] != 123.0 and isolated["snip"]["isolated"] is True
    # a row another autosparse's code took is taken again: the table's ratios are "in this run" (helper)
    snip_row = json.loads(snip_file.read_text())
    snip_file.write_text(json.dumps({**snip_row, "seconds": 123.0, "isolated": False}))
    assert {r["label"]: r for r in run_speed(cfg, tmp_path).rows}["snip"]["seconds"] == 123.0  # same code: reused
    snip_file.write_text(json.dumps({**snip_row, "seconds": 123.0, "isolated": False, "code": "an older one"}))
    assert {r["label"]: r for r in run_speed(cfg, tmp_path).rows}["snip"]["seconds"] != 123.0
    # a changed setting is a different measurement, not a reused one
    cfg.density = 0.5
    third = run_speed(cfg, tmp_path)
    assert all(r["seconds"] != 123.0 for r in third.rows)
    assert len(list((tmp_path / "measurements").glob("*.json"))) == 4


@pytest.mark.parametrize(
    ("method", "hparams"), [("synflow", {"rounds": 6}), ("iter_snip", {"rounds": 4}), ("ntk_sap", {"rounds": 3})]
)
def test_floor_loop_is_the_methods_algorithm(method: str, hparams: dict[str, int]) -> None:
    """Without ties at the threshold a floor loop keeps exactly the method's weights, so the ratio
    method / floor compares the same work."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 6, 6), 4, seed=0, widths=[24, 12])
    data = PruningData.coerce((torch.randn(8, 1, 6, 6), torch.arange(8) % 4))
    masks = prune(model, method, density=0.1, data=data, seed=3, **hparams)
    cfg = floor_config(method, hparams)
    assert cfg is not None
    floor = run_floor(method, model, data, 0.1, cfg, seed=3)
    assert [torch.equal(masks[n], f) for n, f in zip(masks, floor, strict=True)] == [True] * len(floor)
    assert floor_config(method, {**hparams, "scope": "erk"}) is None and floor_config("snip", {}) is None


def test_train_speed_times_every_variant_interleaved(tmp_path: Path) -> None:
    cfg = TrainSpeedConfig(
        models=[TrainSpeedModel("mlp", {"widths": [16]}, dataset="fake:fashion-mnist", n_train=256)], runs=2
    )
    result = run_train_speed(cfg, tmp_path)
    (row,) = result["rows"]
    assert row["n_train"] == 256 and set(row["seconds"]) == {"dense", "masked", "hooks"}
    assert all(len(t) == 2 and min(t) > 0 for t in row["seconds"].values())
    assert row["ratio_to_dense"]["dense"] == 1.0
    assert row["ratio_to_dense"]["masked"] == pytest.approx(row["median"]["masked"] / row["median"]["dense"])
    md = (tmp_path / "report.md").read_text()
    assert "mlp-widths16 (256)" in md and "(×1.000)" in md
    # a fast epoch in the accuracy report's seconds (":.2f" printed 0.00), and no "(× dense)" without dense
    fast = {**row, "median": {"masked": 0.004, "hooks": 0.0031}, "seconds": {"masked": [0.004], "hooks": [0.0031]}}
    text = report(dataclasses.replace(cfg, variants=["masked", "hooks"]), [{**fast, "ratio_to_dense": {}}])
    assert "| 0.004 | 0.0031 |" in text and "× dense" not in text and "0.00 " not in text
    shipped = TrainSpeedConfig.from_yaml(REPO / "configs" / "bench" / "speed_train.yaml")
    assert [m.label() for m in shipped.models] == ["lenet_300_100", "resnet20"]
    assert config_kind(REPO / "configs" / "bench" / "speed_train.yaml") == "train_speed"
    with pytest.raises(ConfigError, match="variants"):
        TrainSpeedConfig(variants=["sparse"]).validate()


@pytest.mark.parametrize(
    ("n_train", "says"),
    [(-5, "mlp-widths8: n_train must be a positive number"), (70000, "n_train=70000 is more than fashion-mnist's")],
)
def test_train_speed_refuses_an_epoch_its_data_cannot_give(
    n_train: int, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check called these valid; the run then failed once the data had loaded."""
    model = TrainSpeedModel("mlp", {"widths": [8]}, dataset="fashion-mnist", n_train=n_train)
    with pytest.raises(ConfigError, match=re.escape(says)):
        TrainSpeedConfig(models=[model]).validate()
    cfg = tmp_path / "ts.yaml"
    cfg.write_text(
        f"kind: train_speed\nmodels: [{{model: mlp, model_kwargs: {{widths: [8]}}, dataset: fashion-mnist, "
        f"n_train: {n_train}}}]\n"
    )
    from autosparse.cli import main

    assert main(["bench", "--check", "--config", str(cfg)]) == 2
    assert says in capsys.readouterr().err
    # fake data comes in any size, and 0 is the whole training set
    TrainSpeedConfig(
        models=[TrainSpeedModel("mlp", {"widths": [8]}, dataset="fake:fashion-mnist", n_train=70000)]
    ).validate()
    TrainSpeedConfig(models=[TrainSpeedModel("mlp", {"widths": [8]}, dataset="fashion-mnist")]).validate()


def test_an_autos_row_carries_its_own_split_of_the_time() -> None:
    from autosparse.bench.measure import measure

    cfg = tiny_speed()
    task = cfg.task(SpeedModel("mlp", {"widths": [32]}, dataset="fake:fashion-mnist"))
    row = measure(Measurement(task, MethodSpec("autos"), 0.05, 1, 0, 1, 1, "cpu"))
    stages = row["stage_seconds"]
    assert set(stages) == {"features", "scorer", "allocation", "repair"}
    assert 0 < sum(stages.values()) <= row["seconds"]
    assert "stage_seconds" not in measure(Measurement(task, MethodSpec("snip"), 0.05, 1, 0, 1, 1, "cpu"))
