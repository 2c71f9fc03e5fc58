"""One summary of a mask for reports: per-layer density plus the NPB topology metrics.

A mask can keep the right number of weights and still be useless: a layer with no kept weight,
or kept weights that lie on no input→output path (layer collapse). The path metrics come from
:mod:`autosparse.topology.paths`; this module only packages them for ``prune``, the CLI, the
bench and warnings — and says how far they can be trusted: ``paths`` is ``exact`` (the path
graph models every op of the forward), ``approximate (...)`` (it ran, but ops it does not model
were on the way: a layer without a found path is then reported as *unverified*, never as
collapsed), or ``unavailable (...)`` (the path pass could not run on this model at all; only
empty layers are reported). A layer no path runs through even with every weight kept (a positional
projection of constant coordinates, a query of a constant class token, but also a branch the
forward runs only in training or a part it runs under ``no_grad``: the pass sees the eval-mode
forward through autograd) is listed apart, as ``input_independent_layers``: no mask could collapse it.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers, safe_deepcopy
from autosparse.core.masks import Masks
from autosparse.core.text import name_list
from autosparse.topology.call_order import reached
from autosparse.topology.fx_trace import short_error
from autosparse.topology.paths import PathStats, path_stats

log = logging.getLogger(__name__)


def mask_diagnostics(
    model: nn.Module,
    masks: Masks | Mapping[str, torch.Tensor],
    input_shape: Sequence[int] | None,
    *,
    warn: bool = True,
    stats: PathStats | None = None,
) -> dict[str, Any]:
    """Density per layer, effective params / nodes, log10 path count and collapsed layers.

    With ``warn``, logs one warning naming the collapsed layers, because a collapsed mask trains
    to chance accuracy and that is better said before the training than discovered after it.
    Without an ``input_shape`` only empty layers can be found. ``stats``: the path statistics of
    exactly these masks on ``input_shape``, when the caller already has them (the pass is skipped).
    """
    if not isinstance(masks, Masks):  # a dict of mask tensors, as path_stats and layer_collapse take (helper)
        masks = Masks(masks)
    # masks of another model: without an input shape the counts were the masks' own, "nothing collapsed";
    # with one, the mismatch was swallowed into "paths: unavailable" below (helper)
    masks.validate(model)
    if isinstance(input_shape, numbers.Integral) and not isinstance(input_shape, bool):
        input_shape = (int(input_shape),)  # as prune(input_shape=784) takes it; "'int' object is not iterable" (helper)
    empty = masks.empty_layers()
    out: dict[str, Any] = {
        "kept": masks.kept,
        "total": masks.total,
        "density": masks.density,
        "layer_density": {r.name: r.density for r in masks.layers()},
        "empty_layers": empty,
        "effective_params": None,
        "effective_nodes": None,
        "total_nodes": None,
        "log10_paths": None,
        "no_path_layers": [],
        "unverified_layers": [],
        "input_independent_layers": [],
        "paths": "unavailable (no input shape)",
    }
    if input_shape is not None:
        try:
            stats = stats if stats is not None else path_stats(model, masks, tuple(input_shape))
        except Exception as exc:  # a diagnostic must never break the pruning it reports on
            cause = exc.__cause__ if isinstance(exc, ConfigError) and exc.__cause__ is not None else exc
            out["paths"] = (
                f"unavailable ({type(cause).__name__}: {short_error(cause)})"  # torch's words, as prune reads them
            )
        else:
            out.update(
                effective_params=stats.effective_params,
                effective_nodes=stats.effective_nodes,
                total_nodes=stats.total_nodes,
                log10_paths=stats.log_paths / math.log(10) if math.isfinite(stats.log_paths) else float("-inf"),
                no_path_layers=[n for n in stats.collapsed if n not in empty],
                unverified_layers=list(stats.unverified),
                input_independent_layers=list(stats.input_independent),
                paths=f"approximate (ops not modelled: {', '.join(stats.approximate)})"
                if stats.approximate
                else "exact",
            )
    out["collapsed_layers"] = [n for n in masks if n in set(empty) | set(out["no_path_layers"])]
    out["unreached_layers"] = _unreached(model, out["input_independent_layers"], input_shape)
    if warn:
        warn_collapse(out)
    return out


def warn_collapse(diag: dict[str, Any]) -> None:
    """The one warning a collapsed (or unverifiable) mask gets, naming its layers."""
    empty, no_path = diag["empty_layers"], diag["no_path_layers"]
    parts = []
    if empty:
        parts.append(f"{len(empty)} layer(s) keep no weight: {name_list(empty)}")
    if no_path:
        parts.append(f"{len(no_path)} layer(s) have no input-to-output path: {name_list(no_path)}")
    if parts:
        paths = diag.get("log10_paths")
        if str(diag.get("paths", "")).startswith("approximate"):
            # the ops the path run did not model (an LSTM, …) may carry paths it cannot see, or
            # show paths that do not exist: an emptied input layer before an LSTM trains to chance
            reason = f"whether input-to-output paths remain is unknown: the path counts are {diag['paths']}"
        elif paths is not None and paths > float("-inf"):
            # e.g. a dead residual branch: its shortcut still carries the signal, so the network
            # trains, only without these layers' capacity
            reason = "these layers carry no signal, though input-to-output paths remain elsewhere"
        else:
            reason = "the mask trains to chance accuracy"
        log.warning("layer collapse (%s): %s", reason, "; ".join(parts))
    if diag["unverified_layers"]:
        log.warning(
            "no path found through %s, but the path counts are %s; not reported as collapsed",
            name_list(diag["unverified_layers"]),
            diag["paths"],
        )
    unreached = [n for n in diag.get("unreached_layers") or [] if n not in diag["empty_layers"]]
    if unreached:
        # random, magnitude, GraSP, PHEW and NPB spent 11-20% of a budget on an auxiliary head the forward never
        # called (review); a branch only training runs (GoogLeNet's aux heads) is read, so not said here
        log.warning(
            "%s keep weights, but no forward reads them, in eval or train mode (an unused head?): remove them "
            "from the model before pruning, so the budget goes to layers it uses",
            name_list(unreached),
        )


def _unreached(model: nn.Module, independent: Sequence[str], input_shape: Sequence[int] | None) -> list[str]:
    """Of the layers no path reaches, those whose weight no forward reads, in eval mode nor in train mode
    (GoogLeNet's auxiliary heads run in training: no warning for them, nor for a projection of constants,
    which is read). Nothing is said where a pass cannot run."""
    if not independent or input_shape is None:
        return []
    layers, wanted = prunable_layers(model), set(independent)
    x = torch.zeros((2, *input_shape))  # two examples: a train-mode BatchNorm needs more than one value
    try:
        seen = reached(model, layers, x)
        left = [i for i, layer in enumerate(layers) if i not in seen and layer.name in wanted]
        if left:
            copy = safe_deepcopy(model)  # train mode moves BatchNorm statistics: not the caller's model
            seen |= reached(copy, prunable_layers(copy), x, train=True)  # a copy lists its layers in the same order
    except Exception:  # a diagnostic never breaks the pruning it reports on
        return []
    return [layers[i].name for i in left if i not in seen]
