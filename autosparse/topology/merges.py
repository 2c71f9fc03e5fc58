"""Does a network add two computed tensors (a residual or skip connection)?

Why: the density guard compares a target with its nearest source layers, and layer descriptors
(kind, fan-in, share of the weights, depth) describe a layer, not the network around it — a
wide ResNet's convs look like a VGG's. On the sources, what decides whether IMP or SynFlow is the
better teacher at extreme density is exactly this: IMP beat SynFlow by 5-28 points on every
residual source and lost by 57-72 on the deep plain VGG-11 (docs/SCORER.md). So a target only
listens to sources of its own kind, plain or residual; the student guard reads a finer kind,
:func:`network_kind`: residual, plain-conv or plain.

How: one eval-mode forward pass of a single example under a torch-function mode that follows
which tensors were computed from the input; an addition of two such tensors is a skip
connection. Adding a bias, a constant or a shape is not. One forward costs less than a symbolic
trace on a many-module network, and works on models fx cannot trace (data-dependent branches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from autosparse.core.layers import prunable_layers
from autosparse.core.seeding import kept_streams

_ADDS = {"add", "add_", "__add__", "__radd__", "__iadd__"}


class _FollowInput(TorchFunctionMode):
    """Marks every tensor an op computes from a marked tensor; notes an add of two marked ones."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self._marked = {id(x)}
        self._alive: list[torch.Tensor] = [x]  # keep marked tensors alive so their ids stay theirs
        self.found = False

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = [a for a in tree_flatten((args, kwargs or {}))[0] if isinstance(a, torch.Tensor)]
        marked = {id(a) for a in inputs if id(a) in self._marked}  # distinct tensors: h + h is no skip
        if len(marked) >= 2 and getattr(func, "__name__", "") in _ADDS:
            self.found = True
        if marked:
            for o in tree_flatten(out)[0]:
                if isinstance(o, torch.Tensor):
                    self._marked.add(id(o))
                    self._alive.append(o)
        return out


class ProbeError(RuntimeError):
    """The forward pass on a zero input failed, so the network's kind is unknown."""


def residual_kind(model: nn.Module, input_shape: Sequence[int]) -> bool:
    """True if the forward pass adds two distinct tensors computed from the input (a skip
    connection), False if it never does. Skips made by concatenation (DenseNet, U-Net) are not
    additions and read as plain. Raises :class:`ProbeError` naming why the probe failed.

    The model is left as it was: every module's train/eval mode, BatchNorm's statistics (eval mode,
    no grad) and the global random state."""
    modes = {m: m.training for m in model.modules()}
    try:
        first = next(model.parameters())
        x = torch.zeros(1, *input_shape, dtype=first.dtype, device=first.device)
        model.eval()
        watch = _FollowInput(x)
        with kept_streams(first.device), torch.no_grad(), watch:
            model(x)
    except Exception as exc:  # the probe reports any failure; it never crashes its caller
        raise ProbeError(f"its forward pass on a zero input of shape {tuple(input_shape)} failed: {exc}") from exc
    finally:
        for m, training in modes.items():
            m.training = training
    return watch.found


def network_kind(model: nn.Module, input_shape: Sequence[int]) -> str:
    """``residual`` (a skip connection adds), ``plain-conv`` (none, and a convolution among the
    prunable layers) or ``plain`` (neither: an MLP). The kinds ``autos``' student evidence is kept
    by (:mod:`autosparse.scorer.student`); raises :class:`ProbeError` as :func:`residual_kind` does."""
    if residual_kind(model, input_shape):
        return "residual"
    return "plain-conv" if any(layer.kind == "conv" for layer in prunable_layers(model)) else "plain"
