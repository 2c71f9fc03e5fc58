"""Project exceptions.

Every mistake a user can make (a typo in a method name, a density of 5, a store written by
another schema version) is raised as an :class:`AutosparseError` whose message names the fix.
The CLI prints these in one line and exits non-zero; anything else is a bug and keeps its
traceback so it can be reported.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AutosparseError(Exception):
    """A user-facing error: the message says what went wrong *and* how to fix it."""


class UnknownNameError(AutosparseError, KeyError):
    """A name (model, dataset, pruner, scorer, executor) that no registry knows."""

    def __init__(
        self, kind: str, name: str, known: Iterable[str], hint: str = "", *, listed: str = "choose one of"
    ) -> None:
        """``listed`` introduces ``known``: keep the default for a complete list, say what it is
        otherwise (``"similar names"``, ``"for example"``) — a partial list must not read as the only choices."""
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1)
        msg = f"unknown {kind} {name!r}"
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        msg += f"; {listed}: {', '.join(known)}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)
        self.kind, self.name, self.known = kind, name, known

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class DensityError(AutosparseError, ValueError):
    """A density or sparsity outside (0, 1], or both/neither given."""


class DatasetNotFoundError(AutosparseError, FileNotFoundError):
    """A dataset that is not on disk and may not be downloaded."""


class NoPrunableLayersError(AutosparseError, ValueError):
    """A model with no Linear/Conv weight to prune."""


class TiedWeightsError(AutosparseError, ValueError):
    """Two prunable layers that share one weight tensor (tied weights)."""


class MaskError(AutosparseError, ValueError):
    """A mask that does not fit the model (names, shapes, dtype)."""


class StoreError(AutosparseError):
    """A feature store that is missing, corrupt, incomplete or of another schema version."""


class SchemaMismatchError(AutosparseError):
    """Features computed with one schema version fed to a scorer trained on another."""


class CheckpointError(AutosparseError):
    """A scorer checkpoint that is missing, tampered with or unreadable."""


class ConfigError(AutosparseError, ValueError):
    """A configuration value that cannot work (e.g. zero rounds, negative epochs)."""


def check_density(density: float | None = None, sparsity: float | None = None) -> float:
    """Resolve exactly one of ``density`` / ``sparsity`` to a density in (0, 1].

    Accepting both spellings is convenient; accepting both *at once* is ambiguous, so that is
    an error rather than a silent precedence rule.
    """
    if (density is None) == (sparsity is None):
        raise DensityError("give exactly one of density or sparsity (e.g. --sparsity 0.99 or --density 0.01)")
    if density is None:
        assert sparsity is not None
        if not 0.0 <= sparsity < 1.0:
            raise DensityError(f"sparsity must be in [0, 1), got {sparsity}; e.g. --sparsity 0.99 keeps 1% of weights")
        density = 1.0 - float(sparsity)
    density = float(density)
    if not 0.0 < density <= 1.0:
        raise DensityError(f"density must be in (0, 1], got {density}; e.g. --density 0.01 keeps 1% of weights")
    return density
