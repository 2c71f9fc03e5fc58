"""Which versions of Python and of the numeric stack produced a result.

A feature value, a stored run or a bench cell can drift when torch or numpy changes; recording
the versions next to the result is what makes such drift diagnosable later. Versions are read
from the installed distributions' metadata (never by importing the package, which for torch or
torch-geometric would cost seconds).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
from collections.abc import Sequence
from pathlib import Path

#: What a result records unless its writer needs more.
DEFAULT_PACKAGES: tuple[str, ...] = ("autosparse", "torch", "torchvision", "zarr", "numpy")


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_versions(packages: Sequence[str] = DEFAULT_PACKAGES, *, missing: str | None = "unknown") -> dict[str, str]:
    """``{"python": ..., package: version, ...}`` in the order given.

    A package that is not installed is recorded as ``missing`` (``"unknown"`` by default), or
    left out when ``missing`` is None — for optional extras whose absence is itself the answer.
    """
    out = {"python": platform.python_version()}
    for pkg in packages:
        version = package_version(pkg)
        if version is not None:
            out[pkg] = version
        elif missing is not None:
            out[pkg] = missing
    return out


@functools.cache
def code_fingerprint() -> str:
    """A hash of this autosparse's own source files (its version string never changes between commits).

    Why: a speed bench reused rows measured by an older autosparse after an upgrade had made the
    method faster, and its table, "× snip in this run", mixed two versions' times (helper).
    """
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]
