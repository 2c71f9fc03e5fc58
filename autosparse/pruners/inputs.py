"""What a pruner needs from its caller besides the model: pruning data, or at least the input shape.

Both checks raise a :class:`~autosparse.core.errors.ConfigError` that says how to provide the
missing piece, so every method fails the same way and names the same fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.data.pruning_data import PruningData


def require_data(data: Any, method: str) -> PruningData:
    """The pruning data, or an error that says how to provide it."""
    pdata = PruningData.coerce(data)
    if pdata is None:
        raise ConfigError(
            f"{method} needs data: pass data=(inputs, targets) or a DataLoader "
            "(autosparse.data.pruning_batch(dataset) gives the standard one)"
        )
    return pdata


def shape_argument(shape: Any) -> tuple[int, ...] | None:
    """A caller's ``input_shape`` as a tuple: an int is one axis (``784`` means ``(784,)``).

    Why: ``input_shape=784`` failed deep in a method ("'int' object is not iterable"), after the
    mask had been computed, and the string ``"784"`` was read digit by digit as ``(7, 8, 4)``.
    """
    if shape is None:
        return None
    if isinstance(shape, (bool, str, bytes)):
        raise ConfigError(f"input_shape must be a tuple of ints, e.g. (1, 28, 28) or (784,), got {shape!r}")
    if isinstance(shape, int) or (hasattr(shape, "__index__") and not hasattr(shape, "__len__")):
        shape = (shape,)
    try:
        out = tuple(int(d) for d in shape)
        whole = all(d == o for d, o in zip(shape, out, strict=True))
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ConfigError(f"input_shape must be a tuple of ints, e.g. (1, 28, 28) or (784,), got {shape!r}")
    if any(d <= 0 for d in out):
        raise ConfigError(f"input_shape's sizes must be positive (one example, no batch axis), got {out}")
    return out


def input_shape_of(
    method: str,
    configured: Sequence[int] | None,
    data: PruningData | None,
    model: nn.Module,
    *,
    data_first: bool = False,
) -> tuple[int, ...]:
    """The per-sample input shape (no batch axis) for a method that builds its own inputs.

    Looked up in the ``input_shape`` hyperparameter, the pruning data, then the model's own
    ``input_shape`` attribute. ``data_first`` swaps the first two: NTK-SAP's reference takes the
    shape of the data it was given and its ``input_shape`` only stands in for absent data, while
    SynFlow, NPB and DPaI let an explicit hyperparameter override the data. An empty
    ``configured`` counts as not given (a scalar input is never meant).
    """
    from_config = tuple(int(d) for d in configured) if configured else None
    data = PruningData.coerce(data)  # a plain (x, y) batch, as a direct `scores(model, (x, y))` call passes
    from_data = tuple(int(d) for d in data.input_shape) if data is not None else None
    for shape in (from_data, from_config) if data_first else (from_config, from_data):
        if shape is not None:
            return shape
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return tuple(int(d) for d in shape)
    raise ConfigError(
        f"{method} cannot tell the input shape of {type(model).__name__}: pass the hyperparameter "
        f"input_shape=(C, H, W) (e.g. prune(model, {method!r}, density=0.01, input_shape=(1, 28, 28))) "
        "or pruning data"
    )
