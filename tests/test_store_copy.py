"""``autosparse store copy``: runs generated into separate stores, combined into one to train on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_store_cli import RUNS, _write

from autosparse.cli import main as cli_main
from autosparse.core.errors import ConfigError, SchemaMismatchError, StoreError
from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION
from autosparse.store import FeatureStore, StoreReader
from autosparse.store.copy import copy_runs


@pytest.fixture
def src(tmp_path: Path) -> FeatureStore:
    fs = FeatureStore(tmp_path / "src.zarr", schema_version=SCHEMA_VERSION, feature_names=FEATURE_NAMES, durable=False)
    for run_id, label, seed in RUNS:
        _write(fs, run_id, label, seed)
    return fs


def test_copied_runs_read_back_identical_and_the_copy_resumes(src: FeatureStore, tmp_path: Path) -> None:
    dst = tmp_path / "dst.zarr"
    report = copy_runs(src.path, dst, where="model_label=mlp-widths300")
    assert sorted(report.copied) == sorted(r for r, label, _ in RUNS if label == "mlp-widths300")
    a, b = StoreReader(src.path), StoreReader(dst)
    assert set(b.run_ids) == set(report.copied)
    for run_id in report.copied:
        x, y = a.load_run(run_id), b.load_run(run_id)
        np.testing.assert_array_equal(x.features, y.features)
        np.testing.assert_array_equal(x.label, y.label)
        np.testing.assert_array_equal(x.layer, y.layer)
        assert y.attrs["copied"][0]["from_store"] == str(src.path)
        assert {k: v for k, v in y.attrs.items() if k not in ("copied", "written_at", "written_by", "storage")} == {
            k: v for k, v in x.attrs.items() if k not in ("written_at", "written_by", "storage")
        }
    # the rest through the CLI: the runs already there are skipped, the source is untouched
    assert cli_main(["store", "copy", str(src.path), "--out", str(dst)]) == 0
    assert set(StoreReader(dst).run_ids) == {r for r, _, _ in RUNS}
    assert copy_runs(src.path, dst).already == StoreReader(src.path).run_ids
    assert set(StoreReader(src.path).run_ids) == {r for r, _, _ in RUNS}


def test_bad_copies_are_one_clear_error(
    src: FeatureStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="must differ"):
        copy_runs(src.path, src.path)
    # the source under another spelling is the source (copied into itself, or "a store inside" it; hunt)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.zarr").symlink_to(src.path)
    for spelling in (tmp_path / "sub" / ".." / src.path.name, tmp_path / "link.zarr"):
        with pytest.raises(ConfigError, match="must differ"):
            copy_runs(src.path, spelling)
    # a --runs value no run has is said, as train-scorer's --holdout says it
    with caplog.at_level("WARNING", logger="autosparse.store.copy"):
        copy_runs(src.path, tmp_path / "some.zarr", where="model_label=mlp-widths300,nothing")
    assert "--runs: model_label=nothing match no run of" in caplog.text
    for inside in (src.path / "runs" / "x.zarr", src.path / "inner.zarr"):  # read back as an incomplete run of src
        with pytest.raises(ConfigError, match="must be a store outside"):
            copy_runs(src.path, inside)
        assert not inside.exists()
    with pytest.raises(StoreError, match=r"no complete run .* matches .*store info"):
        copy_runs(src.path, tmp_path / "d.zarr", where="model_label=nope")
    other = FeatureStore(
        tmp_path / "other.zarr", schema_version=SCHEMA_VERSION, feature_names=["a", "b"], durable=False
    )
    with pytest.raises(SchemaMismatchError):
        copy_runs(src.path, other.path)
    with pytest.raises(ConfigError, match=r"^--out .*is inside the feature store"):  # it named --store (hunt)
        copy_runs(src.path, other.path / "runs" / "x.zarr")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"^--out .*afile, which is a file"):  # the command's flag, not --store
        copy_runs(src.path, tmp_path / "afile" / "d.zarr")


def test_a_damaged_run_is_said_and_the_others_are_copied(
    src: FeatureStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # one corrupt chunk in the source stopped the copy of every run (hunt)
    from autosparse.store.kept import kept_per_round

    bad = RUNS[0][0]
    (chunk,) = [p for p in (src.path / "runs" / bad / "features").rglob("*") if p.is_file() and p.name != "zarr.json"]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    dst = tmp_path / "dst.zarr"
    assert cli_main(["store", "copy", str(src.path), "--out", str(dst)]) == 1
    out = capsys.readouterr().out
    assert f"FAILED {bad}: run {bad!r}: cannot read features" in out and "1 unreadable in the source" in out
    assert set(StoreReader(dst).run_ids) == {r for r, _, _ in RUNS} - {bad}
    assert kept_per_round(src.path, bad).rounds == 3  # its labels are whole: `store kept` reads no feature


def test_copying_across_schemas_names_the_store_to_refeaturize(src: FeatureStore, tmp_path: Path) -> None:
    # one store holds one feature schema; the fix is to bring the older store up to date, not to
    # "use the autosparse that wrote it"
    old = FeatureStore(tmp_path / "old.zarr", schema_version=SCHEMA_VERSION - 1, feature_names=FEATURE_NAMES)
    run_id, label, seed = RUNS[0]
    _write(old, run_id, label, seed)
    for a, b in ((old.path, src.path), (src.path, old.path)):
        with pytest.raises(SchemaMismatchError, match=rf"store refeaturize {old.path} --out NEW\.zarr"):
            copy_runs(a, b)
    # one schema version, other columns: the store that differs from this code's, either way round (the
    # destination was named always, and refeaturizing it, current already, led to the same error; hunt)
    swapped = [FEATURE_NAMES[1], FEATURE_NAMES[0], *FEATURE_NAMES[2:]]
    odd = FeatureStore(tmp_path / "odd.zarr", schema_version=SCHEMA_VERSION, feature_names=swapped)
    _write(odd, run_id, label, seed)
    for a, b in ((odd.path, src.path), (src.path, odd.path)):
        with pytest.raises(SchemaMismatchError, match=rf"other feature columns.*store refeaturize {odd.path} --out"):
            copy_runs(a, b)
    new = FeatureStore(tmp_path / "new.zarr", schema_version=SCHEMA_VERSION + 1, feature_names=FEATURE_NAMES)
    with pytest.raises(SchemaMismatchError, match=rf"{new.path} was written by a newer autosparse"):
        copy_runs(src.path, new.path)
    assert set(StoreReader(src.path).run_ids) == {r for r, _, _ in RUNS}  # nothing written anywhere


def test_a_copy_waits_for_a_run_another_copy_holds_and_takes_over_what_it_left(
    src: FeatureStore, tmp_path: Path
) -> None:
    """A second copy into the same target exited 0 saying "1 being written by another process", and the
    first, killed, left that run incomplete for good: no `gen` regenerates a copied run (helper)."""
    import threading

    from autosparse.store.locks import claim_run

    dst = tmp_path / "dst.zarr"
    FeatureStore(dst, schema_version=SCHEMA_VERSION, feature_names=FEATURE_NAMES, durable=False)
    first = RUNS[0][0]
    taken, release = threading.Event(), threading.Event()

    def other_copy_killed_mid_run() -> None:
        with claim_run(dst, first):
            taken.set()
            release.wait(30)  # holds the run, then dies without writing it

    t = threading.Thread(target=other_copy_killed_mid_run)
    t.start()
    taken.wait(30)
    threading.Timer(1.5, release.set).start()
    report = copy_runs(src.path, dst)
    t.join()
    assert sorted(report.copied) == sorted(r for r, _, _ in RUNS)  # the held one too, after the wait
    assert report.elsewhere == [] and "0 written by another process" in report.format()
    assert set(StoreReader(dst).run_ids) == {r for r, _, _ in RUNS}
