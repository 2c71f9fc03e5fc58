"""scikit-learn's bundled digits, with a fixed stratified train/test split of our own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from autosparse.core.errors import DatasetNotFoundError
from autosparse.data.dataset import RawSplits
from autosparse.data.registry import register_dataset
from autosparse.data.sampling import stratified_indices

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed: "digits" is one dataset, its test set must not move with the run seed


@register_dataset(
    "digits",
    input_shape=(1, 8, 8),
    num_classes=10,
    description="scikit-learn digits: 1797 8x8 greyscale digits, 10 classes, fixed stratified 80/20 split",
    n_train=1438,
    n_test=359,
    aliases=("sklearn-digits",),
)
def _load_digits(root: Path | None, download: bool) -> RawSplits:
    """Bundled with scikit-learn, so nothing to find or download."""
    del root, download
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DatasetNotFoundError("digits needs scikit-learn: pip install scikit-learn") from e
    d = load_digits()
    x = d.images.astype(np.float32).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(d.target.astype(np.int64))
    n_test = round(len(y) * DIGITS_TEST_FRACTION)
    test = stratified_indices(y, n_test, 10, DIGITS_SPLIT_SEED, stream=0).numpy()
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    yn = y.numpy()
    return x[~is_test], yn[~is_test], x[is_test], yn[is_test]
