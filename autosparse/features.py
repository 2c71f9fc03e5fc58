"""Per-weight features measured at initialisation: the scorer's input, schema v1.

The same code runs when the IRP data are generated and when ``autos`` prunes a new model, so
the scorer never sees a feature computed two different ways. The schema has a version; the
store and every scorer checkpoint record it, and a mismatch is an error, not a silent drift.

Features come in four groups, kept apart so a scorer can *fold* the cheap ones:

- ``weight``: one value per weight (θ, gradient, saliencies and their within-layer ranks);
- ``row``:    one value per output unit (neuron / out-channel) of the layer, broadcast to its weights;
- ``col``:    one value per input unit (in-feature / in-channel), broadcast to its weights;
- ``layer``:  one value per layer, broadcast to all its weights.

Only the weight group costs O(n_weights) memory per feature; a scorer whose first layer is
linear can apply it to rows, columns and layers once and add (see ``autosparse.scorer.mlp``),
which is what keeps ``autos`` within a small factor of SNIP on 10M-weight models.

Scale-free features (within-layer ranks, z-scores, log-ratios to the layer mean) are what let a
scorer transfer across architectures; raw θ and g are in the schema for completeness but the
shipped scorers do not use them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from autosparse.errors import ConfigError, SchemaMismatchError
from autosparse.layers import PrunableLayer, prunable_layers, safe_deepcopy
from autosparse.masks import Masks
from autosparse.pruners.base import PruningData
from autosparse.pruners.iterate import masked_weights

SCHEMA_VERSION = 1
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    group: str  # weight | row | col | layer
    needs: str = ""  # "", "grad", "grasp", "synflow": which expensive pass it requires
    doc: str = ""


FEATURES: tuple[FeatureSpec, ...] = (
    # weight-level
    FeatureSpec("theta", "weight", "", "θ at init (raw; scale depends on the init)"),
    FeatureSpec("theta_z", "weight", "", "θ / std of the layer's θ"),
    FeatureSpec("abs_theta_rank", "weight", "", "within-layer percentile of |θ| (0 = smallest)"),
    FeatureSpec("grad", "weight", "grad", "∂L/∂θ on the pruning batch (raw)"),
    FeatureSpec("grad_z", "weight", "grad", "∂L/∂θ / std of the layer's gradient"),
    FeatureSpec("abs_grad_rank", "weight", "grad", "within-layer percentile of |g|"),
    FeatureSpec("snip_lognorm", "weight", "grad", "log(|θg| / layer mean of |θg|)"),
    FeatureSpec("snip_rank", "weight", "grad", "within-layer percentile of |θg|"),
    FeatureSpec("grasp_z", "weight", "grasp", "GraSP score / std of the layer's GraSP scores"),
    FeatureSpec("grasp_rank", "weight", "grasp", "within-layer percentile of the GraSP score"),
    FeatureSpec("synflow_lognorm", "weight", "synflow", "log(SynFlow / layer mean of SynFlow), one shot"),
    FeatureSpec("synflow_rank", "weight", "synflow", "within-layer percentile of the one-shot SynFlow score"),
    # row (output unit) level
    FeatureSpec("row_log_degree", "row", "", "log1p(kept inputs of the target unit)"),
    FeatureSpec("row_mass", "row", "", "Σ|θ| into the target unit / layer mean of that sum"),
    FeatureSpec("row_grad_mass", "row", "grad", "Σ|g| into the target unit / layer mean"),
    # col (input unit) level
    FeatureSpec("col_log_degree", "col", "", "log1p(kept outputs of the source unit in this layer)"),
    FeatureSpec("col_mass", "col", "", "Σ|θ| out of the source unit / layer mean of that sum"),
    FeatureSpec("col_grad_mass", "col", "grad", "Σ|g| out of the source unit / layer mean"),
    # layer level
    FeatureSpec("kind_linear", "layer", "", "1 for nn.Linear"),
    FeatureSpec("kind_conv", "layer", "", "1 for convolutions"),
    FeatureSpec("kind_attention", "layer", "", "1 for attention projections"),
    FeatureSpec("log_fan_in", "layer", "", "log of inputs per output unit (in × kernel)"),
    FeatureSpec("log_fan_out", "layer", "", "log of outputs per input unit (out × kernel)"),
    FeatureSpec("log_numel", "layer", "", "log of the layer's weight count"),
    FeatureSpec("log_numel_frac", "layer", "", "log of the layer's share of all prunable weights"),
    FeatureSpec("log_kernel", "layer", "", "log of the kernel size (0 for linear)"),
    FeatureSpec("log_in_units", "layer", "", "log of input units (features / channels)"),
    FeatureSpec("log_out_units", "layer", "", "log of output units"),
    FeatureSpec("rel_depth", "layer", "", "layer index / (layers − 1)"),
    FeatureSpec("is_first", "layer", "", "1 for the first prunable layer"),
    FeatureSpec("is_last", "layer", "", "1 for the last prunable layer"),
    FeatureSpec("log_total", "layer", "", "log10 of the network's prunable weight count"),
    FeatureSpec("layer_density", "layer", "", "kept fraction of the layer under the current mask (1 at init)"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
_SPEC = {f.name: f for f in FEATURES}
GROUPS = ("weight", "row", "col", "layer")


def check_schema(version: int, names: Sequence[str] | None = None) -> None:
    """Raise :class:`SchemaMismatchError` unless ``version``/``names`` match this code's schema."""
    if version != SCHEMA_VERSION:
        raise SchemaMismatchError(
            f"feature schema v{version} does not match this autosparse's v{SCHEMA_VERSION}; retrain the scorer "
            "(autosparse train-scorer) on a store generated by this version, or install the autosparse that made it"
        )
    if names is not None:
        unknown = [n for n in names if n not in _SPEC]
        if unknown:
            raise SchemaMismatchError(
                f"features {unknown} are not in schema v{SCHEMA_VERSION}; regenerate the store or retrain the scorer"
            )


@dataclass
class LayerFeatures:
    name: str
    shape: tuple[int, ...]
    kind: str
    weight: dict[str, torch.Tensor] = field(default_factory=dict)  # each (numel,)
    row: dict[str, torch.Tensor] = field(default_factory=dict)  # each (out_units,)
    col: dict[str, torch.Tensor] = field(default_factory=dict)  # each (in_units,)
    layer: dict[str, float] = field(default_factory=dict)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def kernel(self) -> int:
        return math.prod(self.shape[2:]) if len(self.shape) > 2 else 1

    def row_index(self) -> torch.Tensor:
        """Output unit of every weight (flat, row-major)."""
        per_row = self.numel // self.shape[0]
        return torch.arange(self.shape[0]).repeat_interleave(per_row)

    def col_index(self) -> torch.Tensor:
        """Input unit of every weight (flat, row-major)."""
        in_units = self.shape[1] if len(self.shape) > 1 else 1
        return torch.arange(in_units).repeat_interleave(self.kernel).repeat(self.shape[0])

    def column(self, name: str) -> torch.Tensor:
        """The (numel,) values of one feature, whatever its group."""
        spec = _SPEC[name]
        if spec.group == "weight":
            return self.weight[name]
        if spec.group == "row":
            return self.row[name][self.row_index()]
        if spec.group == "col":
            return self.col[name][self.col_index()]
        return torch.full((self.numel,), float(self.layer[name]), dtype=torch.float32)


@dataclass
class FeatureTable:
    """Features of every prunable weight of one model, kept per layer and per group."""

    names: tuple[str, ...]
    layers: list[LayerFeatures]
    schema_version: int = SCHEMA_VERSION

    @property
    def n_weights(self) -> int:
        return sum(lf.numel for lf in self.layers)

    def layer_table(self) -> list[dict[str, object]]:
        out, offset = [], 0
        for lf in self.layers:
            out.append({"name": lf.name, "shape": list(lf.shape), "offset": offset, "numel": lf.numel, "kind": lf.kind})
            offset += lf.numel
        return out

    def dense(self, names: Sequence[str] | None = None) -> torch.Tensor:
        """(n_weights, n_features) float32 matrix in layer order (what the store holds)."""
        names = tuple(names or self.names)
        blocks = [torch.stack([lf.column(n) for n in names], dim=1) for lf in self.layers]
        return torch.cat(blocks).to(torch.float32)

    def layer_index(self) -> torch.Tensor:
        return torch.cat([torch.full((lf.numel,), i, dtype=torch.int16) for i, lf in enumerate(self.layers)])


def _sort_key(flat: torch.Tensor) -> torch.Tensor:
    """Signed integers that sort exactly like the float values of ``flat``, every NaN above all.

    The IEEE trick on the bit pattern: a negative float's magnitude bits are flipped so larger
    magnitudes sort lower; positives keep theirs. ``+ 0.0`` turns -0.0 into +0.0 first, because
    a float sort sees them as equal (a tie, broken by index). float64 keeps its 64 bits, so the
    keys are exact for every floating dtype; integers are their own key.
    """
    if not flat.is_floating_point():
        return flat.to(torch.int64)
    if flat.dtype == torch.float64:
        v, itype, low = flat + 0.0, torch.int64, 0x7FFF_FFFF_FFFF_FFFF
    else:
        v, itype, low = flat.to(torch.float32) + 0.0, torch.int32, 0x7FFF_FFFF
    bits = v.view(itype)
    key = (bits >> (8 * bits.element_size() - 1)).bitwise_and_(low).bitwise_xor_(bits)
    nan = torch.isnan(v)
    if bool(nan.any()):
        key[nan] = low  # the largest key: NaNs tie with each other above +inf
    return key


def _rank_values(n: int) -> torch.Tensor:
    """What the weight of sorted position i gets: i / (n - 1) in float32 (shared by a layer's rank features)."""
    return torch.arange(n).to(torch.float32) / max(1, n - 1)


def _pct_rank(x: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
    """Within-layer percentile in [0, 1]; ties get distinct ranks by position (stable, deterministic).

    Exactly ``argsort(argsort(x, stable=True))`` scaled to [0, 1] (NaN highest), with one sort:
    the values become order-preserving integer keys (:func:`_sort_key`), whose stable sort torch
    does by radix (about 2x faster than its float sort and than a numpy two-pass radix on 16-bit
    digits, and exact for float64 without a float32 detour), and the rank values are scattered
    back through the permutation. ``values`` is ``_rank_values(numel)`` when the caller has it.
    """
    flat = x.detach().reshape(-1).cpu()
    n = flat.numel()
    vals = _rank_values(n) if values is None else values
    order = torch.sort(_sort_key(flat), stable=True).indices
    return torch.empty(n, dtype=torch.float32).index_copy_(0, order, vals)  # 3x faster than out[order] = vals


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
    model.train()
    total = sum(len(y) for _, y in data)
    device = params[0].device
    acc: list[torch.Tensor] | None = None
    for x, y in data:
        loss = F.cross_entropy(model(x.to(device)), y.to(device), reduction="sum") / total
        grads = [g.detach() for g in torch.autograd.grad(loss, params)]
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


_local = threading.local()  # .workers: the thread count map_layers uses inside single_threaded_torch()


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous setting after."""
    prev = torch.get_num_threads()
    if n != prev:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != prev:
            torch.set_num_threads(prev)


@contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Torch ops in the block run on one thread; :func:`map_layers` inside still uses every thread.

    Why: on a shared, loaded machine torch's intra-op threads wait for each other after every
    op, and a stall of one stalls all (the ``autos`` scorer ran 4x slower with 2 torch threads
    than with 1 on the 2-core dev box). Work done here is parallel where it is large, across
    layers or blocks (:func:`map_layers`), which needs no barrier.
    """
    prev = getattr(_local, "workers", None)
    _local.workers = prev or torch.get_num_threads()
    try:
        with _torch_threads(1):
            yield
    finally:
        _local.workers = prev


def map_layers(
    fn: Callable[[T], R], items: Sequence[T], *, sizes: Sequence[int] | None = None, workers: int | None = None
) -> list[R]:
    """``[fn(x) for x in items]``, one item per thread, with torch single-threaded inside each.

    Why: per-layer work (sorts, reductions, a small MLP over millions of rows) is many medium
    ops, and torch's intra-op threads stall on a loaded machine (see :func:`single_threaded_torch`).
    Whole items per thread need no barrier and still use ``torch.get_num_threads()`` cores
    (torch and numpy release the GIL). Each item runs single-threaded whatever the thread
    count, so results do not depend on it. ``sizes`` (e.g. numels) start the largest items
    first, for balance; results keep ``items``' order. Called from a worker, it runs serially.
    """
    n = len(items)
    workers = min(n, workers or getattr(_local, "workers", None) or torch.get_num_threads())
    with single_threaded_torch():
        if workers <= 1:
            return [fn(x) for x in items]
        order = sorted(range(n), key=lambda i: -sizes[i]) if sizes is not None else list(range(n))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {i: pool.submit(fn, items[i]) for i in order}
            return [futures[i].result() for i in range(n)]


def needed_passes(names: Sequence[str]) -> set[str]:
    return {_SPEC[n].needs for n in names if _SPEC[n].needs}


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
            values.append(_rank_values(numel))
        return _pct_rank(x, values[0])

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
        "rel_depth": i / max(1, n_layers - 1),
        "is_first": float(i == 0),
        "is_last": float(i == n_layers - 1),
        "log_total": math.log10(total),
        "layer_density": float(mask.float().mean()) if mask is not None else 1.0,
    }
    lf.layer = {k: v for k, v in layer_vals.items() if k in want}
    missing = [n for n in passes.names if _SPEC[n].group == "weight" and n not in w]
    if missing:
        raise SchemaMismatchError(f"could not compute {missing}: they need pruning data (pass data=…)")
    return lf


def compute_features(
    model: nn.Module,
    data: PruningData | None,
    *,
    names: Sequence[str] | None = None,
    masks: Masks | None = None,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
) -> FeatureTable:
    """Measure the requested features (default: the whole schema) of ``model`` at its current weights.

    Works on a deep copy, so the caller's model, its BN statistics and its mode are untouched.
    ``masks`` (optional) zeroes pruned weights first, for scoring a partly pruned network.
    Only the expensive passes the requested features need are run; the per-layer work after
    them runs one layer per thread (:func:`map_layers`).
    """
    names = tuple(names or FEATURE_NAMES)
    check_schema(SCHEMA_VERSION, names)
    passes = needed_passes(names)
    if "grad" in passes and data is None:
        raise SchemaMismatchError("features needing gradients were requested but no pruning data was given")
    work = safe_deepcopy(model)
    layers = prunable_layers(work)
    if input_shape is None and data is not None:
        input_shape = data.input_shape
    with torch.random.fork_rng(devices=[]), masked_weights(work, masks):
        torch.manual_seed(seed)
        grads = _gradients(work, data) if "grad" in passes and data is not None else {}
        grasp = synflow = {}
        if "grasp" in passes:
            from autosparse.pruners import make_pruner

            grasp = make_pruner("grasp").scores(work, data, seed=seed)
        if "synflow" in passes:
            from autosparse.pruners import make_pruner

            synflow = make_pruner("synflow", input_shape=input_shape).scores(work, data, seed=seed)
    measured = _Passes(
        names, masks, grads, grasp, synflow, sum(layer.parameter.numel() for layer in layers), len(layers)
    )
    out = map_layers(
        lambda item: _layer_features(measured, *item),
        list(enumerate(layers)),
        sizes=[layer.parameter.numel() for layer in layers],
    )
    return FeatureTable(names, out)
