"""The order in which a forward pass reaches the prunable layers, whatever order they were registered in.

Why: ``prunable_layers`` lists layers in registration order (``__init__``'s), and the learned scorer's
layer descriptors (relative depth, first and last layer) and its "never drop a class" rule read depth
from that list. A classifier registered before the body, or an auxiliary head registered after it, was
taken for a hidden layer, and ``autos`` left half of a model's classes without a weight (review,
2026-12-04). The forward knows the real order; one pass of one example with hooks on every module reads it.

A layer whose module is never called itself takes the place of its nearest called ancestor (right after
it): ``nn.MultiheadAttention`` reads its ``out_proj`` weight without calling that module. A layer no
called module contains (an auxiliary head the forward skips) goes after every called one; it is no
network's output.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from autosparse.core.layers import PrunableLayer
from autosparse.core.model_io import model_input, param_dtype

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallOrder:
    """``order``: indices into the layer list, in forward order; ``called``: how many of them the forward reached."""

    order: tuple[int, ...]
    called: int

    @classmethod
    def registration(cls, n: int) -> CallOrder:
        return cls(tuple(range(n)), n)

    def positions(self) -> list[int]:
        """Each layer's place in forward order (``positions()[i]`` for the layer list's ``i``)."""
        pos = [0] * len(self.order)
        for p, i in enumerate(self.order):
            pos[i] = p
        return pos

    @property
    def last(self) -> int:
        """The index of the output layer: the last one the forward reached."""
        return self.order[max(0, self.called - 1)]


#: the last order read per model: ``autos`` reads its features two or three times a call (10-20 ms a pass
#: on MobileNet-v3 / ResNet-18); keyed on the layers and the input's shape, so a changed model is read again
_LAST: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[object, ...], CallOrder]] = weakref.WeakKeyDictionary()


def call_order(model: nn.Module, layers: list[PrunableLayer], x: torch.Tensor | None) -> CallOrder:
    """The forward order of ``layers`` on input ``x`` (one example is enough), or registration order where
    no input is at hand or the forward fails (said at debug level: depth then reads as before).

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


def _read(model: nn.Module, layers: list[PrunableLayer], x: torch.Tensor) -> CallOrder:
    n = len(layers)
    first: dict[int, int] = {}  # id(module) -> first call's tick
    names = {id(m): name for name, m in model.named_modules()}

    def hook(module: nn.Module, _args: object) -> None:
        first.setdefault(id(module), len(first))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(model_input(x, _device(model), param_dtype(model)))
    except Exception as exc:  # a model this pass cannot run keeps registration order, as before
        log.debug("the forward order of the layers is unknown (%s: %s); registration order", type(exc).__name__, exc)
        return CallOrder.registration(n)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.train(mode)
    ticks = {names[k]: t for k, t in first.items() if k in names}
    keys: list[tuple[float, int]] = []
    called = 0
    for i, layer in enumerate(layers):
        tick = _tick(layer.module_name, ticks)
        called += tick is not None
        keys.append((tick if tick is not None else float("inf"), i))
    return CallOrder(tuple(i for _, i in sorted(keys)), called)


def _tick(module_name: str, ticks: dict[str, int]) -> float | None:
    """When the forward reached ``module_name``: its own first call, else just after its nearest called
    ancestor's where that ancestor ran none of its submodules, so it read this weight itself (attention's
    ``out_proj``). A module skipped beside called siblings (an unused head) was not reached."""
    if module_name in ticks:
        return float(ticks[module_name])
    parts = module_name.split(".")
    for k in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:k])
        if parent in ticks:
            inside = parent + "."
            return None if any(name.startswith(inside) for name in ticks) else ticks[parent] + 0.5
    return None


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
