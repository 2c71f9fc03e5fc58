"""Measuring the schema's features on a model: the expensive passes, then per-layer work.

The same function runs when IRP data are generated and when ``autos`` prunes a new model (see
:mod:`autosparse.features.schema` for what each feature means and why the groups exist).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autosparse.core.errors import ConfigError, SchemaMismatchError
from autosparse.core.layers import PrunableLayer, prunable_layers, safe_deepcopy
from autosparse.core.masks import Masks
from autosparse.core.model_io import class_targets, logits, model_device, model_input, param_dtype
from autosparse.core.parallel import map_layers
from autosparse.core.ranking import pct_rank, rank_values, scatter_ranks, sort_key, stable_order
from autosparse.core.seeding import seeded
from autosparse.core.text import name_list
from autosparse.data.pruning_data import PruningData
from autosparse.features.schema import FEATURE_NAMES, SCHEMA_VERSION, SPECS, FeatureTable, LayerFeatures, check_schema
from autosparse.pruners.differentiable import twice_differentiable
from autosparse.pruners.inputs import shape_argument
from autosparse.pruners.iterate import masked_weights
from autosparse.pruners.registry import make_scoring_pruner
from autosparse.topology.call_order import CallOrder, call_order


def _z(x: torch.Tensor) -> torch.Tensor:
    x = x.reshape(-1).to(torch.float32)
    std = x.std() if x.numel() > 1 else x.abs().mean()
    return x / (std + 1e-12)


def _lognorm(x: torch.Tensor) -> torch.Tensor:
    # float64 on a private copy, updated in place: the same operations in the same order as the
    # out-of-place formula log((|x| + 1e-30) / (mean + 1e-30)), without four temporaries per layer
    y = x.reshape(-1).to(torch.float64, copy=True).abs_()
    mean = y.mean()
    return y.add_(1e-30).div_(mean + 1e-30).log_().clamp_(min=-30.0).to(torch.float32)


def rank_float64(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """:func:`pct_rank` of float64 values, sorted by a 32-bit key with only the collisions re-sorted.

    Why: a 64-bit key sort costs several times a 32-bit one, and SynFlow's float64 scores are one
    of four ranked features per weight. The 32-bit key (:func:`_coarse_key`) is monotonic, so its
    stable sort already orders every pair whose keys differ; only runs of equal keys (distinct
    float64 values that collided) can be out of float64 order. Those few positions are re-sorted
    by (run, float64 key), stably, which is the exact float64 stable order. The key was the
    float32 value until 2026-12-02: on ResNet-50 SynFlow's scores of the deep layers lie beyond
    float32's range, so whole layers collided and were sorted in 64 bits (6.3 s of its 10 s of
    per-layer features on the Intel machine of docs/SPEED.md).
    """
    flat = x.detach().reshape(-1).cpu()
    ranked, order_np = stable_order(_coarse_key(sort_key(flat.to(torch.float64))))
    same = ranked[1:] == ranked[:-1]  # position i+1 ties with position i
    if bool(same.any()):
        order = torch.from_numpy(order_np).to(torch.int64)
        in_run = torch.zeros(flat.numel(), dtype=torch.bool)
        in_run[1:] |= same
        in_run[:-1] |= same
        pos = torch.nonzero(in_run).squeeze(1)  # sorted positions inside a run of equal float32 keys
        starts = torch.ones(pos.numel(), dtype=torch.bool)
        starts[1:] = ~same[pos[1:] - 1] | (pos[1:] != pos[:-1] + 1)
        run = torch.cumsum(starts.to(torch.int64), 0)
        members = order.index_select(0, pos)  # within a run: index order, which a stable sort keeps
        by64 = torch.sort(sort_key(flat.index_select(0, members)), stable=True).indices
        by_run = torch.sort(run.index_select(0, by64), stable=True).indices
        order.index_copy_(0, pos, members.index_select(0, by64.index_select(0, by_run)))
        order_np = order.numpy()
    return scatter_ranks(order_np, values)


def _coarse_key(key: torch.Tensor) -> torch.Tensor:
    """A non-negative int32 key, non-decreasing in the int64 ``key``: its top 30 bits of *range*.

    Shifting every key right by the same amount keeps order (ties may appear, never inversions),
    and measuring the shift on this layer's own range spends the 31 bits where its values are —
    so, unlike float32, it never maps a layer beyond float32's range onto a few values.
    """
    if key.numel() == 0:
        return key.to(torch.int32)
    lo, hi = int(key.min()), int(key.max())
    shift = max(0, (hi - lo).bit_length() - 30)
    return ((key >> shift) - (lo >> shift)).to(torch.int32)  # in [0, 2**30]: no overflow on either side


def _unit_sums(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ over each output unit's and each input unit's weights of a weight-shaped tensor."""
    if x.dim() == 1:
        return x, x.new_ones(1) * x.sum()
    rows = x.reshape(x.shape[0], -1).sum(1)
    cols = x.sum(dim=[d for d in range(x.dim()) if d != 1]) if x.dim() > 1 else x
    return rows, cols


def _rel(x: torch.Tensor) -> torch.Tensor:
    return (x / (x.mean() + 1e-30)).to(torch.float32)


def _gradients(model: nn.Module, data: PruningData) -> dict[str, torch.Tensor]:
    """Mean-loss gradient over all pruning batches (SNIP's g), in train mode on a copy.

    ``autograd.grad`` with respect to the prunable weights only, summed over batches in batch
    order: the same values ``backward()`` would accumulate in ``.grad``, without gradients for
    the other parameters and without leaving buffers on the model.
    """
    layers = prunable_layers(model)
    params = [layer.parameter for layer in layers]
    for p in params:  # a frozen layer (requires_grad=False) is scored like any other: this is a copy
        p.requires_grad_(True)
    model.train()
    total = sum(len(y) for _, y in data)
    device, dtype = params[0].device, param_dtype(model)
    acc: list[torch.Tensor] | None = None
    for x, y in data:
        out = logits(model(model_input(x, device, dtype)))  # as SNIP feeds it: the model's dtype (bfloat16 nets)
        loss = F.cross_entropy(out, class_targets(out, y.to(device)), reduction="sum") / total
        raw = torch.autograd.grad(loss, params, allow_unused=True)  # a layer the forward never uses: zero
        grads = [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, raw, strict=True)]
        if acc is None:  # own every buffer once (a tied weight's gradient may come back twice)
            acc, seen = [], set()
            for g in grads:
                acc.append(g.clone() if id(g) in seen else g)
                seen.add(id(g))
        else:
            acc = [a.add_(g) for a, g in zip(acc, grads, strict=True)]
    if acc is None:
        raise ConfigError("the pruning data has no batches; pass at least one (inputs, targets) batch")
    return {layer.name: g for layer, g in zip(layers, acc, strict=True)}


def needed_passes(names: Sequence[str]) -> set[str]:
    return {SPECS[n].needs for n in names if SPECS[n].needs}


@dataclass
class _Passes:
    """What the expensive passes measured on the whole network, shared by the per-layer work."""

    names: tuple[str, ...]
    masks: Masks | None
    grads: dict[str, torch.Tensor]
    grasp: dict[str, torch.Tensor]
    synflow: dict[str, torch.Tensor]
    total: int
    n_layers: int
    order: CallOrder  # the layers in forward order: depth, first and last layer read from it, not registration


def _layer_features(passes: _Passes, i: int, layer: PrunableLayer) -> LayerFeatures:
    """Every requested feature of one layer (runs in a worker thread; see :func:`map_layers`)."""
    want = set(passes.names)
    mask = passes.masks[layer.name] if passes.masks is not None else None
    theta = layer.parameter.detach().to("cpu", torch.float32)
    if mask is not None:
        theta = theta * mask  # without a mask, multiplying by ones would only copy θ
    lf = LayerFeatures(layer.name, tuple(theta.shape), layer.kind)
    numel = theta.numel()
    w = lf.weight
    values: list[torch.Tensor] = []  # the rank values of this layer's size, made once for its rank features

    def rank(x: torch.Tensor) -> torch.Tensor:
        if not values:
            values.append(rank_values(numel))
        return rank_float64(x, values[0]) if x.dtype == torch.float64 else pct_rank(x, values[0])

    abs_theta = theta.abs()
    if "theta" in want:
        w["theta"] = theta.reshape(-1)
    if "theta_z" in want:
        w["theta_z"] = _z(theta)
    if "abs_theta_rank" in want:
        w["abs_theta_rank"] = rank(abs_theta)

    def measured(per_layer: dict[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor | None:
        """This layer's value from a whole-network pass, on the CPU in ``dtype``, pruned weights zeroed."""
        if layer.name not in per_layer:
            return None
        x = per_layer[layer.name].to("cpu", dtype)
        return x * mask if mask is not None else x

    g = measured(passes.grads, torch.float32)
    abs_g = None
    if g is not None:
        abs_g = g.abs()
        if "grad" in want:
            w["grad"] = g.reshape(-1)
        if "grad_z" in want:
            w["grad_z"] = _z(g)
        if "abs_grad_rank" in want:
            w["abs_grad_rank"] = rank(abs_g)
        if want & {"snip_lognorm", "snip_rank"}:
            snip = (theta * g).abs()
            if "snip_lognorm" in want:
                w["snip_lognorm"] = _lognorm(snip)
            if "snip_rank" in want:
                w["snip_rank"] = rank(snip)
    s = measured(passes.grasp, torch.float32)
    if s is not None:
        if "grasp_z" in want:
            w["grasp_z"] = _z(s)
        if "grasp_rank" in want:
            w["grasp_rank"] = rank(s)
    s = measured(passes.synflow, torch.float64)
    if s is not None:
        if "synflow_lognorm" in want:
            w["synflow_lognorm"] = _lognorm(s)
        if "synflow_rank" in want:
            w["synflow_rank"] = rank(s)
    shape = theta.shape
    in_units = shape[1] if len(shape) > 1 else 1
    kernel = math.prod(shape[2:]) if len(shape) > 2 else 1
    if want & {"row_log_degree", "col_log_degree"}:
        kept = mask if mask is not None else torch.ones(shape, dtype=torch.bool)
        deg_rows, deg_cols = _unit_sums(kept.to(torch.float32))
        if "row_log_degree" in want:
            lf.row["row_log_degree"] = torch.log1p(deg_rows)
        if "col_log_degree" in want:
            lf.col["col_log_degree"] = torch.log1p(deg_cols)
    if want & {"row_mass", "col_mass"}:
        mass_rows, mass_cols = _unit_sums(abs_theta)
        if "row_mass" in want:
            lf.row["row_mass"] = _rel(mass_rows)
        if "col_mass" in want:
            lf.col["col_mass"] = _rel(mass_cols)
    if abs_g is not None and want & {"row_grad_mass", "col_grad_mass"}:
        grows, gcols = _unit_sums(abs_g)
        if "row_grad_mass" in want:
            lf.row["row_grad_mass"] = _rel(grows)
        if "col_grad_mass" in want:
            lf.col["col_grad_mass"] = _rel(gcols)
    total, n_layers = passes.total, passes.n_layers
    layer_vals = {
        "kind_linear": float(layer.kind == "linear"),
        "kind_conv": float(layer.kind == "conv"),
        "kind_attention": float(layer.kind == "attention"),
        "log_fan_in": math.log(in_units * kernel),
        "log_fan_out": math.log(shape[0] * kernel),
        "log_numel": math.log(numel),
        "log_numel_frac": math.log(numel / total),
        "log_kernel": math.log(kernel),
        "log_in_units": math.log(in_units),
        "log_out_units": math.log(shape[0]),
        "rel_depth": passes.order.positions[i] / max(1, n_layers - 1),
        "is_first": float(passes.order.first == i),
        "is_last": float(passes.order.last == i),
        "log_total": math.log10(total),
        "layer_density": float(mask.float().mean()) if mask is not None else 1.0,
    }
    lf.layer = {k: v for k, v in layer_vals.items() if k in want}
    missing = [n for n in passes.names if SPECS[n].group == "weight" and n not in w]
    if missing:
        raise SchemaMismatchError(f"could not compute {missing}: they need pruning data (pass data=…)")
    return lf


def compute_features(
    model: nn.Module,
    data: PruningData | tuple[torch.Tensor, torch.Tensor] | Iterable[Any] | None,
    *,
    names: Sequence[str] | None = None,
    masks: Masks | Mapping[str, torch.Tensor] | None = None,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
) -> FeatureTable:
    """Measure the requested features (default: the whole schema) of ``model`` at its current weights.

    Works on a deep copy where a pass or a mask needs one, so the caller's model, its BN statistics
    and its mode are untouched (layer descriptors alone read the weights in place: the guards ask
    for them on every ``autos`` call, and a copy cost as much as the read on MobileNet-v3).
    ``masks`` (optional) zeroes pruned weights first, for scoring a partly pruned network.
    Only the expensive passes the requested features need are run; the per-layer work after
    them runs one layer per thread (:func:`map_layers`).
    """
    names = tuple(names or FEATURE_NAMES)
    check_schema(SCHEMA_VERSION, names)
    passes = needed_passes(names)
    data = PruningData.coerce(data)  # (x, y), a list of batches or a DataLoader, as prune takes it (helper)
    if passes & {"grad", "grasp"} and data is None:
        needing = [n for n in names if needed_passes((n,)) & {"grad", "grasp"}]
        raise ConfigError(
            f"features {name_list(needing)} need data (gradients, GraSP), so pass data=(inputs, targets); or ask "
            "only for others with names=[…] (the weights, the layer descriptors and the SynFlow features need only "
            "input_shape)"
        )
    if masks is not None:  # another model's masks failed deep in torch, on a size mismatch (helper)
        masks = (masks if isinstance(masks, Masks) else Masks(masks)).validate(model)  # a dict, as before
    # a pass or a mask changes the model (train-mode statistics, zeroed weights); reading the weights alone does not
    work = safe_deepcopy(model) if passes or masks is not None else model
    if "grasp" in passes:  # its Hessian-gradient product failed on MobileNet-v3's hard sigmoid (gen; hunt)
        twice_differentiable(work)
    layers = prunable_layers(work)
    if input_shape is None and data is not None:
        input_shape = data.input_shape
    with seeded(seed, model_device(work)), masked_weights(work, masks):
        grads = _gradients(work, data) if "grad" in passes and data is not None else {}
        grasp = synflow = {}
        if "grasp" in passes:
            grasp = make_scoring_pruner("grasp").scores(work, data, seed=seed)
        if "synflow" in passes:
            synflow = make_scoring_pruner("synflow", input_shape=input_shape).scores(work, data, seed=seed)
    first = data.batches[0][0][:1] if data is not None and data.batches else None
    if first is None and input_shape is not None:  # data-free: the descriptors read the forward order too (hunt)
        shape = shape_argument(input_shape) or ()  # an int too, as prune takes it
        first = torch.zeros((1, *shape), dtype=param_dtype(model), device=model_device(model))
    order = call_order(model, prunable_layers(model) if work is not model else layers, first)  # kept per model
    measured = _Passes(
        names, masks, grads, grasp, synflow, sum(layer.parameter.numel() for layer in layers), len(layers), order
    )
    out = map_layers(
        lambda item: _layer_features(measured, *item),
        list(enumerate(layers)),
        sizes=[layer.parameter.numel() for layer in layers],
    )
    return FeatureTable(names, out, output_layer=layers[order.last].name if layers else None)
