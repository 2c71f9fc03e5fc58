"""Tests for the zarr feature store: round trips, crash safety, corruption, schema checks, streaming."""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import platform
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from autosparse.core.errors import AutosparseError, SchemaMismatchError, StoreError, UnknownNameError
from autosparse.store import (
    FeatureStore,
    StorageOptions,
    StoreReader,
    open_store,
    store_info,
    validate_store,
)
from autosparse.store.locks import claim_run, run_lock
from autosparse.store.throughput import format_results, measure_write_read, synthetic_run, write_synthetic_run

NAMES = ["theta", "grad", "snip", "rank_theta", "log_fan_in"]
SMALL = StorageOptions(chunk_bytes=20 * 4 * len(NAMES))  # 20 rows per chunk: many chunks from tiny runs


def make_run(n_layers: int = 3, width: int = 6, seed: int = 0, rounds: int = 4, model: str = "mlp") -> dict:
    """write_run kwargs for a small fake run; column 0 holds the row index so batches can be traced."""
    rng = np.random.default_rng(seed)
    table = [{"name": f"fc{i}.weight", "shape": [width + i, width], "kind": "linear"} for i in range(n_layers)]
    n = sum(int(np.prod(e["shape"])) for e in table)
    features = rng.standard_normal((n, len(NAMES))).astype(np.float32)
    features[:, 0] = np.arange(n)
    return {
        "features": features,
        "label": rng.integers(0, rounds + 1, n),
        "layers_table": table,
        "attrs": {
            "config": {"model": model, "dataset": "fashion_mnist", "seed": seed, "irp": {"prune_fraction": 0.2}},
            "rounds": rounds,
            "accuracies": [0.9 - 0.01 * r for r in range(rounds)],
            "densities": [0.8 ** (r + 1) for r in range(rounds)],
        },
    }


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    return FeatureStore(tmp_path / "store.zarr", schema_version=1, feature_names=NAMES, storage=SMALL, durable=False)


def mark_incomplete(store: FeatureStore, run_id: str) -> None:
    """Leave a run as a job killed just before its commit point would."""
    zarr.open_group(str(store.path / "runs" / run_id), mode="r+").attrs.update({"complete": False})


# ---------------------------------------------------------------------------------------------- writing


def test_round_trip(store: FeatureStore) -> None:
    run = make_run()
    graph = {"edge_index": np.arange(20).reshape(2, 10), "node_x": np.ones((7, 3), dtype=np.float64)}
    extra = {"layer_density": np.array([0.1, 0.2, 0.3])}
    attrs = store.write_run("a", **run, graph=graph, extra=extra)
    assert attrs["complete"] is True and store.is_complete("a")
    assert store.complete_runs() == ["a"] and store.incomplete_runs() == []

    reader = StoreReader(store.path)
    data = reader.load_run("a")
    np.testing.assert_array_equal(data.features, run["features"])
    np.testing.assert_array_equal(data.label, run["label"])
    assert data.features.dtype == np.float32 and data.label.dtype == np.int8 and data.layer.dtype == np.int16
    sizes = [int(np.prod(e["shape"])) for e in run["layers_table"]]
    np.testing.assert_array_equal(data.layer, np.repeat(np.arange(3), sizes))
    assert [e["offset"] for e in data.layers] == [0, sizes[0], sizes[0] + sizes[1]]
    assert [e["numel"] for e in data.layers] == sizes and data.layers[0]["kind"] == "linear"
    assert data.attrs["config"] == run["attrs"]["config"]
    assert data.attrs["accuracies"] == run["attrs"]["accuracies"] and data.rounds == 4
    assert data.attrs["n_weights"] == data.n_weights == sum(sizes)
    assert "numpy" in data.attrs["versions"] and data.attrs["schema_version"] == 1
    assert list(data.attrs["versions"])[:4] == ["python", "autosparse", "numpy", "torch"]
    np.testing.assert_array_equal(data.graph["edge_index"], graph["edge_index"])
    assert data.graph["edge_index"].dtype == np.int64 and data.graph["node_x"].dtype == np.float32
    np.testing.assert_allclose(data.extra["layer_density"], extra["layer_density"])

    t = reader.load_run("a", columns=["snip", 0], as_tensors=True)
    assert isinstance(t.features, torch.Tensor) and t.features.shape == (sum(sizes), 2)
    assert t.feature_names == ["snip", "theta"] and t.label.dtype == torch.int64
    torch.testing.assert_close(t.features[:, 1], torch.from_numpy(run["features"][:, 0]))
    assert isinstance(t.graph["edge_index"], torch.Tensor)
    with pytest.raises(UnknownNameError, match="did you mean 'snip'"):
        reader.load_run("a", columns=["snp"])


def test_a_filter_key_no_run_records_is_said(store: FeatureStore, caplog: pytest.LogCaptureFixture) -> None:
    """where={"modle": …} selected no run in silence (helper)."""
    store.write_run("a", **make_run())
    with caplog.at_level("WARNING", logger="autosparse.store"):
        assert StoreReader(store.path, where={"modle": "mlp"}).run_ids == []
    assert "where filter key(s) 'modle': no run in" in caplog.text and "keys the runs record:" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="autosparse.store"):
        StoreReader(store.path, where={"model": "no-such-model"})  # a known key, a value no run has: no warning
    assert "filter key" not in caplog.text
    with caplog.at_level("WARNING", logger="autosparse.store"):  # a misspelt holdout kept every run in silence
        assert StoreReader(store.path, exclude={"modle": "mlp"}).run_ids == ["a"]
    assert "exclude filter key(s) 'modle'" in caplog.text


def test_torch_inputs_are_accepted(store: FeatureStore) -> None:
    run = make_run()
    feats = torch.from_numpy(run["features"]).requires_grad_(True)
    store.write_run(
        "t", **{**run, "features": feats, "label": torch.from_numpy(run["label"])}, graph={"e": torch.arange(6)}
    )
    data = StoreReader(store.path).load_run("t")
    np.testing.assert_array_equal(data.features, run["features"])
    np.testing.assert_array_equal(data.graph["e"], np.arange(6))


def test_open_existing_store_and_reopen(store: FeatureStore) -> None:
    store.write_run("a", **make_run())
    again = FeatureStore(store.path, schema_version=1, feature_names=NAMES)
    assert again.complete_runs() == ["a"]
    opened = open_store(store.path)
    assert opened.schema_version == 1 and opened.feature_names == NAMES
    assert opened.root_attrs["label_kind"] == "irp_round" and opened.root_attrs["created_by"].startswith("autosparse")


def test_write_run_rejects_bad_input(store: FeatureStore) -> None:
    run = make_run()
    with pytest.raises(ValueError, match="n_features=5"):
        store.write_run("a", **{**run, "features": run["features"][:, :3]})
    bad = run["features"].copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf in columns \['snip'\]"):
        store.write_run("a", **{**run, "features": bad})
    with pytest.raises(ValueError, match="labels must be in"):
        store.write_run("a", **{**run, "label": run["label"] + 5})
    with pytest.raises(ValueError, match="rounds"):
        store.write_run("a", **{**run, "attrs": {"config": {}}})
    with pytest.raises(ValueError, match="may not set"):
        store.write_run("a", **{**run, "attrs": {**run["attrs"], "complete": True}})
    with pytest.raises(ValueError, match="invalid run id"):
        store.write_run("../evil", **run)
    with pytest.raises(ValueError, match="layer must give"):
        store.write_run("a", **run, layer=np.zeros(len(run["label"]), dtype=np.int16))
    assert store.run_ids() == []  # nothing half-written by a rejected call


def test_complete_run_is_not_recomputed_by_accident(store: FeatureStore) -> None:
    store.write_run("a", **make_run(seed=0))
    with pytest.raises(StoreError, match="already complete"):
        store.write_run("a", **make_run(seed=1))
    store.write_run("a", **make_run(seed=1), overwrite=True)
    assert StoreReader(store.path).attrs("a")["config"]["seed"] == 1
    assert store.delete_run("a") and not store.delete_run("a") and store.run_ids() == []


# ---------------------------------------------------------------------------------------------- crash safety


def test_reader_never_sees_incomplete_run_and_rewrite_replaces_it(store: FeatureStore) -> None:
    store.write_run("done", **make_run(seed=0))
    store.write_run("killed", **make_run(seed=1, n_layers=2))
    mark_incomplete(store, "killed")
    (store.path / "runs" / "born_dead").mkdir()  # killed before even its group metadata was written

    assert store.complete_runs() == ["done"] and store.incomplete_runs() == ["born_dead", "killed"]
    reader = StoreReader(store.path)
    assert reader.run_ids == ["done"]
    assert {int(b.run_index.max()) for b in reader.iter_batches(64)} == {0}
    with pytest.raises(StoreError, match="not complete"):
        reader.load_run("killed")
    report = validate_store(store.path)
    assert report.ok and report.incomplete_runs == ["born_dead", "killed"] and report.complete_runs == ["done"]
    assert "rerun as it was completes them" in report.format()

    store.write_run("killed", **make_run(seed=7, n_layers=3))  # the restarted job rewrites it from scratch
    reader.refresh()
    assert reader.run_ids == ["done", "killed"]
    assert reader.attrs("killed")["config"]["seed"] == 7 and reader.attrs("killed")["n_layers"] == 3
    np.testing.assert_array_equal(reader.load_run("killed").label, make_run(seed=7)["label"])


def test_killed_writer_process_leaves_an_invisible_run(store: FeatureStore) -> None:
    """A writer killed right before its commit point (hard exit, no cleanup) leaves only an incomplete run."""
    code = textwrap.dedent(
        f"""
        import os, numpy as np
        import autosparse.store.writer as w
        from autosparse.store.throughput import synthetic_run
        w.fsync_tree = lambda root: os._exit(3)  # die after the arrays, before complete=true
        store = w.FeatureStore({str(store.path)!r}, schema_version=1, feature_names={NAMES!r}, durable=True)
        store.write_run("victim", **synthetic_run(500, {len(NAMES)}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert (store.path / "runs" / "victim" / "features").is_dir()
    assert store.incomplete_runs() == ["victim"] and not store.is_being_written("victim")
    assert StoreReader(store.path).run_ids == []
    store.write_run("victim", **make_run())
    assert validate_store(store.path).valid_runs == ["victim"]


@contextlib.contextmanager
def held_elsewhere(path: Path, run_id: str) -> Iterator[None]:
    """Hold a run's claim in another thread (claims are re-entrant per thread, not per process)."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with claim_run(path, run_id) as mine:
            assert mine
            taken.set()
            release.wait(60)

    t = threading.Thread(target=hold)
    t.start()
    taken.wait(60)
    try:
        yield
    finally:
        release.set()
        t.join()


def test_one_run_one_writer_lock(store: FeatureStore) -> None:
    other = open_store(store.path)
    with held_elsewhere(store.path, "busy"):
        assert other.is_being_written("busy")
        with pytest.raises(StoreError, match="being written by pid"):
            other.write_run("busy", **make_run())
        with pytest.raises(StoreError, match="exactly one worker"):
            other.delete_run("busy")
        with other.claim("busy") as mine:
            assert not mine
    assert not other.is_being_written("busy")
    other.write_run("busy", **make_run())


def test_a_claim_is_held_through_write_and_delete(store: FeatureStore) -> None:
    """A job claims its run for its whole duration; write_run/delete_run inside the claim keep it."""
    with store.claim("job") as mine:
        assert mine and store.is_being_written("job")
        store.write_run("job", **make_run())
        assert store.is_being_written("job")  # still held after the write: no window for another writer
        assert store.delete_run("job")
    assert not store.is_being_written("job")
    assert (store.path / ".locks" / "job.lock").read_text() == ""  # a clean release names no holder


def test_a_lock_left_by_a_killed_process_is_taken_over_with_one_line(
    store: FeatureStore, caplog: pytest.LogCaptureFixture
) -> None:
    code = textwrap.dedent(
        f"""
        import os
        from autosparse.store.locks import claim_run
        from pathlib import Path
        with claim_run(Path({str(store.path)!r}), "victim") as mine:
            assert mine
            os.kill(os.getpid(), 9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert (store.path / ".locks" / "victim.lock").read_text().startswith("pid ")  # it died holding it
    assert not store.is_being_written("victim")  # the kernel released the flock
    with caplog.at_level(logging.INFO, logger="autosparse.store.locks"), store.claim("victim") as mine:
        assert mine
    lines = [r.getMessage() for r in caplog.records if r.name == "autosparse.store.locks"]
    assert len(lines) == 1 and "taking over the lock left by pid" in lines[0] and "stopped" in lines[0], lines
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="autosparse.store.locks"), store.claim("victim") as mine:
        assert mine
    assert not caplog.records  # released cleanly the first time: nothing to take over
    # Stores written before claims were cleared on release name the last writer of a complete run:
    # that writer finished, so taking the lock over (e.g. to delete the run) is nothing to report.
    store.write_run("old", **make_run())
    (store.path / ".locks" / "old.lock").write_text(f"pid 4194999 on {platform.node()}")
    with caplog.at_level(logging.INFO, logger="autosparse.store.locks"):
        assert store.delete_run("old")
    # only the lock's own lines count: an earlier test in this worker may have left the writer's
    # logger at INFO (its "deleted run" line is not a takeover)
    assert not [r for r in caplog.records if r.name == "autosparse.store.locks"]


def test_validate_tells_a_run_being_written_from_a_killed_one(store: FeatureStore) -> None:
    for run_id in ("live", "killed"):
        store.write_run(run_id, **make_run())
        mark_incomplete(store, run_id)
    with run_lock(store.path, "live"):
        report = validate_store(store.path)
    assert report.ok and report.incomplete_runs == ["killed", "live"] and report.writing_runs == ["live"]
    assert "1 run(s) being written now: live" in report.format()
    assert validate_store(store.path).writing_runs == []


# ---------------------------------------------------------------------------------------------- corruption


def _chunks(store: FeatureStore, run_id: str, array: str) -> list[Path]:
    return sorted(p for p in (store.path / "runs" / run_id / array / "c").rglob("*") if p.is_file())


def test_missing_chunk_is_detected(store: FeatureStore) -> None:
    store.write_run("a", **make_run())
    _chunks(store, "a", "features")[2].unlink()
    reader = StoreReader(store.path)
    with pytest.raises(StoreError, match=r"missing chunk.*autosparse store validate"):
        reader.load_run("a")
    with pytest.raises(StoreError, match="missing chunk"):
        list(reader.iter_batches(16, shuffle=False))
    report = validate_store(store.path)
    assert not report.ok and report.bad_runs == ["a"]
    assert any("chunk files missing" in e for e in report.run_errors["a"])
    with pytest.raises(StoreError, match=r"autosparse store repair .* drops the 1 broken run"):
        report.raise_for_errors()


@pytest.mark.parametrize("array", ["features", "label"])
def test_truncated_or_flipped_chunk_is_detected(store: FeatureStore, array: str) -> None:
    store.write_run("a", **make_run())
    chunk = _chunks(store, "a", array)[1]
    raw = chunk.read_bytes()
    chunk.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(StoreError, match=r"corrupt or truncated.*delete the run"):
        StoreReader(store.path).load_run("a")
    assert any("unreadable" in e for e in validate_store(store.path).run_errors["a"])
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF  # same length, one bad byte: only the checksum catches this
    chunk.write_bytes(bytes(flipped))
    with pytest.raises(StoreError, match="corrupt"):
        list(StoreReader(store.path).iter_batches(32))


def test_corrupt_run_metadata(store: FeatureStore) -> None:
    store.write_run("a", **make_run())
    store.write_run("b", **make_run(seed=1))
    (store.path / "runs" / "b" / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"run 'b'.*unreadable metadata.*delete_run\('b'\)"):
        StoreReader(store.path)
    report = validate_store(store.path)
    assert report.bad_runs == ["b"] and report.valid_runs == ["a"]
    assert not store.is_complete("b")  # so data generation regenerates it
    store.write_run("b", **make_run(seed=1))
    assert StoreReader(store.path).run_ids == ["a", "b"]


def test_corrupt_or_missing_store(tmp_path: Path, store: FeatureStore) -> None:
    with pytest.raises(StoreError, match="no feature store"):
        StoreReader(tmp_path / "nope.zarr")
    with pytest.raises(StoreError, match="no feature store"):
        FeatureStore(tmp_path / "nope.zarr", schema_version=1, feature_names=NAMES, create=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hi")
    with pytest.raises(StoreError, match="not a feature store"):
        FeatureStore(other, schema_version=1, feature_names=NAMES)
    zarr.open_group(str(tmp_path / "v2.zarr"), mode="w", zarr_format=2)
    with pytest.raises(StoreError, match=r"is a zarr v2 group \(\.zgroup\), not a feature store"):
        open_store(tmp_path / "v2.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(StoreError, match="not an autosparse feature store"):
        open_store(tmp_path / "plain.zarr")
    root = (store.path / "zarr.json").read_text()
    (store.path / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')
    # the fix named was to delete the store, every intact run with it (hunt)
    with pytest.raises(
        StoreError, match=r"unreadable metadata.*restore that file from a backup; the runs are untouched"
    ):
        open_store(store.path)
    report = validate_store(store.path)
    assert not report.ok and "unreadable metadata" in report.store_errors[0]
    (store.path / "runs").mkdir(exist_ok=True)
    (store.path / "zarr.json").unlink()  # "not a feature store" for the folder gen wrote
    with pytest.raises(StoreError, match=r"holds a feature store's runs but not its root record"):
        open_store(store.path)
    (store.path / "zarr.json").write_text(root)
    project = tmp_path / "project"  # a folder that merely holds runs/ (this project keeps its stores there; review)
    (project / "runs" / "st.zarr").mkdir(parents=True)
    with pytest.raises(StoreError, match=r"is not a feature store \(no zarr.json\); point at the folder"):
        open_store(project)
    assert issubclass(StoreError, AutosparseError)


def test_schema_mismatch(store: FeatureStore) -> None:
    store.write_run("a", **make_run())
    # an older store: its features are recomputed, its labels kept — never "rerun IRP"
    with pytest.raises(
        SchemaMismatchError, match=r"schema v1, and schema v2 was asked for.*autosparse store refeaturize"
    ):
        FeatureStore(store.path, schema_version=2, feature_names=NAMES)
    with pytest.raises(SchemaMismatchError, match=r"missing \['new'\], unexpected \['snip'\].*store refeaturize"):
        FeatureStore(store.path, schema_version=1, feature_names=[n if n != "snip" else "new" for n in NAMES])
    with pytest.raises(SchemaMismatchError, match="another order"):
        FeatureStore(store.path, schema_version=1, feature_names=NAMES[::-1])
    with pytest.raises(SchemaMismatchError, match="store refeaturize"):
        StoreReader(store.path, schema_version=2)
    with pytest.raises(SchemaMismatchError, match=r"use the autosparse that wrote it \(schema v1\)$"):
        StoreReader(store.path, schema_version=0)  # a reader is not told to write to another store (hunt)
    with pytest.raises(SchemaMismatchError, match=r"use the autosparse that wrote it .*, or write to another store"):
        FeatureStore(store.path, schema_version=0, feature_names=NAMES)
    assert StoreReader(store.path, schema_version=1, feature_names=NAMES).run_ids == ["a"]
    # a label kind the reader's caller cannot train on is named, not "no complete training runs"
    with pytest.raises(SchemaMismatchError, match="labels of kind 'irp_round', expected 'other'"):
        StoreReader(store.path, label_kind="other")


def test_a_malformed_schema_version_is_one_store_error(store: FeatureStore) -> None:
    zarr.open_group(str(store.path), mode="r+").attrs.update({"schema_version": "1"})
    for open_it in (
        lambda: StoreReader(store.path, schema_version=1),
        lambda: FeatureStore(store.path, schema_version=1, feature_names=NAMES),
    ):
        with pytest.raises(StoreError, match=r"malformed schema_version '1'; run `autosparse store validate"):
            open_it()


# ---------------------------------------------------------------------------------------------- reading


def test_filtering_by_attrs(store: FeatureStore) -> None:
    for i, model in enumerate(["lenet_300_100", "mlp_wide", "mlp_deep"]):
        store.write_run(f"r{i}", **make_run(seed=i, model=model))
    assert StoreReader(store.path, where={"model": "lenet_300_100"}).run_ids == ["r0"]
    assert StoreReader(store.path, exclude={"model": "lenet_300_100"}).run_ids == ["r1", "r2"]
    assert StoreReader(store.path, where={"model": ["mlp_wide", "mlp_deep"], "seed": 2}).run_ids == ["r2"]
    assert StoreReader(store.path, where={"config.irp.prune_fraction": 0.2}).n_runs == 3
    assert StoreReader(store.path, where={"rounds": lambda r: r > 3, "dataset": "fashion_mnist"}).n_runs == 3
    assert StoreReader(store.path, where=lambda a: a["run_id"] != "r1").run_ids == ["r0", "r2"]
    assert StoreReader(store.path, where={"modle": "lenet_300_100"}).run_ids == []  # typo selects nothing
    reader = StoreReader(store.path, exclude={"model": "lenet_300_100"})
    with pytest.raises(StoreError, match="excluded by this reader's filter"):
        reader.load_run("r0")
    summary = reader.summary()
    assert summary["runs_by_model"] == {"mlp_deep": 1, "mlp_wide": 1}
    assert summary["n_weights"] == reader.n_weights == 2 * len(make_run()["label"])
    np.testing.assert_array_equal(reader.run_rounds(), [4, 4])


def test_shuffled_batches_cover_every_row_once_and_are_deterministic(store: FeatureStore) -> None:
    runs = {f"r{i}": make_run(seed=i, n_layers=2 + i) for i in range(3)}
    for run_id, run in runs.items():
        store.write_run(run_id, **run)
    reader = StoreReader(store.path)

    def epoch(**kw: object) -> list:
        return list(reader.iter_batches(50, buffer_chunks=2, **kw))

    batches = epoch(seed=3)
    assert all(len(b.label) == 50 for b in batches[:-1]) and 0 < len(batches[-1].label) <= 50
    assert len(batches) == reader.n_batches(50)
    rows = torch.cat([torch.stack([b.run_index, b.features[:, 0].long()], 1) for b in batches])
    expected = {(i, r) for i, run in enumerate(runs.values()) for r in range(len(run["label"]))}
    assert len(rows) == len(expected) and {tuple(x) for x in rows.tolist()} == expected
    for b in batches:  # labels/layers travel with their row
        for i, run in enumerate(runs.values()):
            sel = b.run_index == i
            idx = b.features[sel, 0].long().numpy()
            np.testing.assert_array_equal(b.label[sel].numpy(), run["label"][idx])
            np.testing.assert_allclose(b.features[sel, 1:].numpy(), run["features"][idx, 1:])
        assert b.features.dtype == torch.float32 and b.label.dtype == b.layer.dtype == torch.int64

    again = epoch(seed=3, prefetch=False)
    assert all(torch.equal(x.features, y.features) for x, y in zip(batches, again, strict=True))
    assert not torch.equal(epoch(seed=4)[0].features, batches[0].features)

    seq = torch.cat([b.features[:, 0] for b in epoch(shuffle=False)])
    np.testing.assert_array_equal(seq.numpy(), np.concatenate([np.arange(len(r["label"])) for r in runs.values()]))

    sub = list(reader.iter_batches(40, runs=["r2"], columns=["rank_theta", "theta"], drop_last=True))
    assert {int(i) for b in sub for i in b.run_index} == {2} and all(b.features.shape == (40, 2) for b in sub)
    assert sum(len(b.label) for b in sub) == len(runs["r2"]["label"]) // 40 * 40


def test_early_stop_of_stream_is_clean(store: FeatureStore) -> None:
    store.write_run("a", **make_run(width=20))
    it = StoreReader(store.path).iter_batches(8, buffer_chunks=1)
    next(it)
    it.close()  # the prefetch thread must not be left running


# ---------------------------------------------------------------------------------------------- concurrency


def test_two_processes_write_different_runs_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.zarr"  # does not exist yet: both workers race to create it too
    ctx = mp.get_context("spawn")
    kw = {"n_weights": 3000, "n_features": 6, "storage": StorageOptions(chunk_bytes=4096)}
    with ctx.Pool(2) as pool:
        results = [
            pool.apply_async(write_synthetic_run, (path, run_id), {**kw, "seed": i, "model": f"m{i}"})
            for i, run_id in enumerate(["w0", "w1"])
        ]
        assert sorted(r.get(timeout=180) for r in results) == ["w0", "w1"]
    report = validate_store(path)
    assert report.ok and report.valid_runs == ["w0", "w1"] and report.n_weights == 6000, report.format()
    reader = StoreReader(path)
    for i, run_id in enumerate(["w0", "w1"]):
        np.testing.assert_array_equal(reader.load_run(run_id).features, synthetic_run(3000, 6, seed=i)["features"])
    assert open_store(path).root_attrs["feature_names"] == [f"f{i}" for i in range(6)]


# ---------------------------------------------------------------------------------------------- info / bench


def test_store_info_and_bench(store: FeatureStore, tmp_path: Path) -> None:
    store.write_run("a", **make_run(model="lenet_300_100"))
    store.write_run("b", **make_run(model="mlp_wide", seed=1))
    store.write_run("c", **make_run(model="mlp_wide", seed=2))
    mark_incomplete(store, "c")
    info = store_info(store.path)
    assert "2 complete, 1 incomplete" in info and "lenet_300_100" in info and "compression x" in info
    assert "incomplete (killed jobs; rerunning the command that wrote them completes them): c" in info
    # a run gen is generating has no group until its IRP ends: its claim says so (info read "0 incomplete"; hunt)
    import threading

    from autosparse.store.locks import claim_run

    taken, done = threading.Event(), threading.Event()

    def generating() -> None:
        with claim_run(store.path, "d"):
            taken.set()
            done.wait(30)

    worker = threading.Thread(target=generating)
    worker.start()
    try:
        assert taken.wait(30)
        assert "claimed by a live process, no group yet (IRP rounds of a gen, or a copy starting): d" in store_info(
            store.path
        )
    finally:
        done.set()
        worker.join()
    assert "claimed by a live process" not in store_info(store.path)  # a lock file left behind is no run

    result = measure_write_read(tmp_path / "bench", 20_000, 8, storage=StorageOptions(chunk_bytes=64 * 1024))
    assert result["write_mb_s"] > 0 and result["read_shuffled_mb_s"] > 0 and result["compression_ratio"] > 1
    assert not (tmp_path / "bench" / "bench.zarr").exists()
    assert "zstd-1-bits" in format_results([result])


def test_storage_options_are_recorded_and_any_layout_is_readable(tmp_path: Path) -> None:
    opts = StorageOptions(cname="lz4", clevel=5, transpose=False, checksum=False, chunk_bytes=1000)
    store = FeatureStore(tmp_path / "s.zarr", schema_version=1, feature_names=NAMES, storage=opts, durable=True)
    run = make_run()
    store.write_run("a", **run)
    meta = json.loads((store.path / "runs" / "a" / "features" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"]] == ["bytes", "blosc"]
    assert StoreReader(store.path).attrs("a")["storage"]["cname"] == "lz4"
    np.testing.assert_array_equal(StoreReader(store.path).load_run("a").features, run["features"])


def test_entries_of_runs_that_are_no_run_are_reported_and_never_dropped(store: FeatureStore) -> None:
    """A scorer trained into STORE/runs/, a store made there, a folder whose name is no run id and a
    copy of a run (recording another run id) were incomplete runs that `store repair` deleted, a
    traceback, or a run trained on twice (helper)."""
    import shutil

    from autosparse.store import repair_store

    store.write_run("r0", **make_run(seed=0))
    store.write_run("r1", **make_run(seed=1))
    runs = store.path / "runs"
    shutil.copytree(runs / "r0", runs / "r0.bak")
    (runs / "my_scorer").mkdir()
    (runs / "my_scorer" / "card.json").write_text("{}")
    (runs / "old runs").mkdir()
    FeatureStore(store.path.parent / "elsewhere.zarr", schema_version=1, feature_names=NAMES, durable=False)
    shutil.copytree(store.path.parent / "elsewhere.zarr", runs / "inner.zarr")
    (runs / "killed").mkdir()  # a run killed before its metadata: still an incomplete run
    report = validate_store(store.path)
    assert report.ok and report.valid_runs == ["r0", "r1"] and report.incomplete_runs == ["killed"]
    for name, why in [
        ("r0.bak", "records run id 'r0'"),
        ("my_scorer", "without run metadata"),
        ("old runs", "name is no run id"),
        ("inner.zarr", "another store"),
    ]:
        line = next(w for w in report.warnings if f"{runs / name} is no run of this store" in w)
        assert why in line and "move it out of runs/" in line
    assert "not runs" in store_info(store.path) and "my_scorer" in store_info(store.path)
    assert StoreReader(store.path).run_ids == ["r0", "r1"]  # the copy is not read twice
    assert repair_store(store.path) == [("killed", "incomplete")]
    assert all((runs / n).is_dir() for n in ("r0.bak", "my_scorer", "old runs", "inner.zarr"))


def test_a_store_or_a_scorer_inside_a_store_is_refused(
    store: FeatureStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from autosparse.core.errors import ConfigError
    from autosparse.scorer.training import check_scorer_out

    store.write_run("r0", **make_run())
    with pytest.raises(ConfigError, match="is inside the feature store"):
        FeatureStore(store.path / "runs" / "inner.zarr", schema_version=1, feature_names=NAMES)
    with pytest.raises(ConfigError, match="is inside the feature store"):
        check_scorer_out(store.path / "runs" / "my_scorer")
    check_scorer_out(tmp_path / "beside" / "my_scorer")  # beside a store is fine
    from autosparse.cli import main as cli_main

    inner = str(store.path / "runs" / "inner.zarr")
    assert cli_main(["gen", "--check", "--store", inner, "--models", "mlp", "--datasets", "digits"]) == 2
    assert "is inside the feature store" in capsys.readouterr().err
    assert not (store.path / "runs" / "inner.zarr").exists()


def test_a_bad_run_id_is_one_store_error_and_still_a_value_error(store: FeatureStore) -> None:
    for bad in ("a b", "../x"):
        with pytest.raises(StoreError, match="invalid run id"):
            store.delete_run(bad)
        with pytest.raises(ValueError, match="invalid run id"):
            store.is_complete(bad)


def test_a_lock_in_a_read_only_folder_is_one_error_naming_the_fix(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only store gave an OSError traceback from the lock file (delete-run, repair) (helper)."""
    import errno
    import os

    from autosparse.core import claims
    from autosparse.core.errors import UnwritableError

    def read_only(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EROFS, "Read-only file system")

    store.write_run("r0", **make_run())
    monkeypatch.setattr(claims.os, "open", read_only)
    with pytest.raises(UnwritableError, match=r"cannot write .*\.locks \(Read-only file system\).*store copy"):
        store.delete_run("r0")
    assert isinstance(UnwritableError("x"), PermissionError) and os.path.isdir(store.path / "runs" / "r0")


def test_a_run_killed_in_its_first_metadata_write_or_that_lost_it_is_still_a_run(store: FeatureStore) -> None:
    """zarr writes zarr.json through zarr.<uuid>.partial: a run killed there, or one whose zarr.json was
    lost beside its arrays, holds zarr's files only, so it is an incomplete run repair drops, not a
    foreign folder left alone (review)."""
    from autosparse.store import repair_store

    store.write_run("r0", **make_run(seed=0))
    store.write_run("r1", **make_run(seed=1))
    runs = store.path / "runs"
    (runs / "r9").mkdir()
    (runs / "r9" / "zarr.0123abcd.partial").write_text("{")
    (runs / "r1" / "zarr.json").unlink()
    report = validate_store(store.path)
    assert sorted(report.incomplete_runs) == ["r1", "r9"] and not report.warnings
    assert sorted(r for r, _ in repair_store(store.path)) == ["r1", "r9"]


def test_a_folder_recording_another_run_id_is_not_that_run_and_is_never_written_over(store: FeatureStore) -> None:
    import shutil

    from data_gen.grid import _check_store_takes

    store.write_run("r0", **make_run(seed=0))
    shutil.copytree(store.path / "runs" / "r0", store.path / "runs" / "r5")  # a copy, or a renamed run
    assert not store.is_complete("r5") and store.complete_runs() == ["r0"]  # gen would not count it as done...
    with pytest.raises(StoreError, match=r"in the way of run 'r5' .*records run id 'r0'.*move it out of runs/"):
        store.write_run("r5", **make_run(seed=5))  # ...nor write over it
    with pytest.raises(AutosparseError, match=r"in the way of run 'r5'"):
        _check_store_takes(store.path, ["r4", "r5"])  # gen says so before any training
    assert (store.path / "runs" / "r5" / "zarr.json").exists()


def test_gen_refuses_a_store_it_cannot_write_before_any_run(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only store passed --check, then every run failed on its lock file (helper)."""
    import errno

    import data_gen.grid as grid
    from autosparse.core import folders

    def read_only(*args: object, **kwargs: object) -> str:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(folders.tempfile, "mkdtemp", read_only)
    with pytest.raises(
        AutosparseError, match=r"cannot be written \(Read-only file system\), and 2 run\(s\).*store copy"
    ):
        grid._check_store_takes(store.path, ["r1", "r2"])
    grid._check_store_takes(store.path, [])  # nothing to generate: nothing to write


def test_folders_of_other_things_are_never_taken_for_runs(store: FeatureStore) -> None:
    """My first rule took a folder of runs staged in a subfolder, a scorer's empty checkpoints folder and
    a sweep's lr/0/ for a run's arrays, and repair deleted them; two links back up hung every listing
    (review)."""
    import os
    import shutil

    from autosparse.store import repair_store

    store.write_run("r0", **make_run(seed=0))
    runs = store.path / "runs"
    shutil.copytree(runs / "r0", runs / "imported" / "a0")
    (runs / "my_scorer" / "checkpoints").mkdir(parents=True)
    (runs / "sweep" / "lr" / "0").mkdir(parents=True)
    (runs / "sweep" / "lr" / "0" / "model.pt").write_bytes(b"x")
    (runs / "loop" / "0").mkdir(parents=True)
    os.symlink("..", runs / "loop" / "0" / "up")
    os.symlink("..", runs / "loop" / "0" / "parent")
    report = validate_store(store.path)
    assert report.valid_runs == ["r0"] and report.incomplete_runs == [] and len(report.warnings) == 4
    assert repair_store(store.path) == []
    assert all((runs / n).is_dir() for n in ("imported", "my_scorer", "sweep", "loop"))


def test_a_run_that_records_no_run_id_is_neither_complete_nor_read(store: FeatureStore) -> None:
    store.write_run("r0", **make_run(seed=0))
    store.write_run("r5", **make_run(seed=1))
    meta = store.path / "runs" / "r5" / "zarr.json"
    data = json.loads(meta.read_text())
    del data["attributes"]["run_id"]
    meta.write_text(json.dumps(data))
    assert not store.is_complete("r5") and store.complete_runs() == ["r0"]
    with pytest.raises(StoreError, match=r"'r5' .* is no run of this store \(a zarr group that records no run id\)"):
        StoreReader(store.path).load_run("r5")


def test_feature_names_must_be_a_list_of_distinct_names(tmp_path: Path) -> None:
    """A string is a sequence too: "theta" became five one-letter features, and a repeated name a
    bare ValueError naming no fix (helper)."""
    from autosparse.core.errors import ConfigError

    for names, said in (
        (("theta"), "got the string 'theta'"),
        (["a", "b", "a"], r"\['a'\] more than once"),
        ([], "empty"),
    ):
        with pytest.raises(ConfigError, match=said):
            FeatureStore(tmp_path / "s.zarr", schema_version=1, feature_names=names)
    with pytest.raises(ConfigError, match="SCHEMA_VERSION"):
        FeatureStore(tmp_path / "s.zarr", schema_version="1", feature_names=["a"])  # type: ignore[arg-type]
    assert not (tmp_path / "s.zarr").exists()  # refused before anything was written


def test_what_an_interrupted_write_leaves_is_an_incomplete_run_that_a_rerun_replaces(store: FeatureStore) -> None:
    """Ctrl-C during write_run: the write was undone, but zarr's I/O thread went on and recreated the run's
    bare group (no attributes) or a chunk alone; every rerun refused it as "no run of this store" (helper)."""
    from autosparse.store import repair_store

    store.write_run("r0", **make_run(seed=0))
    runs = store.path / "runs"
    bare = {"zarr_format": 3, "node_type": "group", "attributes": {}}
    (runs / "r9" / "graph" / "in_pairs").mkdir(parents=True)
    (runs / "r9" / "zarr.json").write_text(json.dumps(bare))  # the bare group, and a member's metadata
    (runs / "r9" / "graph" / "in_pairs" / "zarr.json").write_text(json.dumps(bare))
    (runs / "r8" / "label" / "c").mkdir(parents=True)
    (runs / "r8" / "label" / "c" / "1").write_bytes(b"\\x00")
    report = validate_store(store.path)
    assert report.valid_runs == ["r0"] and sorted(report.incomplete_runs) == ["r8", "r9"], report.warnings
    store.write_run("r9", **make_run(seed=9))  # the rerun replaces it
    assert store.is_complete("r9")
    assert repair_store(store.path) == [("r8", "incomplete")]
    # a user's folders named like a run's members, holding other files, are no run: repair keeps them (review)
    (runs / "notes" / "features").mkdir(parents=True)
    (runs / "notes" / "features" / "my.csv").write_text("a,b")
    (runs / "mygroup" / "extra").mkdir(parents=True)
    (runs / "mygroup" / "zarr.json").write_text(json.dumps(bare))
    (runs / "mygroup" / "extra" / "data.npy").write_bytes(b"x")
    assert repair_store(store.path) == []
    assert (runs / "notes" / "features" / "my.csv").exists() and (runs / "mygroup" / "extra" / "data.npy").exists()
    # a group holding a run's arrays whose run id was lost is still no run of this store (not replaced)
    (runs / "r7").mkdir()
    (runs / "r7" / "zarr.json").write_text(json.dumps({**bare, "attributes": {"complete": True}}))
    with pytest.raises(StoreError, match="records no run id"):
        store.write_run("r7", **make_run(seed=7))
