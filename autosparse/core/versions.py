"""The package versions a result was computed with, recorded next to it so drift is diagnosable.

A store run and a bench cell each name the packages that can change their numbers; one recorder
reads them all the same way (installed distribution metadata, never an import of the package, so
recording torchvision's version does not cost its import).
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
from collections.abc import Sequence

UNKNOWN = "unknown"


@functools.cache
def _installed(packages: tuple[str, ...], missing: str | None) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            if missing is not None:
                out[pkg] = missing
    return out


def package_versions(packages: Sequence[str], *, missing: str | None = UNKNOWN) -> dict[str, str]:
    """Python's version and each package's, in the given order.

    A package that is not installed is recorded as ``missing`` (left out when ``missing`` is None),
    so a record always says what was looked for. Cached: versions do not change within a process,
    and a bench worker records them once per cell.
    """
    return dict(_installed(tuple(packages), missing))
