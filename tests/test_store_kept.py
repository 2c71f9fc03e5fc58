"""``autosparse store kept``: a run's IMP allocation per layer and round, read from its labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_store_cli import RUNS, _write

from autosparse.cli import main as cli_main
from autosparse.core.errors import StoreError
from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION
from autosparse.store import FeatureStore, StoreReader
from autosparse.store.kept import kept_per_round


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    fs = FeatureStore(tmp_path / "s.zarr", schema_version=SCHEMA_VERSION, feature_names=FEATURE_NAMES, durable=False)
    for run_id, label, seed in RUNS[:2]:
        _write(fs, run_id, label, seed)
    return fs


def test_counts_follow_the_labels(store: FeatureStore) -> None:
    run_id = RUNS[1][0]
    table = kept_per_round(store.path, run_id)
    run = StoreReader(store.path).load_run(run_id, columns=[])
    label, layer = np.asarray(run.label), np.asarray(run.layer)
    assert table.rounds == 3 and table.layer_names == ["fc1.weight", "fc2.weight"]
    for r in range(4):  # kept after round r: every weight not pruned in rounds 1..r (label >= r)
        assert table.kept[r].tolist() == [int(((label >= r) & (layer == j)).sum()) for j in range(2)]
    assert table.kept[0].tolist() == [24, 12]  # dense: every weight of each layer
    assert (np.diff(table.kept, axis=0) <= 0).all()  # IMP only ever removes
    assert table.accuracies == pytest.approx([0.9, 0.91, 0.88, 0.81])


def test_cli_prints_the_last_rounds_and_bad_input_is_one_clear_error(
    store: FeatureStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = RUNS[0][0]
    assert cli_main(["store", "kept", str(store.path), run_id, "--last", "2"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("layer"))
    assert header.split()[-2:] == ["r2", "r3"] and "r1" not in header.split()
    last = kept_per_round(store.path, run_id).kept[-1]
    assert next(line for line in out.splitlines() if line.startswith("fc1.weight")).split()[-1] == str(last[0])
    assert "test acc" in out
    with pytest.raises(StoreError, match="store info"):
        kept_per_round(store.path, "no-such-run")
    assert cli_main(["store", "kept", str(store.path), run_id, "--last", "0"]) != 0
    assert "--last must be at least 1" in capsys.readouterr().err
