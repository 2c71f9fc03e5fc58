"""The one shape every scoring method hands back, and the post-processing the references apply.

Scores are plain CPU tensors keyed by parameter name so that an allocation, the feature
extractor and a user's own code can consume them without knowing which method made them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Saliency per prunable weight, keyed by its qualified name; same shape as the weight, higher = keep.
Scores = dict[str, torch.Tensor]


def to_scores(names: Sequence[str], tensors: Sequence[torch.Tensor]) -> Scores:
    """Detached, contiguous, CPU, floating-point score tensors keyed by parameter name."""
    out: Scores = {}
    for name, t in zip(names, tensors, strict=True):
        t = t.detach()
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
        out[name] = t.cpu().contiguous()
    return out


def normalize_by_sum(scores: Scores, *, absolute_sum: bool = False, eps: float = 0.0) -> Scores:
    """Divide every score by the sum over all layers (or by |sum| + eps).

    Both references normalise this way (SNIP by the plain sum of non-negative scores, GraSP
    by |sum| + 1e-10 so a signed score keeps its sign). Rankings are unchanged; what changes
    is that the values become comparable across networks, which is what a learned scorer's
    features need. A zero sum (e.g. an all-zero gradient) is left unscaled rather than
    turned into NaNs.
    """
    total = sum(float(s.to(torch.float64).sum()) for s in scores.values())
    norm = (abs(total) + eps) if absolute_sum else total
    if norm == 0.0 or not torch.isfinite(torch.tensor(norm)):
        return scores
    return {n: s / norm for n, s in scores.items()}
