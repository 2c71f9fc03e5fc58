"""Masked weights that a model reads without calling their layer.

torch's pruning recomputes ``weight = weight_orig * weight_mask`` in a forward pre-hook of the
layer, so it is only fresh when the layer itself is called. Some modules read a child's weight
directly: ``nn.MultiheadAttention`` hands ``out_proj.weight`` to the functional attention, and
torchvision's Swin passes ``qkv.weight`` and ``proj.weight`` to ``shifted_window_attention``. There
the weight computed when the mask was attached (a tensor of that moment's graph) is reused by every
forward: the second backward fails ("Trying to backward through the graph a second time") and the
mask does not follow training.

So each masked layer's parent — the module that reads it — refreshes it before its own forward.
Which children need it is learnt from the parent's first forward: a marker hook on every masked
layer says whether it was called; the first forward refreshes all of them, later ones only those it
did not call. A parent whose children are all called pays a flag per child per forward, not a
second multiply; and it works whatever entry point a training loop calls (``model(x)``, or
``forward_features`` and the head, or one block), as long as the reading module runs. The state
lives on the modules (plain functions, names, flags), so a deep copy refreshes its own layers.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

_STATE = "_autosparse_stale_children"  # on a parent: {"params": [(child, param)], "uncalled": list | None}
_CALLED = "_autosparse_called"
_MARKED = "_autosparse_marked"


def refresh_uncalled(model: nn.Module, layers: Iterable[tuple[str, str]]) -> None:
    """Keep the masked ``(module name, parameter name)`` pairs of ``model`` fresh on every forward
    of the module that holds them."""
    by_parent: dict[str, set[tuple[str, str]]] = {}
    for name, param in layers:
        if not name:  # the model is itself the layer: calling it runs torch's own hook
            continue
        parent, _, child = name.rpartition(".")
        by_parent.setdefault(parent, set()).add((child, param))
        module = model.get_submodule(name)
        if not getattr(module, _MARKED, False):
            module.register_forward_pre_hook(_mark_called)
            setattr(module, _MARKED, True)
    for parent_name, pairs in by_parent.items():
        parent = model.get_submodule(parent_name)
        first = not hasattr(parent, _STATE)
        known = set(getattr(parent, _STATE, {}).get("params", []))
        setattr(parent, _STATE, {"params": sorted(pairs | known), "uncalled": None})  # (re)learnt next forward
        if first:
            parent.register_forward_pre_hook(_refresh, prepend=True)  # before its children's markers
            parent.register_forward_hook(_learn)


def uncalled_layers(model: nn.Module) -> list[str]:
    """The masked layers refreshed by their parent (learnt at its first forward), by qualified name."""
    out = []
    for name, module in model.named_modules():
        state = getattr(module, _STATE, None)
        for child, _ in (state or {}).get("uncalled") or []:
            out.append(f"{name}.{child}" if name else child)
    return sorted(out)


def _mark_called(module: nn.Module, _inputs: object) -> None:
    setattr(module, _CALLED, True)


def _fresh(module: nn.Module, param: str) -> None:
    orig, mask = getattr(module, param + "_orig", None), getattr(module, param + "_mask", None)
    if orig is not None and mask is not None:  # gone after remove_masks: nothing to refresh
        setattr(module, param, orig * mask)


def _refresh(parent: nn.Module, _inputs: object) -> None:
    state = getattr(parent, _STATE, None)
    if not state:
        return
    uncalled = state["uncalled"]
    for child, param in state["params"] if uncalled is None else uncalled:
        module = parent.get_submodule(child)
        if uncalled is None:
            setattr(module, _CALLED, False)
        _fresh(module, param)


def _learn(parent: nn.Module, _inputs: object, _output: object) -> None:
    state = getattr(parent, _STATE, None)
    if not state or state["uncalled"] is not None:
        return
    state["uncalled"] = [(c, p) for c, p in state["params"] if not getattr(parent.get_submodule(c), _CALLED, False)]


def forget_refresh(model: nn.Module) -> None:
    """Take off every hook and flag :func:`refresh_uncalled` put on ``model``.

    Why: after ``remove_masks`` there is nothing left to refresh, yet the hooks stayed: the model
    could not be scripted (``torch.jit.script``) nor unpickled where autosparse is not installed,
    while torch's own ``prune.remove`` leaves a plain model (helper).
    """
    ours = (_mark_called, _refresh, _learn)
    for module in model.modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key, hook in list(hooks.items()):
                if hook in ours:
                    del hooks[key]
                    for extra in ("_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs"):
                        getattr(module, extra, {}).pop(key, None)
                    getattr(module, "_forward_hooks_always_called", {}).pop(key, None)
        for attr in (_STATE, _CALLED, _MARKED):
            if attr in vars(module):
                delattr(module, attr)
