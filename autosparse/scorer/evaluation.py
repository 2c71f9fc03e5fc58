"""The card's held-out report: ranking, allocation and whole-mask quality per held-out run and round.

Why next to the training and not in :mod:`autosparse.scorer.metrics`: the metrics are the
measuring sticks; this applies them to a *trained scorer* (ranker scores from its architecture,
layer counts from its allocator turned into exact counts) and puts the classic saliencies
used as rankers on the same runs next to it, which is what the card's ``metrics`` records.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from autosparse.core.allocation import counts_from_shares
from autosparse.scorer.data import RunSamples
from autosparse.scorer.metrics import (
    alloc_log_error,
    mask_overlap,
    precision_at_round,
    random_precision,
    spearman_within_layers,
)
from autosparse.scorer.nets import LayerHead

#: classic saliencies scored as rankers on the same held-out runs: report name -> feature column
BASELINE_RANKERS = {
    "magnitude": "abs_theta_rank",
    "snip": "snip_rank",
    "grasp": "grasp_rank",
    "synflow": "synflow_rank",
}


def evaluate_scorer(
    score_run: Callable[[RunSamples], list[torch.Tensor]], alloc: LayerHead, runs: list[RunSamples]
) -> dict[str, Any]:
    """Per held-out run: ranking, allocation and full-mask metrics, plus baseline rankers.

    ``score_run(run)`` gives the ranker's scores of every weight of the run, one tensor per layer
    (:meth:`autosparse.scorer.archs.base.Arch.score_run`).
    """
    report: dict[str, Any] = {}
    for run in runs:
        labels = [
            run.full_label[run.layer_slice(i)] if run.full_label is not None else g.label
            for i, g in enumerate(run.groups)
        ]
        scores = score_run(run)
        rounds = list(range(1, len(run.densities)))
        per = {"spearman": spearman_within_layers(scores, labels), "rounds": {}}
        for r in rounds:
            d = run.densities[r]
            x = torch.cat([run.layer_feats, torch.full((len(run.groups), 1), math.log(d))], dim=1)
            with torch.no_grad():
                pred = (alloc(x).exp() * d).clamp(max=1.0).tolist()
            numel = run.layer_numel.tolist()
            shapes = {str(i): torch.Size([n]) for i, n in enumerate(numel)}
            counts = counts_from_shares(shapes, d, {str(i): p * n for i, (p, n) in enumerate(zip(pred, numel))})
            row = {
                "density": d,
                "precision": precision_at_round(scores, labels, r),
                "random_precision": random_precision(labels, r),
                "alloc_log_error": alloc_log_error(pred, run.layer_densities[r], numel),
                "mask_overlap": mask_overlap(scores, [counts[str(i)] for i in range(len(numel))], labels, r),
            }
            for name, feat in BASELINE_RANKERS.items():
                if feat in run.extra_features:
                    bscores = [run.extra_features[feat][run.layer_slice(i)] for i in range(len(run.groups))]
                    row[f"precision_{name}"] = precision_at_round(bscores, labels, r)
            per["rounds"][str(r)] = row
        for name, feat in BASELINE_RANKERS.items():
            if feat in run.extra_features:
                bscores = [run.extra_features[feat][run.layer_slice(i)] for i in range(len(run.groups))]
                per[f"spearman_{name}"] = spearman_within_layers(bscores, labels)
        report[run.run_id] = per
    return report
