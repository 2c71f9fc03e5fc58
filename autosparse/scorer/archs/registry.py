"""The table of ranker architectures, by name.

Why a module of its own, below everything else in the scorer: :class:`~autosparse.scorer.config.ScorerConfig`
checks ``arch`` against this table, and every architecture reads a ``ScorerConfig``, so the table
cannot live with the :class:`~autosparse.scorer.archs.base.Arch` interface (which needs the config)
without an import cycle. It therefore holds plain classes; :func:`autosparse.scorer.archs.base.get_arch`
is the typed way in. Importing :mod:`autosparse.scorer` fills it (its ``archs`` package imports the
built-in architectures), so a config is never checked against an empty table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from autosparse.core.errors import ConfigError

T = TypeVar("T", bound=type)

_ARCHS: dict[str, type] = {}


def register_arch(name: str) -> Callable[[T], T]:
    """Class decorator: make a ranker architecture trainable (``train-scorer --arch``) and loadable from a card."""

    def deco(cls: T) -> T:
        if name in _ARCHS and _ARCHS[name] is not cls:
            raise ConfigError(f"scorer arch {name!r} is registered twice ({_ARCHS[name].__name__}, {cls.__name__})")
        cls.name = name  # type: ignore[attr-defined]
        _ARCHS[name] = cls
        return cls

    return deco


def arch_names() -> tuple[str, ...]:
    """Registered architectures, sorted (registration order depends on import order)."""
    return tuple(sorted(_ARCHS))


def arch_class(name: str) -> type:
    """The class registered as ``name``; an unknown name is a ConfigError listing the known ones."""
    try:
        return _ARCHS[name]
    except KeyError:
        raise ConfigError(f"unknown scorer arch {name!r}; use {' or '.join(arch_names())}") from None
