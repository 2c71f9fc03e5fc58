"""The README's Python example runs as written, with the shipped scorer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_readme_example_runs(tmp_path, monkeypatch) -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    code = blocks[0]
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 12
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    masks = scope["masks"]
    assert masks.kept == round(0.01 * masks.total)  # type: ignore[attr-defined]
    assert not masks.empty_layers()  # type: ignore[attr-defined]
    assert (tmp_path / "resnet18_autos_99" / "masks.safetensors").exists()
