"""What a plain (non-editable) install carries: the shipped scorers must travel with the package,
or `autos` — the default method — fails after `pip install .` with an empty list of scorers."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autosparse.scorer.checkpoint import CARD_FILE, SHIPPED_DIR, WEIGHTS_FILE, shipped_scorers

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # stdlib from Python 3.11


def test_pyproject_packages_every_file_a_shipped_scorer_is_loaded_from() -> None:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert any(fnmatch.fnmatch("trained_scorers", p) for p in setup["packages"]["find"]["include"])
    patterns = setup["package-data"]["trained_scorers"]
    assert shipped_scorers(), "no shipped scorer found: the test would prove nothing"
    for name in shipped_scorers():
        for file in (CARD_FILE, WEIGHTS_FILE):
            assert (SHIPPED_DIR / name / file).exists()
            assert any(fnmatch.fnmatch(f"{name}/{file}", p) for p in patterns), (
                f"{name}/{file} is left out of the wheel"
            )


def _setuptools_can_build() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77  # pyproject's build requirement


@pytest.mark.skipif(not _setuptools_can_build(), reason="needs setuptools>=77 in this environment (the dev extra)")
def test_a_wheel_finds_its_shipped_scorers_without_the_repository(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:  # a copy of what is committed, so the build writes nothing into the checkout
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("autosparse-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a pure-Python wheel installs by unpacking
    probe = (
        "import autosparse, sys\n"
        "from autosparse.scorer.checkpoint import resolve_scorer\n"
        "from autosparse.scorer.loaded import load_scorer\n"
        "print(autosparse.__file__)\n"
        "print(resolve_scorer('autos_mlp'))\n"
        "load_scorer('autos_mlp')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    package_file, scorer_dir = out.stdout.split()[:2]
    assert Path(package_file).is_relative_to(site)  # the unpacked wheel, not the checkout
    assert Path(scorer_dir) == site / "trained_scorers" / "autos_mlp"
