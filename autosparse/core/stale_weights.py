"""Masked weights that a model reads without calling their module.

torch's pruning recomputes ``weight = weight_orig * weight_mask`` in a forward pre-hook of the
layer, so it is only fresh when the layer itself is called. Some models read a layer's weight
directly: ``nn.MultiheadAttention`` hands ``out_proj.weight`` to the functional attention, and
torchvision's Swin passes ``qkv.weight`` and ``proj.weight`` to ``shifted_window_attention``. There
the weight computed when the mask was attached (a tensor of that moment's graph) is reused by every
forward: the second backward fails ("Trying to backward through the graph a second time") and the
mask does not follow training.

A pre-hook on the model itself refreshes such weights before each forward. Which layers need it is
learnt from the first forward: a marker hook on every masked layer says whether it was called;
the first forward refreshes all of them, later ones only those it did not call. So a model whose
layers are all called pays a flag per layer per forward, not a second multiply. (A layer called
only in another mode, e.g. an auxiliary head in training, is refreshed twice there: harmless.) The names live
on the model (not in a closure), so a deep copy refreshes its own layers.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

_STATE = "_autosparse_stale_weights"  # on the root: {"params": [(module name, param name)], "uncalled": list | None}
_CALLED = "_autosparse_called"
_MARKED = "_autosparse_marked"


def refresh_uncalled(model: nn.Module, layers: Iterable[tuple[str, str]]) -> None:
    """Keep the masked ``(module name, parameter name)`` pairs of ``model`` fresh on every forward."""
    pairs = sorted(set(layers) | set(getattr(model, _STATE, {}).get("params", [])))
    first = not hasattr(model, _STATE)
    setattr(model, _STATE, {"params": pairs, "uncalled": None})  # (re)learnt at the next forward
    for name, _ in pairs:
        module = model.get_submodule(name)
        if not getattr(module, _MARKED, False):  # a plain function and a flag: a deep copy keeps both, for itself
            module.register_forward_pre_hook(_mark_called)
            setattr(module, _MARKED, True)
    if first:
        model.register_forward_pre_hook(_refresh, prepend=True)  # before any layer's marker (the root may be one)
        model.register_forward_hook(_learn)


def _mark_called(module: nn.Module, _inputs: object) -> None:
    setattr(module, _CALLED, True)


def _fresh(module: nn.Module, param: str) -> None:
    orig, mask = getattr(module, param + "_orig", None), getattr(module, param + "_mask", None)
    if orig is not None and mask is not None:  # gone after remove_masks: nothing to refresh
        setattr(module, param, orig * mask)


def _refresh(model: nn.Module, _inputs: object) -> None:
    state = getattr(model, _STATE, None)
    if not state:
        return
    uncalled = state["uncalled"]
    for name, param in state["params"] if uncalled is None else uncalled:
        module = model.get_submodule(name)
        if uncalled is None:
            setattr(module, _CALLED, False)
        _fresh(module, param)


def _learn(model: nn.Module, _inputs: object, _output: object) -> None:
    state = getattr(model, _STATE, None)
    if not state or state["uncalled"] is not None:
        return
    state["uncalled"] = [(n, p) for n, p in state["params"] if not getattr(model.get_submodule(n), _CALLED, False)]
