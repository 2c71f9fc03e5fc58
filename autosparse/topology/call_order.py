"""The order in which a forward pass reads the prunable weights, whatever order they were registered in.

Why: ``prunable_layers`` lists layers in registration order (``__init__``'s), and the learned scorer's
layer descriptors (relative depth, first and last layer) and its "never drop a class" rule read depth
from that list. A classifier registered before the body, or an auxiliary head registered after it, was
taken for a hidden layer, and ``autos`` left half of a model's classes without a weight (review,
2026-12-04). The forward knows the real order: one pass of one example records when each weight is
first handed to a torch op (``F.linear``, ``F.conv2d``, attention's fused kernel …), so weights read
through ``F.linear(x, self.qkv.weight)`` or a module's ``.forward`` called directly count as well.

A weight the forward never reads (an auxiliary head the eval-mode pass skips) keeps its place after
the weight registered just before it, so a model whose forward reads its layers in registration
order keeps exactly that order; such a layer is never taken for the first or the output layer.
"""

from __future__ import annotations

import functools
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from autosparse.core.layers import PrunableLayer
from autosparse.core.model_io import model_device, model_input, param_dtype
from autosparse.core.seeding import kept_streams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallOrder:
    """``order``: indices into the layer list, in forward order; ``first`` / ``last``: the first and last
    layer the forward read (the input and the output layer)."""

    order: tuple[int, ...]
    first: int
    last: int

    @classmethod
    def registration(cls, n: int) -> CallOrder:
        return cls(tuple(range(n)), 0, max(0, n - 1))

    @functools.cached_property
    def positions(self) -> list[int]:
        """Each layer's place in forward order (``positions[i]`` for the layer list's ``i``); computed once,
        since every layer's features read it."""
        pos = [0] * len(self.order)
        for p, i in enumerate(self.order):
            pos[i] = p
        return pos


class _FirstUse(TorchFunctionMode):
    """Records, for each watched tensor, when a torch function first takes it as an argument."""

    def __init__(self, watched: dict[int, int]) -> None:
        super().__init__()
        self.watched = watched
        self.first: dict[int, int] = {}

    def _see(self, value: Any) -> None:
        if isinstance(value, (list, tuple)):
            for v in value:
                self._see(v)
        elif isinstance(value, torch.Tensor):
            i = self.watched.get(id(value))
            if i is not None and i not in self.first:
                self.first[i] = len(self.first)

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        self._see(args)
        self._see(tuple(kwargs.values()))
        return func(*args, **kwargs)


#: the last order read per model: ``autos`` reads its features two or three times a call (10-20 ms a pass
#: on MobileNet-v3 / ResNet-18); keyed on the layers and the input's shape, so a changed model is read again
_LAST: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[object, ...], CallOrder]] = weakref.WeakKeyDictionary()


def call_order(model: nn.Module, layers: list[PrunableLayer], x: torch.Tensor | None) -> CallOrder:
    """The forward order of ``layers`` on input ``x`` (one example is enough), or registration order where
    no input is at hand, the forward fails or reads none of them (said at debug level: depth then reads
    as before).

    The pass runs in eval mode under ``no_grad`` and leaves every module's mode as it found it, so
    BatchNorm statistics and random streams are untouched.
    """
    n = len(layers)
    if x is None or n == 0:
        return CallOrder.registration(n)
    key = (tuple(layer.name for layer in layers), tuple(x.shape), x.dtype)
    seen = _LAST.get(model)
    if seen is not None and seen[0] == key:
        return seen[1]
    order = _read(model, layers, x)
    _LAST[model] = (key, order)
    return order


def reached(model: nn.Module, layers: list[PrunableLayer], x: torch.Tensor, *, train: bool = False) -> set[int]:
    """The indices of ``layers`` whose weight a forward on ``x`` reads (in train mode with ``train``: on a
    model the caller no longer needs, since BatchNorm statistics move); raises where the forward fails."""
    return set(_first_reads(model, layers, x, train=train))


def _first_reads(model: nn.Module, layers: list[PrunableLayer], x: torch.Tensor, *, train: bool) -> dict[int, int]:
    """Layer index -> the tick of the first torch op that took its weight, over one forward under
    ``no_grad`` in the mode asked; every module's mode is restored and the random streams are forked."""
    mode = _FirstUse({id(layer.parameter): i for i, layer in enumerate(layers)})
    modes = [(m, m.training) for m in model.modules()]
    x = model_input(x, model_device(model), param_dtype(model))  # outside the mode: these read the first weight
    try:
        model.train(train)
        with torch.no_grad(), kept_streams(x.device), mode:
            model(x)
    finally:
        for m, was in modes:
            m.train(was)
    return mode.first


def _read(model: nn.Module, layers: list[PrunableLayer], x: torch.Tensor) -> CallOrder:
    n = len(layers)
    try:
        first = _first_reads(model, layers, x, train=False)
    except Exception as exc:  # a model this pass cannot run keeps registration order, as before
        log.debug("the forward order of the layers is unknown (%s: %s); registration order", type(exc).__name__, exc)
        return CallOrder.registration(n)
    if not first:
        return CallOrder.registration(n)
    read = sorted(first, key=first.__getitem__)
    # each weight never read goes right after the one registered before it (at the front if none is)
    follows: dict[int, list[int]] = {}
    anchor = -1
    for i in range(n):
        if i in first:
            anchor = i
        else:
            follows.setdefault(anchor, []).append(i)
    order = list(follows.get(-1, []))
    for i in read:
        order += [i, *follows.get(i, [])]
    return CallOrder(tuple(order), read[0], read[-1])
