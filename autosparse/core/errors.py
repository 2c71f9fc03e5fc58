"""Project exceptions.

Every mistake a user can make (a typo in a method name, a density of 5, a store written by
another schema version) is raised as an :class:`AutosparseError` whose message names the fix.
The CLI prints these in one line and exits non-zero; anything else is a bug and keeps its
traceback so it can be reported.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import logging
import numbers
import operator
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class AutosparseError(Exception):
    """A user-facing error: the message says what went wrong *and* how to fix it."""


class UnknownNameError(AutosparseError, KeyError):
    """A name (model, dataset, pruner, scorer, executor) that no registry knows."""

    def __init__(
        self,
        kind: str,
        name: str,
        known: Iterable[str],
        hint: str = "",
        *,
        listed: str = "choose one of",
        aliases: Iterable[str] = (),
        suggest: bool | str = True,
        ordered: bool = False,
    ) -> None:
        """``listed`` introduces ``known``: keep the default for a complete list, say what it is
        otherwise (``"similar names"``, ``"for example"``) — a partial list must not read as the only choices.
        ``aliases`` are accepted names left out of the list; the likely meaning may be one (``fmnst``
        is ``fmnist``, not ``mnist``). ``suggest``: a name the caller chose as the likely meaning, or
        False for none (the nearest spelling is of another family). ``ordered``: list ``known`` in the
        caller's order (most relevant first) instead of sorted."""
        known = list(known) if ordered else sorted(known)
        msg = f"unknown {kind} {name!r}"
        if isinstance(suggest, str):
            close: str | None = suggest
        else:
            close = closest_name(name, [*known, *aliases]) if suggest else None
        if close:
            msg += f" (did you mean {close!r}?)"
        msg += f"; {listed}: {', '.join(known)}"
        if hint:  # the hints are clauses ("or pass the path …"): after a full stop they read as a stray one
            msg += f"; {hint}"
        super().__init__(msg)
        self.kind, self.name, self.known = kind, name, known

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


def _is_number(value: object) -> bool:
    if isinstance(value, numbers.Real):
        return True
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return getattr(value, "ndim", 0) == 0  # a 0-d tensor or array, not a vector that happens to have one item


def closest_name(name: str, known: list[str]) -> str | None:
    """The known name ``name`` was most likely meant as: names are case-sensitive (they end up in
    cell ids and folder names), so ``SNIP`` is refused, but it should point at ``snip``."""
    by_lower = {k.lower(): k for k in known}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    if close:
        return by_lower[close[0]]
    # a short name for one longer one, as papers write it: "erk" for random_erk
    parts = [k for k in by_lower if name.lower() in k.replace("-", "_").split("_")]
    return by_lower[parts[0]] if len(parts) == 1 else None


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


class ScoreError(AutosparseError, ValueError):
    """Pruning scores that rank nothing (e.g. every score NaN)."""


class StoreError(AutosparseError):
    """A feature store that is missing, corrupt, incomplete or of another schema version."""


class SchemaMismatchError(AutosparseError):
    """Features computed with one schema version fed to a scorer trained on another."""


class CheckpointError(AutosparseError):
    """A scorer checkpoint that is missing, tampered with or unreadable."""


class UnwritableError(AutosparseError, PermissionError):
    """A folder work must write in (a store's locks, a run's checkpoints) that cannot be written."""


class ConfigError(AutosparseError, ValueError):
    """A configuration value that cannot work (e.g. zero rounds, negative epochs)."""


_told_aliased: set[int] = set()


def check_flag(value: object, name: str) -> bool:
    """``value`` as a bool where it is one (numpy's too) or the integer 0 or 1: a string like ``"False"``
    is true to Python, so ``prune(..., apply="False")`` attached the masks to the caller's model (helper)."""
    if isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")):
        return bool(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):  # accepted before the check (review)
        return bool(value)
    raise ConfigError(f"{name} takes True or False, got {value!r}")


def check_integers(values: Sequence[Any], what: str) -> list[int]:
    """One clear error for a seed given as "0": it passed the grid's checks and failed every job after
    the store or the bench folder was made (Python-jobs hunt)."""
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Integral)]
    if bad:
        raise ConfigError(f"{what} are integers (e.g. [0, 1]), got {bad[0]!r} ({type(bad[0]).__name__})")
    return [int(v) for v in values]  # numpy's too, which hashed as text (review)


def check_scalar_types(obj: Any) -> None:
    """One clear error where a config built in Python holds a value of another type in a bool, int or
    float field (the CLI and YAML convert them first): ``steps="20"`` failed in a comparison with a
    TypeError naming no field (Python-jobs hunt)."""
    kinds = {"bool": (bool,), "int": (numbers.Integral,), "float": (numbers.Real,)}
    for f in dataclasses.fields(obj):
        want, value = kinds.get(str(f.type)), getattr(obj, f.name)
        if want and (not isinstance(value, want) or (isinstance(value, bool) and bool not in want)):
            raise ConfigError(f"{type(obj).__name__}.{f.name} must be {f.type}, got {value!r} ({type(value).__name__})")


def check_seed(seed: int) -> int:
    """``seed`` if torch's generators take it (``[-2**63, 2**64)``): past that, an OverflowError from
    inside torch, after the data had loaded. Torch's CPU generator reads only a seed's low 32 bits,
    and the data subsets follow it, so a seed outside ``[0, 2**32)`` draws what a smaller one does:
    said once, as a "second seed" of 2**32 would otherwise repeat seed 0's run in silence."""
    if not -(2**63) <= seed < 2**64:
        raise ConfigError(f"seed must be in [-2**63, 2**64) (torch's range), got {seed}")
    if not 0 <= seed < 2**32 and seed not in _told_aliased:
        _told_aliased.add(seed)
        logging.getLogger("autosparse").warning(
            "seed %d draws what seed %d draws on the CPU: torch's CPU generator reads a seed's low 32 bits; "
            "use seeds in [0, 2**32) to get distinct runs",
            seed,
            seed % 2**32,
        )
    return seed


def check_class_count(value: object, where: str = "") -> int:
    """``value`` as a positive int: a numpy integer or a 0-d tensor counts (``y.max() + 1``), a bool, a
    float or a float tensor does not. One rule for the model builder, a Dataset and PruningData, which
    had each taken their own (a tensor count passed one and failed the next, review)."""
    try:
        if isinstance(value, bool) or (hasattr(value, "is_floating_point") and value.is_floating_point()):  # type: ignore[attr-defined]
            raise TypeError
        count = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        count = 0
    if count < 1:
        raise ConfigError(f"{where}num_classes must be a positive integer, got {value!r}")
    return count


def check_density(density: float | None = None, sparsity: float | None = None) -> float:
    """Resolve exactly one of ``density`` / ``sparsity`` to a density in (0, 1].

    Accepting both spellings is convenient; accepting both *at once* is ambiguous, so that is
    an error rather than a silent precedence rule.
    """
    if (density is None) == (sparsity is None):
        raise DensityError(
            "give exactly one of density or sparsity (e.g. sparsity=0.99 or density=0.01; on the command line "
            "--sparsity 0.99 or --density 0.01)"
        )
    for name, value in (("density", density), ("sparsity", sparsity)):
        # float(True) is 1.0 and float("0.1") parses: a dense mask or a string slipping through unnoticed;
        # numpy floats, 0-d tensors and Decimals are numbers and stay welcome
        if value is not None and (isinstance(value, (bool, str, bytes)) or not _is_number(value)):
            raise DensityError(
                f"{name} must be a number, e.g. {name}={0.99 if name == 'sparsity' else 0.01}; got {value!r}"
            )
    if density is None:
        assert sparsity is not None
        if not 0.0 <= sparsity < 1.0:
            raise DensityError(
                f"sparsity must be in [0, 1), got {sparsity}; e.g. sparsity=0.99 (--sparsity 0.99) keeps 1% of weights"
            )
        density = 1.0 - float(sparsity)
    density = float(density)
    if not 0.0 < density <= 1.0:
        raise DensityError(
            f"density must be in (0, 1], got {density}; e.g. density=0.01 (--density 0.01) keeps 1% of weights"
        )
    return density


#: what a full disk says through each layer that writes: the OS, safetensors' Rust, torch's C++ streams
_DISK_FULL_TEXT = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")

#: the fix of a write that failed for want of space, for a command whose finished steps are kept
DISK_FULL_FIX = "free space (or write elsewhere) and rerun the same command: what finished is kept and the rest resumes"


def disk_full(error: BaseException | str | None) -> bool:
    """Whether ``error`` (an exception, its chain, or an outcome's error text) is a full disk.

    Why: a full disk reached users as a traceback from whichever library was writing (safetensors,
    zarr, torch, json; helper), none naming the fix.
    """
    if error is None:
        return False
    if isinstance(error, str):
        return any(t in error for t in _DISK_FULL_TEXT)
    return full_disk_error(error) is not None


def failure_lines(failed: Iterable[tuple[str, str | None]], fix: str = DISK_FULL_FIX) -> list[str]:
    """One ``FAILED key: first line`` per failed job (key, error text), then the disk's fix where a
    full disk failed any of them.

    Why one place: gen, bench and store refeaturize each printed these lines, and a full disk fails
    every job after it, each with a bare OSError that names no fix (helper).
    """
    lines, full = [], False
    for key, error in failed:
        lines.append(f"FAILED {key}: {(error.splitlines() or [''])[0] if error else ''}")
        full = full or disk_full(error)
    if full:
        lines.append(f"the disk is full: {fix}")
    return lines


def full_disk_error(error: BaseException) -> BaseException | None:
    """The exception in ``error``'s chain that says the disk is full, or None.

    The chain is followed through what a writing library raises while handling the OS's error
    (torch's RuntimeError over an OSError), never through a bug in our own handling of it: a
    KeyError raised while handling ENOSPC is a bug, and keeps its traceback (review).
    """
    seen: set[int] = set()
    exc: BaseException | None = error
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        if isinstance(exc, (OSError, RuntimeError)) or type(exc).__module__ != "builtins":
            if any(t in str(exc) for t in _DISK_FULL_TEXT):
                return exc
            exc = exc.__cause__ or exc.__context__
        else:
            exc = exc.__cause__
    return None


def log_our_warnings() -> None:
    """Show the warnings autosparse's own code raises (``warnings.warn``: SNIP's ties, NaN scores) as
    the one-line ``WARNING autosparse…`` log messages every other message of a command is; they
    printed as ``…/registry.py:127: RuntimeWarning: …`` (helper). Other libraries' warnings are shown
    as before. For the CLI and its pool workers: Python callers keep real warnings."""
    show = warnings.showwarning
    if logs_our_warnings():
        return
    package = Path(__file__).resolve().parents[1]

    def showwarning(
        message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        path = Path(filename).resolve()
        if package in path.parents:
            logging.getLogger(".".join(path.relative_to(package.parent).with_suffix("").parts)).warning("%s", message)
        else:
            show(message, category, filename, lineno, file, line)

    showwarning.autosparse_lines = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def logs_our_warnings() -> bool:
    """Whether :func:`log_our_warnings` is in effect (a pool worker repeats what its parent does)."""
    return bool(getattr(warnings.showwarning, "autosparse_lines", False))
