"""Output folders: a file in the way is one ConfigError naming it, never a mkdir traceback."""

from __future__ import annotations

import pytest

from autosparse.core.errors import ConfigError
from autosparse.core.folders import check_output_path, make_output_dir


def test_a_new_folder_is_made_with_its_parents(tmp_path) -> None:
    out = make_output_dir(tmp_path / "a" / "b")
    assert out.is_dir() and make_output_dir(out) == out  # and again: nothing to do


def test_a_file_in_the_way_is_named(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"--store .*f is a file"):
        check_output_path(tmp_path / "f", flag="--store")
    with pytest.raises(ConfigError, match=r"--out .*sub is inside .*f, which is a file"):
        make_output_dir(tmp_path / "f" / "sub")
    assert not (tmp_path / "f").is_dir()
