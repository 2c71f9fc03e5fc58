"""The hyperparameters of ``autosparse train-scorer``: one dataclass, its YAML keys and its flags.

The default feature lists live here because they are part of what a config means: a YAML file
that names no features trains on these, and a card records the resolved lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from autosparse.core.errors import ConfigError, check_scalar_types
from autosparse.features.schema import SPECS
from autosparse.scorer.archs.registry import arch_class

DEFAULT_RANKER_FEATURES = (
    "abs_theta_rank",
    "theta_z",
    "abs_grad_rank",
    "grad_z",
    "snip_rank",
    "snip_lognorm",
    "synflow_rank",
    "synflow_lognorm",
    "row_mass",
    "row_grad_mass",
    "col_mass",
    "col_grad_mass",
    "log_fan_in",
    "log_fan_out",
    "log_numel_frac",
    "rel_depth",
    "is_first",
    "is_last",
    "kind_conv",
)
DEFAULT_ALLOCATOR_FEATURES = (
    "kind_linear",
    "kind_conv",
    "log_fan_in",
    "log_fan_out",
    "log_numel",
    "log_numel_frac",
    "log_kernel",
    "log_in_units",
    "log_out_units",
    "rel_depth",
    "is_first",
    "is_last",
    "log_total",
)


@dataclass
class ScorerConfig:
    """Hyperparameters of ``autosparse train-scorer`` (YAML keys = these field names)."""

    arch: str = "mlp"  # a registered ranker architecture: mlp | gnn (autosparse.scorer.archs)
    ranker_features: tuple[str, ...] = DEFAULT_RANKER_FEATURES  # per-weight features the ranker reads (schema names)
    allocator_features: tuple[str, ...] = DEFAULT_ALLOCATOR_FEATURES  # per-layer features of the allocator/unit head
    hidden: tuple[int, ...] = (32, 16)  # hidden widths of the ranker's per-weight MLP
    steps: int = 3000  # ranker training steps
    lr: float = 1e-3  # ranker learning rate (AdamW, cosine schedule)
    weight_decay: float = 1e-4  # ranker AdamW weight decay
    groups_per_step: int = 16  # layer groups (random weights of one layer of one run) per ranker step
    group_size: int = 2048  # weights per group: the list the ListNet loss ranks
    label_base: float = 2.0  # a weight surviving one more round weighs this much more in the target
    eval_every: int = 250  # steps between held-out evaluations (early stopping keeps the best)
    eval_min_round_density: float = 0.03  # early stopping looks at rounds at or below this density
    alloc_hidden: tuple[int, ...] = (32, 32)  # hidden widths of the allocator and the unit head
    alloc_steps: int = 3000  # training steps of the allocator (and of the unit head)
    alloc_lr: float = 3e-3  # allocator learning rate
    alloc_weight_decay: float = 1e-3  # allocator AdamW weight decay
    alloc_members: int = 1
    """allocators trained from seeds seed, seed+1, …; autos uses the mean of their log densities (1: one network)"""
    max_per_layer: int = 300_000  # weights loaded per training layer at most (larger layers are subsampled)
    min_round_accuracy: float = 0.8  # learn only from IRP rounds whose accuracy stayed >= this x the dense one
    unit_head: bool = True  # also learn how many output units per layer IMP keeps alive (autos units=learned)
    unit_scale: float = 0.5
    """multiplies the unit head's fractions at prune time; 0.5 won on held-out 784-400-100-10 (docs/SCORER.md)"""
    seed: int = 0  # seed of the weight subsampling, the batches and the networks' initial weights
    # GNN-only settings (ignored by the MLP)
    gnn_hidden: int = 32  # GNN only: width of the unit embeddings passed along the graph
    gnn_layers: int = 2  # GNN only: rounds of message passing (each one forward and one backward)

    def __post_init__(self) -> None:
        check_scalar_types(self)  # ScorerConfig(steps="20") failed in a comparison (Python-jobs hunt)
        arch_class(self.arch)  # an unknown arch is a ConfigError naming the registered ones
        # each refused here, not as a traceback (ZeroDivisionError, AdamW's ValueError) or a silently
        # useless scorer (hidden width 0: a constant ranker) after the store was read
        for name in (
            "steps",
            "groups_per_step",
            "eval_every",
            "alloc_steps",
            "max_per_layer",
            "gnn_hidden",
            "gnn_layers",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ConfigError(f"group_size must be >= 2 (a group is a list to rank), got {self.group_size}")
        for name in ("hidden", "alloc_hidden"):
            widths = getattr(self, name)
            if not widths or any(w < 1 for w in widths):
                raise ConfigError(f"{name} must be one or more widths >= 1, e.g. 32,16; got {list(widths)}")
        for name in ("lr", "alloc_lr"):
            if not 0.0 < getattr(self, name) < float("inf"):
                raise ConfigError(f"{name} must be a positive number, got {getattr(self, name)}")
        for name in ("weight_decay", "alloc_weight_decay"):
            if not 0.0 <= getattr(self, name) < float("inf"):
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.min_round_accuracy <= 1.0:
            raise ConfigError(
                f"min_round_accuracy must be in [0, 1] (a share of the dense accuracy), got {self.min_round_accuracy}"
            )
        if not 0.0 < self.eval_min_round_density <= 1.0:
            raise ConfigError(f"eval_min_round_density must be in (0, 1], got {self.eval_min_round_density}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be in [0, 2**32), got {self.seed}")
        for name in ("ranker_features", "allocator_features"):
            if not getattr(self, name) or any(not str(f).strip() for f in getattr(self, name)):
                raise ConfigError(f"{name} must name one or more features (`autosparse store info` lists them)")
            twice = sorted({f for f in getattr(self, name) if list(getattr(self, name)).count(f) > 1})
            if twice:
                raise ConfigError(f"{name} names {', '.join(twice)} twice; give each feature once")
        per_weight = [f for f in self.allocator_features if f in SPECS and SPECS[f].group != "layer"]
        if per_weight:  # trained on each layer's first weight, then a KeyError at prune time (hunt)
            layer_level = ", ".join(f.name for f in SPECS.values() if f.group == "layer")
            unit = {"weight": "weight", "row": "output unit", "col": "input unit"}
            named = ", ".join(f"{f} (per {unit.get(SPECS[f].group, SPECS[f].group)})" for f in per_weight)
            raise ConfigError(
                f"allocator_features are per-layer features, not {named}: give "
                f"{'it' if len(per_weight) == 1 else 'them'} to ranker_features, or choose among {layer_level}"
            )
        if self.alloc_members < 1:
            raise ConfigError(f"alloc_members must be >= 1 (1: a single allocator), got {self.alloc_members}")
        if not 0.0 < self.unit_scale <= 1.0:
            raise ConfigError(f"unit_scale must be in (0, 1], got {self.unit_scale}")
        if self.label_base <= 1.0:
            raise ConfigError("label_base must be > 1 (survivors of later rounds must weigh more)")
