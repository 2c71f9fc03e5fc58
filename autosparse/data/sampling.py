"""Seeded, stratified choices of examples: the subset rule every dataset split shares.

Kept apart from the dataset type so loaders with a fixed split of their own (digits) draw it with
the same rule as a run's ``n_train``/``n_test`` subset.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
import torch

from autosparse.core.errors import ConfigError, check_seed

log = logging.getLogger(__name__)


def seeded_rng(seed: int, stream: int) -> np.random.Generator:
    """One seed, independent streams (train subset 0, test subset 1, pruning batch 2): changing one never moves another.

    Its low 32 bits, as torch's generator reads a seed; one outside ``[0, 2**32)`` is said (check_seed),
    as the model and pruner seeds are: a data seed of 2**32 took seed 0's subset in silence (hunt)."""
    return np.random.default_rng(np.random.SeedSequence([check_seed(int(seed)) & 0xFFFFFFFF, stream]))


def stratified_indices(y: torch.Tensor, n: int, num_classes: int, seed: int = 0, stream: int = 0) -> torch.Tensor:
    """``n`` indices whose class proportions match ``y``'s (largest-remainder rounding), seeded.

    Returned sorted, so a subset keeps the dataset's original order and the same (n, seed)
    always selects the same examples.
    """
    labels = y.cpu().numpy()
    take = _per_class(np.bincount(labels, minlength=num_classes), n)
    rng = seeded_rng(seed, stream)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False) for c, k in enumerate(take) if k > 0]
    idx = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
    return torch.from_numpy(idx.astype(np.int64)).to(y.device)


def _per_class(counts: np.ndarray, n: int) -> np.ndarray:
    """How many of each class a stratified subset of ``n`` takes: largest-remainder rounding."""
    exact = counts * (n / int(counts.sum()))
    take = np.floor(exact).astype(np.int64)
    remainder = n - int(take.sum())
    if remainder:
        # largest fractional part first; ties to the lower class index (stable sort)
        order = np.argsort(-(exact - take), kind="stable")
        take[order[:remainder]] += 1
    return take


def subset_index(
    y: torch.Tensor, n: int | None, num_classes: int, seed: int, stream: int, what: str
) -> torch.Tensor | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):  # 2.5 gave 2 examples, True one (review)
        raise ConfigError(f"{what} subset size must be a whole number of examples, got {n!r}")
    n = int(n)
    total = int(y.shape[0])
    if n <= 0 or n > total:
        raise ConfigError(f"{what} subset of {n} examples is impossible: it has {total}; pass 1..{total} or omit it")
    if n == total:
        return None
    idx = stratified_indices(y, n, num_classes, seed, stream)
    counts = torch.bincount(y, minlength=num_classes)
    present, kept = int((counts > 0).sum()), len(torch.unique(y[idx]))
    if kept < present:  # 5 training examples of 10 classes trained without complaint, half the classes unseen
        # every size from total / the rarest count on gives each class one; the rounding gives it to a few
        # sizes below too: the smallest size from which every larger one does (not monotone below it)
        present_counts = counts.cpu().numpy()
        covers = min(total, -(-total // int(present_counts[present_counts > 0].min())))
        while covers - 1 > n and (_per_class(present_counts, covers - 1)[present_counts > 0] > 0).all():
            covers -= 1
        log.warning(
            "the %s subset of %d examples leaves %d of its %d classes without an example; %d or more cover them all",
            what,
            n,
            present - kept,
            present,
            covers,
        )
    return idx
