"""Per-weight features at initialisation: the schema (what they mean, versioned) and their computation."""

from autosparse.features.compute import compute_features, needed_passes
from autosparse.features.schema import (
    FEATURE_NAMES,
    FEATURES,
    GROUPS,
    SCHEMA_VERSION,
    SPECS,
    FeatureSpec,
    FeatureTable,
    LayerFeatures,
    check_schema,
)

__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "GROUPS",
    "SCHEMA_VERSION",
    "SPECS",
    "FeatureSpec",
    "FeatureTable",
    "LayerFeatures",
    "check_schema",
    "compute_features",
    "needed_passes",
]
