"""The package's public face (autosparse/__init__.py): every exported name resolves and is documented."""

from __future__ import annotations

import pytest

import autosparse


@pytest.mark.parametrize("name", autosparse.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(autosparse, name) is not None


def test_the_package_docstring_lists_every_public_name() -> None:
    # `help(autosparse)` shows only the lazy __getattr__: the docstring is where a user sees the API
    assert autosparse.__doc__ is not None
    missing = [n for n in autosparse.__all__ if f"``{n}``" not in autosparse.__doc__]
    assert not missing, f"add {missing} to autosparse/__init__.py's docstring"


def test_dir_lists_the_lazy_exports() -> None:
    # tab completion and dir() read __dir__; the exports are resolved lazily, so they were missing
    assert set(autosparse.__all__) <= set(dir(autosparse))
