"""core.versions: what a result records about the software that produced it."""

from __future__ import annotations

import importlib.metadata
import platform

from autosparse.core.versions import DEFAULT_PACKAGES, package_version, package_versions


def test_defaults_in_order_with_python_first() -> None:
    v = package_versions()
    assert list(v) == ["python", *DEFAULT_PACKAGES]
    assert v["python"] == platform.python_version()
    assert v["numpy"] == importlib.metadata.version("numpy")


def test_a_missing_package_is_unknown_or_left_out() -> None:
    name = "surely-not-an-installed-package"
    assert package_version(name) is None
    assert package_versions(("numpy", name))[name] == "unknown"
    assert list(package_versions(("numpy", name), missing=None)) == ["python", "numpy"]
