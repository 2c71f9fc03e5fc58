"""MNIST-1D, generated locally by the ``mnist1d`` package and cached as ``.npz`` (never downloaded)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from autosparse.core.errors import ConfigError, DatasetNotFoundError
from autosparse.core.folders import write_bytes
from autosparse.data.dataset import RawSplits
from autosparse.data.registry import register_dataset
from autosparse.data.roots import resolve_data_root

log = logging.getLogger(__name__)

MNIST1D_CACHE_VERSION = 1


def mnist1d_args() -> dict[str, Any]:
    from mnist1d.data import get_dataset_args

    args = dict(get_dataset_args(as_dict=True))
    args.pop("url", None)  # the download URL is irrelevant: we always generate
    return args


def _generate_mnist1d(args: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run mnist1d's generator without leaking its global reseeding into the caller's RNGs."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": d["x"], "y": d["y"], "x_test": d["x_test"], "y_test": d["y_test"]}


def _cache_shapes(arrays: dict[str, np.ndarray]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(arrays[k].shape) for k in ("x", "y", "x_test", "y_test"))


def _expected_shapes(args: dict[str, Any]) -> tuple[tuple[int, ...], ...]:
    """What the generator makes of ``args``: its train / test split of ``num_samples`` signals."""
    n = int(args["num_samples"]) // 10 * 10  # the generator makes as many of each of its 10 templates
    n_train, length = int(n * float(args["train_split"])), int(args["final_seq_length"])
    return (n_train, length), (n_train,), (n - n_train, length), (n - n_train,)


@register_dataset(
    "mnist1d",
    input_shape=(1, 40),
    num_classes=10,
    description="MNIST-1D: 40-sample 1-D signals of 10 digit templates, generated locally by the mnist1d package",
    n_train=4000,
    n_test=1000,
    aliases=("mnist-1d", "mnist_1d"),
)
def _load_mnist1d(root: Path | None, download: bool) -> RawSplits:
    """Generate with the package defaults (the published 4000/1000 split) and cache as .npz.

    Generation is deterministic (seed 42 inside mnist1d) but takes seconds; the cache key hashes
    the generator arguments, so a changed mnist1d default makes a new file rather than a stale hit.
    """
    del download  # never downloaded: mnist1d's download fetches a pickle, which we do not unpickle
    try:
        args = mnist1d_args()
    except ImportError as e:
        raise DatasetNotFoundError("mnist1d needs the mnist1d package: pip install mnist1d") from e
    key = hashlib.sha256(json.dumps([MNIST1D_CACHE_VERSION, args], sort_keys=True).encode()).hexdigest()[:12]
    path = resolve_data_root(root) / "mnist1d" / f"mnist1d-{key}.npz"
    arrays: dict[str, np.ndarray] | None = None
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, EOFError, ValueError, KeyError, zlib.error, zipfile.BadZipFile) as e:  # EOF: zero bytes (hunt)
            log.warning("ignoring unreadable MNIST-1D cache %s (%s); regenerating", path, e)
        if arrays is not None and (shapes := _cache_shapes(arrays)) != (want := _expected_shapes(args)):
            # a cache cut short loaded fewer examples without a word, a narrower one failed on a reshape (hunt)
            log.warning("ignoring MNIST-1D cache %s (arrays of shapes %s, not %s); regenerating", path, shapes, want)
            arrays = None
    if arrays is None:
        t0 = time.perf_counter()
        arrays = _generate_mnist1d(args)
        log.info("generated MNIST-1D in %.1fs", time.perf_counter() - t0)
        _atomic_savez(path, arrays)
    n_tr, n_te = len(arrays["y"]), len(arrays["y_test"])
    return (
        arrays["x"].astype(np.float32).reshape(n_tr, 1, -1),
        arrays["y"],
        arrays["x_test"].astype(np.float32).reshape(n_te, 1, -1),
        arrays["y_test"],
    )


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write then rename, so concurrent workers never read a half-written cache; a read-only root is not fatal.

    Through :func:`write_bytes`, so the file gets the umask's mode: mkstemp's 0600 made a shared data root's
    cache unreadable to other users, who regenerated it on every load (hunt)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_bytes(path, buffer.getvalue())
    except (OSError, ConfigError) as e:  # ConfigError: a folder where the cache file goes
        log.warning("could not cache MNIST-1D at %s (%s); it will be regenerated next time", path, e)
