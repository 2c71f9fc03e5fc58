"""How well a scorer ranks held-out weights, in the terms the mask will be used in.

- ``spearman``: rank correlation of score and IRP label within each layer (averaged);
- ``precision@round r``: per layer, take as many top-scored weights as IMP kept in round r;
  the fraction of them IMP also kept. This isolates *which* weights from *how many*;
- ``alloc_log_error``: mean |log(predicted layer density / IMP layer density)|, the *how many*;
- ``mask_overlap``: both together: the full autos mask against IMP's mask at the same density.

The same functions score SNIP, GraSP, SynFlow and magnitude used as rankers, so the docs can
put the learned scorer next to them on equal terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr


def spearman_within_layers(scores: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]) -> float:
    vals = []
    for s, y in zip(scores, labels, strict=True):
        if y.numel() < 3 or int(y.min()) == int(y.max()):
            continue
        rho = spearmanr(s.numpy(), y.numpy()).statistic
        if np.isfinite(rho):
            vals.append(float(rho))
    return float(np.mean(vals)) if vals else float("nan")


def precision_at_round(scores: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], r: int) -> float:
    """Overlap with IMP's round-r mask when each layer keeps IMP's count (ranking only)."""
    hit = total = 0
    for s, y in zip(scores, labels, strict=True):
        keep = y >= r
        k = int(keep.sum())
        if k == 0:
            continue
        top = torch.argsort(s, descending=True, stable=True)[:k]
        hit += int(keep[top].sum())
        total += k
    return hit / total if total else float("nan")


def random_precision(labels: Sequence[torch.Tensor], r: int) -> float:
    """Expected precision of a random within-layer ranking (the floor to beat)."""
    num = den = 0.0
    for y in labels:
        k = float((y >= r).sum())
        num += k * k / y.numel()
        den += k
    return num / den if den else float("nan")


def alloc_log_error(pred: Sequence[float], actual: Sequence[float], numel: Sequence[int]) -> float:
    errs = [abs(math.log(max(p, 1.0 / n) / max(a, 1.0 / n))) for p, a, n in zip(pred, actual, numel, strict=True)]
    return float(np.mean(errs))


def mask_overlap(
    scores: Sequence[torch.Tensor], counts: Sequence[int], labels: Sequence[torch.Tensor], r: int
) -> float:
    """|autos mask ∩ IMP mask| / |IMP mask| with autos keeping ``counts`` per layer."""
    hit = total = 0
    for s, k, y in zip(scores, counts, labels, strict=True):
        keep = y >= r
        total += int(keep.sum())
        if k > 0:
            top = torch.argsort(s, descending=True, stable=True)[:k]
            hit += int(keep[top].sum())
    return hit / total if total else float("nan")
