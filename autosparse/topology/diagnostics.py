"""One summary of a mask for reports: per-layer density plus the NPB topology metrics.

A mask can keep the right number of weights and still be useless: a layer with no kept weight,
or kept weights that lie on no input→output path (layer collapse). The path metrics come from
:mod:`autosparse.topology.paths`; this module only packages them for the CLI, the bench and warnings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from autosparse.core.masks import Masks
from autosparse.topology.paths import path_stats

log = logging.getLogger(__name__)


def mask_diagnostics(
    model: nn.Module, masks: Masks, input_shape: Sequence[int], *, warn: bool = True
) -> dict[str, Any]:
    """Density per layer, effective params / nodes, log10 path count and collapsed layers.

    Logs a warning on layer collapse, because a collapsed mask trains to chance accuracy and
    that is better said before the training than discovered after it.
    """
    stats = path_stats(model, masks, tuple(input_shape))
    log10_paths = stats.log_paths / math.log(10) if math.isfinite(stats.log_paths) else float("-inf")
    collapsed = sorted(set(stats.collapsed) | set(masks.empty_layers()))
    if warn and collapsed:
        log.warning("layer collapse: no input-to-output path through %s", ", ".join(collapsed))
    return {
        "kept": masks.kept,
        "total": masks.total,
        "density": masks.density,
        "layer_density": {r.name: r.density for r in masks.layers()},
        "effective_params": stats.effective_params,
        "effective_nodes": stats.effective_nodes,
        "total_nodes": stats.total_nodes,
        "log10_paths": log10_paths,
        "collapsed_layers": collapsed,
    }
