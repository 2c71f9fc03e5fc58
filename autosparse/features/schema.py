"""Per-weight features measured at initialisation: the scorer's input, schema v1.

The same code runs when the IRP data are generated and when ``autos`` prunes a new model, so
the scorer never sees a feature computed two different ways. The schema has a version; the
store and every scorer checkpoint record it, and a mismatch is an error, not a silent drift.

Features come in four groups, kept apart so a scorer can *fold* the cheap ones:

- ``weight``: one value per weight (θ, gradient, saliencies and their within-layer ranks);
- ``row``:    one value per output unit (neuron / out-channel) of the layer, broadcast to its weights;
- ``col``:    one value per input unit (in-feature / in-channel), broadcast to its weights;
- ``layer``:  one value per layer, broadcast to all its weights.

An input unit is an index of the weight's dimension 1. For a grouped or depthwise convolution that is
an in-channel *within its group*, so the column features and ``log_in_units`` / ``log_fan_out`` read
the group's slice (a depthwise conv has one column, holding the whole layer); the GNN's unit graph
(``scorer/gnn_inputs``) wires the groups exactly. Kept as it is: the shipped scorers were trained on it.

Two passes share one working copy: the gradient features' train-mode pass moves its BatchNorm running
statistics before the GraSP and SynFlow passes score it in eval mode, so on a BatchNorm net those
features differ slightly from the GraSP / SynFlow methods' own scores at θ0 (a feature set without a
gradient feature gets the methods' exact scores). Stores and `autos` compute them the same way.

Only the weight group costs O(n_weights) memory per feature; a scorer whose first layer is
linear can apply it to rows, columns and layers once and add (see ``autosparse.scorer.nets``),
which is what keeps ``autos`` within a small factor of SNIP on 10M-weight models.

Scale-free features (within-layer ranks, z-scores, log-ratios to the layer mean) are what let a
scorer transfer across architectures; raw θ and g are in the schema for completeness but the
shipped scorers do not use them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from autosparse.core.errors import SchemaMismatchError, closest_name

SCHEMA_VERSION = 1


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
    FeatureSpec("rel_depth", "layer", "", "place in forward order / (layers − 1) (topology.call_order)"),
    FeatureSpec("is_first", "layer", "", "1 for the first prunable layer the forward reaches"),
    FeatureSpec("is_last", "layer", "", "1 for the last prunable layer the forward reaches (the output layer)"),
    FeatureSpec("log_total", "layer", "", "log10 of the network's prunable weight count"),
    FeatureSpec("layer_density", "layer", "", "kept fraction of the layer under the current mask (1 at init)"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
SPECS: dict[str, FeatureSpec] = {f.name: f for f in FEATURES}
GROUPS = ("weight", "row", "col", "layer")


def check_schema(version: int, names: Sequence[str] | None = None) -> None:
    """Raise :class:`SchemaMismatchError` unless ``version``/``names`` match this code's schema."""
    if version != SCHEMA_VERSION:
        raise SchemaMismatchError(
            f"feature schema v{version} does not match this autosparse's v{SCHEMA_VERSION}; retrain the scorer "
            "(autosparse train-scorer) on a store generated by this version, or install the autosparse that made it"
        )
    if names is not None:
        unknown = [n for n in names if n not in SPECS]
        if unknown:
            close = {n: closest_name(n, list(SPECS)) for n in unknown}
            meant = "; ".join(f"{n}: did you mean {c!r}?" for n, c in close.items() if c)
            raise SchemaMismatchError(
                f"features {unknown} are not in schema v{SCHEMA_VERSION}"
                + (f" ({meant})" if meant else "")
                + f"; its features: {', '.join(SPECS)}. A store or scorer that names them was made by another "
                "version: regenerate the store or retrain the scorer"
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
        spec = SPECS[name]
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
    output_layer: str | None = None  # the layer the forward reaches last (None: the last registered)

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
