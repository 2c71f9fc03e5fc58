"""docs/PYTHON.md's example runs as written, and a rerun of it finds everything done."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "PYTHON.md").read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/PYTHON.md should hold exactly one python example"
    return blocks[0]


@pytest.mark.slow
def test_python_pipeline_example_runs_and_reruns_at_once(tmp_path, monkeypatch, capsys) -> None:
    from autosparse import AutosparseError
    from autosparse.scorer.training import train_scorer
    from autosparse.store.reader import StoreReader

    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(_example(), "docs/PYTHON.md", "exec"), scope)
    assert len(scope["outcomes"]) == 3  # type: ignore[arg-type]
    assert len(StoreReader("runs/py/store.zarr").run_ids) == 3
    metrics = scope["trained"].card.metrics  # type: ignore[attr-defined]
    assert [r.split("__")[0] for r in metrics] == ["mlp-widths96x48"]  # the held-out run, and only it
    report = scope["run"].report  # type: ignore[attr-defined]
    assert report.path == tmp_path / "runs/py/bench/report.md" and report.path.exists()
    assert {r["method"] for r in report.records} == {"snip", "synflow", "autos"}
    assert str(report.path) in capsys.readouterr().out

    card = (tmp_path / "runs/py/scorer/card.json").read_text()
    again: dict[str, object] = {}
    exec(compile(_example(), "docs/PYTHON.md", "exec"), again)  # a rerun of the whole script (review)
    assert again["outcomes"] == []  # every run complete
    assert "trained" not in again and (tmp_path / "runs/py/scorer/card.json").read_text() == card
    assert (again["run"].jobs_run, again["run"].cells_done_before) == (0, 3)  # type: ignore[attr-defined]
    with pytest.raises(AutosparseError, match="already holds the trained scorer"):  # as the page says
        train_scorer("runs/py/store.zarr", holdout=None, out="runs/py/scorer")
