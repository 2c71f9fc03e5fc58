"""Ranker architectures behind one interface (:class:`~autosparse.scorer.archs.base.Arch`), by name.

Importing this package registers the built-in ones; an architecture is one module here with a
``@register_arch("name")`` class, imported below. :mod:`autosparse.scorer`
imports the package, so the registry is full before any :class:`~autosparse.scorer.config.ScorerConfig`
is checked against it. Modules below the architectures import :mod:`.registry` or :mod:`.base`,
never this package.
"""

from __future__ import annotations

from autosparse.scorer.archs import gnn, mlp  # noqa: F401  (registers them)
from autosparse.scorer.archs.base import Arch, RankerData, TrainingSplit, get_arch
from autosparse.scorer.archs.registry import arch_names, register_arch

__all__ = ["Arch", "RankerData", "TrainingSplit", "arch_names", "get_arch", "register_arch"]
