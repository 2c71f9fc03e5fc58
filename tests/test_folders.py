"""Output folders: a file in the way is one ConfigError naming it, never a mkdir traceback."""

from __future__ import annotations

import os

import pytest

from autosparse.core.errors import ConfigError
from autosparse.core.folders import check_output_path, make_output_dir, write_text


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


def test_a_folder_that_cannot_be_created_is_refused_before_any_work() -> None:
    # /proc takes no new folders even from root, for whom os.access says it is writable
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux's /proc")
    with pytest.raises(ConfigError, match=r"--out /proc/autosparse-nope: cannot create folders in /proc"):
        check_output_path("/proc/autosparse-nope")


def test_a_read_only_folder_is_refused(tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if (locked / "x").exists() or _can_write(locked):  # root ignores the mode bits
            pytest.skip("this user can write in a read-only folder (root)")
        with pytest.raises(ConfigError, match=r"cannot create folders in .*locked"):
            make_output_dir(locked / "a" / "b")
    finally:
        locked.chmod(0o700)
    assert not any(p.name.startswith(".autosparse-probe") for p in tmp_path.rglob("*"))  # the probe is removed


def _can_write(folder) -> bool:
    try:
        (folder / ".w").mkdir()
    except OSError:
        return False
    (folder / ".w").rmdir()
    return True


def test_private_tmp_names_differ_per_call_and_write_text_leaves_none(tmp_path) -> None:
    """Two processes finishing one bench wrote its report through one temporary name; one renamed it
    away under the other."""
    from autosparse.core.folders import private_tmp, write_text

    target = tmp_path / "report.md"
    assert private_tmp(target) != private_tmp(target)
    assert private_tmp(target).parent == tmp_path and private_tmp(target, ".tmp.png").name.endswith(".tmp.png")
    write_text(target, "a")
    write_text(target, "b")
    assert target.read_text() == "b" and sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_dot_files_are_no_folder_content(tmp_path) -> None:
    from autosparse.core.folders import has_content

    assert not has_content(tmp_path / "missing")
    (tmp_path / ".train-scorer.lock").write_text("")  # a claim's lock file
    assert not has_content(tmp_path)
    (tmp_path / "card.json").write_text("{}")
    assert has_content(tmp_path)


def test_a_folder_where_a_file_or_a_lock_goes_is_one_error(tmp_path) -> None:
    """A folder named like a report, a weights file or a lock gave IsADirectoryError tracebacks, after the
    work was done (hunt); nothing of the folder is touched and no temporary is left."""
    import torch

    from autosparse.core.claims import claim
    from autosparse.core.tensor_files import save_tensors

    for name in ("report.md", "model.safetensors", "x.lock"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mine.txt").write_text("keep")
    with pytest.raises(ConfigError, match=r"report.md is a folder where autosparse writes a file; move it away"):
        write_text(tmp_path / "report.md", "# report")
    with pytest.raises(ConfigError, match=r"model.safetensors is a folder where autosparse writes a file"):
        save_tensors({"w": torch.ones(2)}, tmp_path / "model.safetensors")
    with (
        pytest.raises(ConfigError, match=r"cannot open the lock file .*x.lock: is a directory"),
        claim(tmp_path / "x.lock"),
    ):
        pass
    (tmp_path / "f").write_text("a file where the lock's folder goes")  # review: FileExistsError from mkdir
    with pytest.raises(ConfigError, match=r"cannot open the lock file .*f/lock"), claim(tmp_path / "f" / "lock"):
        pass
    (tmp_path / "f").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "report.md", "x.lock"]
    assert all((tmp_path / n / "mine.txt").read_text() == "keep" for n in ("report.md", "model.safetensors", "x.lock"))
