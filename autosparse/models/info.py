"""What a model is and how its options are read: shared by the zoo registry and the torchvision adapter.

Both the zoo (:mod:`autosparse.models.registry`) and ``tv:<name>`` models
(:mod:`autosparse.models.torchvision_models`) describe themselves with a :class:`ModelInfo` and read
CLI/YAML strings (``widths="500,150"``, ``cifar_stem="auto"``) with the same coercion, so an option
is spelled the same way whichever family it belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autosparse.core.errors import ConfigError, closest_name

TV_PREFIX = "tv:"
TIMM_PREFIX = "timm:"

#: Input kinds a model can declare. ``flat``: any shape (the model flattens it);
#: ``signal``: a 1-D signal ``(C, L)`` or ``(L,)``; ``image``: ``(C, H, W)``.
INPUT_KINDS: dict[str, str] = {
    "flat": "any shape, flattened (e.g. (1, 28, 28), (3, 32, 32), (1, 8, 8), (1, 40))",
    "signal": "1-D signals (C, L) or (L,), e.g. (1, 40) for MNIST-1D",
    "image": "images (C, H, W), e.g. (1, 28, 28) or (3, 32, 32)",
}


@dataclass(frozen=True)
class ModelInfo:
    """What a user needs to pick a model: what it is, what it takes, and how to configure it."""

    name: str
    description: str
    inputs: tuple[str, ...]  # subset of INPUT_KINDS
    options: dict[str, Any] = field(default_factory=dict)  # option -> default
    open_options: bool = False  # True: options beyond those listed go to the library's constructor (tv:, timm:)

    def format(self) -> str:
        """One human-readable line (used by the CLI's model listing)."""
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items()) or "none"
        return f"{self.name}: {self.description} [inputs: {', '.join(self.inputs)}; options: {opts}]"


def coerce_options(model: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Check option names and coerce CLI/YAML strings to the type of each option's default."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise unknown_options(model, unknown, defaults)
    return {k: coerce_value(model, k, v, defaults[k]) for k, v in given.items()}


def unknown_options(model: str, unknown: list[str], defaults: dict[str, Any]) -> ConfigError:
    """One error for options a model does not take: each one's likely meaning, then every option.

    Why one function: the bench checks a config's options before any cell runs, and the model
    builder checks them again; both should name a typo's fix (``widht`` → ``width``) the same way.
    """
    meant = {u: closest_name(u, list(defaults)) for u in unknown}
    named = ", ".join(f"{u!r} (did you mean {m!r}?)" if m else repr(u) for u, m in meant.items())
    valid = ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()) or "none"
    return ConfigError(f"{model} has no option {named}; its options are: {valid}")


_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


def coerce_value(model: str, option: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default`` (bool, int, float, str or int tuple)."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{model} option {option}={value!r} is not valid: expected {expected}")

    if isinstance(default, bool) or (default is None and isinstance(value, str)):
        if isinstance(value, bool) or (value is None and default is None):
            return value
        text = str(value).strip().lower()
        if default is None and text in {"none", "auto", ""}:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise fail("true or false" + (" or auto" if default is None else ""))
    if isinstance(default, int):
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise fail("an integer") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise fail("a number") from None
    if isinstance(default, tuple):
        return parse_int_tuple(model, option, value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise fail("a string")
        return value
    return value


def parse_int_tuple(model: str, option: str, value: Any) -> tuple[int, ...]:
    """Accept ``(500, 150)``, ``[500, 150]``, ``"500,150"``, ``"[500, 150]"``, ``300`` or ``""``."""
    items: list[Any]
    if isinstance(value, str):
        text = value.strip().strip("[]()").replace("x", ",").replace(" ", ",")
        items = [t for t in text.split(",") if t]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        items = [value]
    out: list[int] = []
    for v in items:
        try:
            if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                raise ValueError
            out.append(int(v))
        except (TypeError, ValueError):
            out.append(0)
    if any(v < 1 for v in out):
        raise ConfigError(
            f"{model} option {option}={value!r} is not valid: expected positive integers such as "
            f'"500,150" or [500, 150]'
        )
    return tuple(out)
