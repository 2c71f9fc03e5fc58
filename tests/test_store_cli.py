"""Choosing and mending runs: typed filters (``--holdout``), ``store info``'s run table,
``store repair``, ``store validate``'s schema check, and log lines that tell the truth."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

from autosparse.cli import main as cli_main
from autosparse.core.errors import ConfigError
from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION
from autosparse.scorer.data import open_split
from autosparse.store import FeatureStore, StoreReader, parse_filter, repair_store, run_table, validate_store
from autosparse.store.filters import same

#: (run id, model_label, seed): two MLP shapes x three seeds, as a generation grid writes them.
RUNS = [
    (f"{label}__digits__s{seed}", label, seed) for label in ("mlp-widths300", "mlp-widths100") for seed in (0, 1, 2)
]


def _write(store: FeatureStore, run_id: str, label: str, seed: int, **extra: object) -> None:
    rng = np.random.default_rng(seed)
    table = [{"name": "fc1.weight", "shape": [4, 6], "kind": "linear"}, {"name": "fc2.weight", "shape": [3, 4]}]
    store.write_run(
        run_id,
        features=rng.standard_normal((36, store.n_features)).astype(np.float32),
        label=rng.integers(0, 4, 36),
        layers_table=table,
        attrs={
            "model": "mlp",
            "model_label": label,
            "dataset": "digits",
            "seed": seed,
            "rounds": 3,
            "densities": [1.0, 0.5, 0.25, 0.125],
            "accuracies": [0.9, 0.91, 0.88, 0.8 + seed / 100],
            **extra,
        },
    )


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    fs = FeatureStore(tmp_path / "s.zarr", schema_version=SCHEMA_VERSION, feature_names=FEATURE_NAMES, durable=False)
    for run_id, label, seed in RUNS:
        _write(fs, run_id, label, seed, final=seed == 2, lr=0.1 * (seed + 1))
    return fs


def _ids(reader: StoreReader | None) -> set[str]:
    assert reader is not None
    return set(reader.run_ids)


# ------------------------------------------------------------------------------------ filters


def test_holdout_filters_compare_typed_values(store: FeatureStore) -> None:
    """``seed=2`` from a command line matches the int a run stores; ``!=`` and several keys work."""
    train, val = open_split(str(store.path), "seed=2")
    assert _ids(val) == {r for r, _label, seed in RUNS if seed == 2}
    assert _ids(train) == {r for r, _label, seed in RUNS if seed != 2}
    train, val = open_split(str(store.path), "model_label!=mlp-widths300")
    assert _ids(val) == {r for r, label, _s in RUNS if label != "mlp-widths300"}
    assert _ids(train) == {r for r, label, _s in RUNS if label == "mlp-widths300"}
    train, val = open_split(str(store.path), "model_label=mlp-widths300; seed!=0,1")
    assert _ids(val) == {"mlp-widths300__digits__s2"} and len(_ids(train)) == 5

    def select(spec: str) -> set[str]:
        return set(StoreReader(store.path, where=spec).run_ids)

    assert select("final=true") == select("seed=2") == select("lr=0.30000000000000004")
    assert select("final=false") == {r for r, _label, seed in RUNS if seed != 2}
    assert select("seed=0,2;dataset=digits") == {r for r, _label, seed in RUNS if seed in (0, 2)}
    assert select("seed=two") == set() and select("seed=2.5") == set()
    assert select("sede!=2") == set()  # a key no run has selects nothing, even with !=
    # Python filters are typed too: True is not 1, and 2 is 2.0.
    assert StoreReader(store.path, where={"final": 1}).run_ids == []
    assert set(StoreReader(store.path, where={"seed": 2.0}).run_ids) == select("seed=2")
    assert same(2, "2") and same(True, "yes") and same(None, "null") and same([300], "[300]")
    assert not same(1, True) and not same("2", 2) and not same(0.1, "x")


@pytest.mark.parametrize("spec", ["seed", "seed=", "=2", "seed=1;seed=2", "seed=1,,2", "", " ", ";", "model==x"])
def test_malformed_filters_say_how_to_write_one(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"key=value|twice"):
        parse_filter(spec)


def test_train_scorer_holdout_error_is_one_line(
    store: FeatureStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train-scorer", "--store", str(store.path), "--out", str(tmp_path / "sc"), "--holdout", "seed"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must look like key=value" in err[0]


# ------------------------------------------------------------------------------------ info / repair


def _mark_incomplete(store: FeatureStore, run_id: str) -> None:
    zarr.open_group(str(store.path / "runs" / run_id), mode="r+").attrs.update({"complete": False})


def _corrupt(store: FeatureStore, run_id: str) -> None:
    chunk = next(p for p in sorted((store.path / "runs" / run_id / "label" / "c").rglob("*")) if p.is_file())
    chunk.unlink()


def _hold(path: Path, run_id: str, taken: threading.Event, release: threading.Event) -> None:
    with FeatureStore(path, schema_version=SCHEMA_VERSION, feature_names=FEATURE_NAMES).claim(run_id) as mine:
        assert mine
        taken.set()
        release.wait(60)


def test_store_info_lists_every_run_and_repair_drops_only_the_bad_ones(
    store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    ok, incomplete, broken, writing = (r for r, _l, _s in RUNS[:4])
    _mark_incomplete(store, incomplete)
    _mark_incomplete(store, writing)
    _corrupt(store, broken)
    taken, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(store.path, writing, taken, release))
    holder.start()
    try:
        assert taken.wait(60)
        rows = {r["run_id"]: r for r in run_table(store.path)}
        assert [rows[r]["status"] for r in (ok, incomplete, broken, writing)] == [
            "complete",
            "incomplete",
            "broken",
            "writing",
        ]
        assert rows[ok]["model_label"] == "mlp-widths300" and rows[ok]["seed"] == 0 and rows[ok]["rounds"] == 3
        assert rows[ok]["final_density"] == 0.125 and rows[ok]["final_accuracy"] == 0.8

        assert cli_main(["store", "info", str(store.path)]) == 0
        out = capsys.readouterr().out
        header = next(line for line in out.splitlines() if line.lstrip().startswith("run id"))
        columns = "run id | model_label | dataset | seed | rounds | final density | final acc | status"
        assert header.split() == columns.replace("|", "").split()
        for run_id, label, seed in RUNS:
            line = next(line for line in out.splitlines() if line.strip().startswith(run_id))
            assert label in line and f" {seed} " in line, line
        row = next(line for line in out.splitlines() if line.strip().startswith(broken)).split()
        assert row == [broken, "mlp-widths300", "digits", "2", "3", "0.125", "0.8200", "broken"]
        assert "3 complete, 2 incomplete (1 being written now), 1 broken" in out

        assert cli_main(["store", "repair", str(store.path), "--dry-run"]) == 0
        assert "would drop" in capsys.readouterr().out and len(store.run_ids()) == len(RUNS)
        assert cli_main(["store", "repair", str(store.path)]) == 0
        out = capsys.readouterr().out
        assert f"dropped {broken}: broken" in out and f"dropped {incomplete}: incomplete" in out
        assert writing not in out  # being written: not ours to drop
    finally:
        release.set()
        holder.join()
    assert set(store.run_ids()) == {r for r, _l, _s in RUNS} - {broken, incomplete}
    assert validate_store(store.path).ok
    assert repair_store(store.path) == [(writing, "incomplete")]  # released: now a killed job's leftovers
    assert cli_main(["store", "repair", str(store.path)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_validate_compares_the_schema_with_this_code(
    store: FeatureStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["store", "validate", str(store.path)]) == 0
    assert f"schema v{SCHEMA_VERSION} is this autosparse's feature schema" in capsys.readouterr().out
    old = FeatureStore(tmp_path / "old.zarr", schema_version=SCHEMA_VERSION - 1, feature_names=["a", "b"])
    assert cli_main(["store", "validate", str(old.path)]) == 0  # intact, only not usable by this code
    out = capsys.readouterr().out
    assert f"this autosparse computes schema v{SCHEMA_VERSION}" in out
    assert f"autosparse store refeaturize {old.path} --out" in out
    same_v = FeatureStore(tmp_path / "cols.zarr", schema_version=SCHEMA_VERSION, feature_names=["a", "b"])
    assert cli_main(["store", "validate", str(same_v.path)]) == 0
    assert "other feature columns" in capsys.readouterr().out


def test_the_writer_says_which_kind_of_run_it_replaces(store: FeatureStore, caplog: pytest.LogCaptureFixture) -> None:
    run_id, label, seed = RUNS[0]
    _mark_incomplete(store, run_id)
    with caplog.at_level(logging.INFO, logger="autosparse.store.writer"):
        _write(store, run_id, label, seed)
        store.write_run(run_id, **_kwargs(store, run_id), overwrite=True)
    replaced = [r.getMessage() for r in caplog.records if "replacing" in r.getMessage()]
    assert replaced == [
        f"run {run_id}: replacing a previous incomplete (killed or failed) run",
        f"run {run_id}: replacing a previous complete run",
    ]


def _kwargs(store: FeatureStore, run_id: str) -> dict:
    run = store.reader().load_run(run_id)
    attrs = {k: v for k, v in run.attrs.items() if k in ("rounds", "model_label", "seed")}
    return {"features": run.features, "label": run.label, "layers_table": run.layers, "attrs": attrs}


def test_runs_of_another_schema_are_sent_to_refeaturize_and_never_dropped(
    store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    # repair used to count them as broken and delete every run: labels that cannot be regenerated there
    meta_file = store.path / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["attributes"]["schema_version"] = SCHEMA_VERSION + 1
    meta_file.write_text(json.dumps(meta))
    report = validate_store(store.path)
    assert not report.ok and sorted(report.schema_runs) == sorted(r for r, _, _ in RUNS) and report.broken_runs == []
    text = report.format()
    assert "store refeaturize" in text and "drops the" not in text  # no fix line that sends the user to repair
    assert repair_store(store.path) == []
    assert sorted(validate_store(store.path).schema_runs) == sorted(r for r, _, _ in RUNS)  # all still there
    assert cli_main(["store", "repair", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert f"left {len(RUNS)} run(s) of another feature schema" in out and "dropped run" not in out
