"""Datasets as in-memory tensors, and the fixed batch that data-dependent pruners see.

Every dataset autosparse trains on is small enough to live in memory, so a dataset here is five
tensors, already converted and normalised once at load time: training then slices tensors instead
of running per-sample Python transforms, which is what dominates small-model training time on CPU.

Where the files come from is resolved in one place (:func:`cache_dir`, :func:`resolve_data_root`),
and a missing dataset is a :class:`~autosparse.core.errors.DatasetNotFoundError` that says how to get it:
nothing is ever downloaded unless the caller allowed it.

Loaders are registered by name (:func:`register_dataset`) so the CLI, configs and the bench discover
them; ``fake:<name>`` gives seeded random data with a registered dataset's shape for tests and smoke
runs without any file on disk.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
import random
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autosparse.core.errors import ConfigError, DatasetNotFoundError, UnknownNameError
from autosparse.data.pruning_data import PruningData

log = logging.getLogger(__name__)

__all__ = [
    "Dataset",
    "DatasetInfo",
    "PruningData",
    "TensorBatches",
    "available_datasets",
    "cache_dir",
    "dataset_info",
    "default_data_root",
    "load_dataset",
    "pruning_batch",
    "register_dataset",
    "resolve_data_root",
    "stratified_indices",
]

FAKE_PREFIX = "fake:"
FAKE_SIZES = (512, 256)  # (train, test): enough for a smoke run, small enough to be instant
SYSTEM_DATASETS = Path("/usr/share/datasets")  # where Debian's dataset-* packages install

ArrayLike = np.ndarray | torch.Tensor
RawSplits = tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike]  # x_train, y_train, x_test, y_test
Loader = Callable[[Path | None, bool], RawSplits]


# --------------------------------------------------------------------------------------------
# Where files live
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The one cache directory autosparse writes to: ``$AUTOSPARSE_CACHE`` or ``~/.cache/autosparse``.

    Read on every call (not at import) so a test or a job script can redirect it with the
    environment variable alone.
    """
    env = os.environ.get("AUTOSPARSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "autosparse"


def default_data_root() -> Path:
    """Where datasets are downloaded to and generated datasets cached when no root is given."""
    return cache_dir() / "data"


def resolve_data_root(root: str | Path | None = None) -> Path:
    """An explicit ``root`` (``--data-root``) wins; otherwise the default under the cache dir."""
    return Path(root).expanduser() if root is not None else default_data_root()


# --------------------------------------------------------------------------------------------
# The dataset object
# --------------------------------------------------------------------------------------------


@dataclass(repr=False)
class Dataset:
    """A classification dataset held as tensors.

    ``x`` is float32 of shape ``(N, *input_shape)``, normalised per channel with the *full*
    training set's mean and std (kept in ``mean``/``std``), so a subset is preprocessed exactly
    like the whole dataset; ``y`` is int64 class indices in ``[0, num_classes)``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if tuple(x.shape[1:]) != self.input_shape:
                raise ValueError(
                    f"{self.name}: x_{split} has shape {tuple(x.shape)}, expected (N, *{self.input_shape})"
                )
            if y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(f"{self.name}: y_{split} has shape {tuple(y.shape)} for {x.shape[0]} inputs")

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def __repr__(self) -> str:  # the dataclass default would print every tensor
        return (
            f"Dataset({self.name!r}, train={self.n_train}, test={self.n_test}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Dataset:
        """A stratified, seeded subset (``None`` keeps a split whole).

        Train and test draw from independent streams of the same seed, so changing ``n_train``
        never changes which test examples are chosen.
        """
        tr = _subset_index(self.y_train, n_train, self.num_classes, seed, 0, f"{self.name} train")
        te = _subset_index(self.y_test, n_test, self.num_classes, seed, 1, f"{self.name} test")
        return Dataset(
            name=self.name,
            x_train=self.x_train if tr is None else self.x_train[tr],
            y_train=self.y_train if tr is None else self.y_train[tr],
            x_test=self.x_test if te is None else self.x_test[te],
            y_test=self.y_test if te is None else self.y_test[te],
            num_classes=self.num_classes,
            input_shape=self.input_shape,
            mean=self.mean,
            std=self.std,
            description=self.description,
        )

    def to(self, device: torch.device | str) -> Dataset:
        """Move every tensor once (e.g. to the GPU) so batches are slices, not host-to-device copies."""
        return Dataset(
            self.name,
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_test.to(device),
            self.y_test.to(device),
            self.num_classes,
            self.input_shape,
            self.mean,
            self.std,
            self.description,
        )

    def train_loader(
        self, batch_size: int, shuffle: bool = True, seed: int = 0, *, drop_last: bool = False
    ) -> TensorBatches:
        return TensorBatches(self.x_train, self.y_train, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)

    def test_loader(self, batch_size: int = 1024) -> TensorBatches:
        return TensorBatches(self.x_test, self.y_test, batch_size, shuffle=False)


class TensorBatches:
    """A DataLoader replacement over in-memory tensors: one index permutation per epoch, no workers.

    The generator is created once, so successive epochs get different (but reproducible) orders.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self._gen = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        n = int(self.x.shape[0])
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = int(self.x.shape[0])
        order = torch.randperm(n, generator=self._gen).to(self.x.device) if self.shuffle else None
        for b in range(len(self)):
            sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, n))
            if order is None:
                yield self.x[sl], self.y[sl]
            else:
                idx = order[sl]
                yield self.x[idx], self.y[idx]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset without loading it (shapes for building a model, nominal sizes)."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    description: str
    n_train: int | None = None
    n_test: int | None = None
    aliases: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Spec:
    info: DatasetInfo
    loader: Loader


_REGISTRY: dict[str, _Spec] = {}
_ALIASES: dict[str, str] = {}


def register_dataset(
    name: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    description: str = "",
    n_train: int | None = None,
    n_test: int | None = None,
    aliases: Sequence[str] = (),
) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader(root, download) -> (x_train, y_train, x_test, y_test)``.

    The loader returns raw arrays (any numeric dtype, shape ``(N, *input_shape)``); conversion to
    float32, normalisation and subsetting are done once by :func:`load_dataset`, so every dataset
    is preprocessed the same way. Shape and class count are declared up front because models are
    built (and ``fake:`` data made) without loading anything.
    """
    key = name.lower()
    if key.startswith(FAKE_PREFIX):
        raise ValueError(f"dataset names may not start with {FAKE_PREFIX!r}")

    def deco(loader: Loader) -> Loader:
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"dataset {name!r} registered twice")
        info = DatasetInfo(
            key, tuple(int(s) for s in input_shape), int(num_classes), description, n_train, n_test, tuple(aliases)
        )
        _REGISTRY[key] = _Spec(info, loader)
        for alias in aliases:
            _ALIASES[alias.lower()] = key
        return loader

    return deco


def available_datasets(include_fake: bool = False) -> list[str]:
    """Canonical dataset names (``fake:<name>`` variants too if asked)."""
    names = sorted(_REGISTRY)
    return names + [FAKE_PREFIX + n for n in names] if include_fake else names


def _canonical(name: str) -> tuple[str, bool]:
    """Resolve aliases; returns (canonical base name, is_fake)."""
    raw = name.strip().lower()
    fake = raw.startswith(FAKE_PREFIX)
    base = raw[len(FAKE_PREFIX) :] if fake else raw
    base = _ALIASES.get(base, base)
    if base not in _REGISTRY:
        # "fashion_mnist", "Fashion-MNIST", "cifar-10": spelling variants of a registered name
        squashed = base.replace("_", "").replace("-", "")
        for key in list(_REGISTRY) + list(_ALIASES):
            if key.replace("_", "").replace("-", "") == squashed:
                base = _ALIASES.get(key, key)
                break
        else:
            raise UnknownNameError(
                "dataset",
                name,
                available_datasets(),
                hint=f"prefix any of them with {FAKE_PREFIX!r} (e.g. fake:cifar10) for random data of that shape",
            )
    return base, fake


def dataset_info(name: str) -> DatasetInfo:
    """Input shape, class count and description of a dataset, without loading it."""
    base, fake = _canonical(name)
    info = _REGISTRY[base].info
    if not fake:
        return info
    return DatasetInfo(
        FAKE_PREFIX + base,
        info.input_shape,
        info.num_classes,
        f"seeded random data shaped like {base} (for tests and smoke runs)",
        FAKE_SIZES[0],
        FAKE_SIZES[1],
    )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    download: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a dataset by name as normalised in-memory tensors.

    ``root`` is the ``--data-root``: when given it is the only place looked in (and downloaded
    to), so an explicit root never silently picks up another copy. ``n_train``/``n_test`` take a
    stratified subset chosen by ``seed`` (for ``fake:`` data they are the generated sizes).
    """
    base, fake = _canonical(name)
    spec = _REGISTRY[base]
    if fake:
        return _fake_dataset(spec.info, n_train, n_test, seed)
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = spec.loader(Path(root).expanduser() if root is not None else None, download)
    ds = _to_dataset(spec.info, x_tr, y_tr, x_te, y_te)
    log.info("loaded %s (%d train / %d test) in %.2fs", base, ds.n_train, ds.n_test, time.perf_counter() - t0)
    if n_train is not None or n_test is not None:
        ds = ds.subset(n_train, n_test, seed)
    return ds


def _as_tensor(a: ArrayLike) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:  # e.g. np.frombuffer over file bytes; torch wants to own writable memory
        a = a.copy()
    return torch.from_numpy(a)


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean/std (channel = dim 1); a flat feature vector counts as one channel.

    Accumulated in float64 over chunks of samples: exact enough that 50k CIFAR images give a
    double-precision reference's numbers, without ever holding a float64 copy of the dataset.
    """
    if x.dim() == 2:
        x = x.unsqueeze(1)
    n, c = int(x.shape[0]), int(x.shape[1])
    if x.dtype == torch.uint8:
        # image files: a 256-bin histogram per channel gives exact statistics ~10x faster than summing
        values = torch.arange(256, dtype=torch.float64)
        hists = [torch.bincount(x[:, k].reshape(-1), minlength=256).double() for k in range(c)]
        means = torch.stack([(h * values).sum() / h.sum() for h in hists])
        var = torch.stack([(h * (values - m) ** 2).sum() / h.sum() for h, m in zip(hists, means)])
        return means, var.sqrt().clamp_min(1e-12)
    per_sample = max(1, x[0].numel())
    step = max(1, (1 << 22) // per_sample)
    reduce_dims = (0, *range(2, x.dim()))
    total = torch.zeros(c, dtype=torch.float64)
    for i in range(0, n, step):
        total += x[i : i + step].double().sum(dim=reduce_dims)
    count = n * (per_sample // c)
    mean = total / count
    view = (1, c) + (1,) * (x.dim() - 2)
    sq = torch.zeros(c, dtype=torch.float64)
    for i in range(0, n, step):
        sq += ((x[i : i + step].double() - mean.view(view)) ** 2).sum(dim=reduce_dims)
    std = (sq / count).sqrt().clamp_min(1e-12)
    return mean, std


def _normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    shape = (1, -1) + (1,) * (x.dim() - 2) if x.dim() > 2 else (1, 1)
    out = x.to(torch.float32)
    if out.data_ptr() == x.data_ptr():  # already float32: do not modify the loader's array in place
        out = out.clone()
    return out.sub_(mean.float().view(shape)).div_(std.float().view(shape))


def _to_dataset(info: DatasetInfo, x_tr: ArrayLike, y_tr: ArrayLike, x_te: ArrayLike, y_te: ArrayLike) -> Dataset:
    xt, xv = _as_tensor(x_tr), _as_tensor(x_te)
    xt = xt.reshape(xt.shape[0], *info.input_shape)
    xv = xv.reshape(xv.shape[0], *info.input_shape)
    mean, std = _channel_stats(xt)
    yt, yv = _as_tensor(y_tr).long().reshape(-1), _as_tensor(y_te).long().reshape(-1)
    for split, y in (("train", yt), ("test", yv)):
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= info.num_classes):
            raise DatasetNotFoundError(
                f"{info.name} {split} labels span [{int(y.min())}, {int(y.max())}], expected [0, {info.num_classes}); "
                "the files are not this dataset or are corrupt — delete them and reinstall or re-download"
            )
    return Dataset(
        info.name,
        _normalise(xt, mean, std),
        yt,
        _normalise(xv, mean, std),
        yv,
        info.num_classes,
        info.input_shape,
        tuple(float(m) for m in mean),
        tuple(float(s) for s in std),
        info.description,
    )


# --------------------------------------------------------------------------------------------
# Subsets and the pruning batch
# --------------------------------------------------------------------------------------------


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, stream]))


def stratified_indices(y: torch.Tensor, n: int, num_classes: int, seed: int = 0, stream: int = 0) -> torch.Tensor:
    """``n`` indices whose class proportions match ``y``'s (largest-remainder rounding), seeded.

    Returned sorted, so a subset keeps the dataset's original order and the same (n, seed)
    always selects the same examples.
    """
    labels = y.cpu().numpy()
    counts = np.bincount(labels, minlength=num_classes)
    total = int(counts.sum())
    exact = counts * (n / total)
    take = np.floor(exact).astype(np.int64)
    remainder = n - int(take.sum())
    if remainder:
        # largest fractional part first; ties to the lower class index (stable sort)
        order = np.argsort(-(exact - take), kind="stable")
        take[order[:remainder]] += 1
    rng = _rng(seed, stream)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False) for c, k in enumerate(take) if k > 0]
    idx = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
    return torch.from_numpy(idx.astype(np.int64)).to(y.device)


def _subset_index(
    y: torch.Tensor, n: int | None, num_classes: int, seed: int, stream: int, what: str
) -> torch.Tensor | None:
    if n is None:
        return None
    n = int(n)
    total = int(y.shape[0])
    if n <= 0 or n > total:
        raise ConfigError(f"{what} subset of {n} examples is impossible: it has {total}; pass 1..{total} or omit it")
    if n == total:
        return None
    return stratified_indices(y, n, num_classes, seed, stream)


def pruning_batch(
    dataset: Dataset, *, samples_per_class: int = 10, seed: int = 0, batch_size: int | None = None
) -> PruningData:
    """A fixed, class-balanced set of training examples for data-dependent pruners and features.

    ``samples_per_class`` examples of every class (GraSP's and SynFlow's recipe), chosen by
    ``seed`` and then shuffled so any split into batches of ``batch_size`` mixes classes. Fixed
    rather than a live loader so the same seed reproduces the same scores and the same features.
    """
    if samples_per_class <= 0:
        raise ConfigError(f"samples_per_class must be positive, got {samples_per_class}")
    if batch_size is not None and batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    labels = dataset.y_train.cpu().numpy()
    rng = _rng(seed, 2)
    picked = []
    for c in range(dataset.num_classes):
        pool = np.flatnonzero(labels == c)
        if len(pool) < samples_per_class:
            log.warning(
                "%s has only %d training examples of class %d (asked for %d per class); using all of them",
                dataset.name,
                len(pool),
                c,
                samples_per_class,
            )
        picked.append(rng.choice(pool, size=min(samples_per_class, len(pool)), replace=False))
    idx = np.concatenate(picked)
    if idx.size == 0:
        raise ConfigError(f"{dataset.name} has no training examples to build a pruning batch from")
    idx = idx[rng.permutation(idx.size)]
    index = torch.from_numpy(idx.astype(np.int64)).to(dataset.y_train.device)
    x, y = dataset.x_train[index], dataset.y_train[index]
    size = int(idx.size) if batch_size is None else int(batch_size)
    batches = [(x[i : i + size], y[i : i + size]) for i in range(0, int(idx.size), size)]
    return PruningData(batches, dataset.num_classes)


# --------------------------------------------------------------------------------------------
# fake:<name>
# --------------------------------------------------------------------------------------------


def _fake_dataset(info: DatasetInfo, n_train: int | None, n_test: int | None, seed: int) -> Dataset:
    """Random inputs with a class-dependent mean, so a smoke run can see the loss go down.

    The class prototypes depend only on the dataset name (a fake dataset is one fixed task);
    ``seed`` picks the samples.
    """
    n_tr = FAKE_SIZES[0] if n_train is None else int(n_train)
    n_te = FAKE_SIZES[1] if n_test is None else int(n_test)
    if n_tr <= 0 or n_te <= 0:
        raise ConfigError(f"fake dataset sizes must be positive, got n_train={n_tr}, n_test={n_te}")
    task_seed = zlib.crc32(info.name.encode())
    protos = torch.randn((info.num_classes, *info.input_shape), generator=torch.Generator().manual_seed(task_seed))
    gen = torch.Generator().manual_seed(int(seed) & 0xFFFFFFFFFFFF)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % info.num_classes  # balanced classes
        y = y[torch.randperm(n, generator=gen)]
        x = 0.5 * protos[y] + torch.randn((n, *info.input_shape), generator=gen)
        return x, y

    x_tr, y_tr = draw(n_tr)
    x_te, y_te = draw(n_te)
    fake_info = DatasetInfo(FAKE_PREFIX + info.name, info.input_shape, info.num_classes, "", n_tr, n_te)
    ds = _to_dataset(fake_info, x_tr, y_tr, x_te, y_te)
    ds.description = f"seeded random data shaped like {info.name} (for tests and smoke runs)"
    return ds


# --------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) straight into a numpy array: no torchvision, ~0.3 s for 60k images."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            buf = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetNotFoundError(
            f"cannot read {path} ({e}); delete it and reinstall or re-download the dataset"
        ) from e
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] != 0x08:
        raise DatasetNotFoundError(f"{path} is not an unsigned-byte IDX file; delete it and re-download the dataset")
    ndim = buf[3]
    dims = tuple(int(d) for d in np.frombuffer(buf, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise DatasetNotFoundError(
            f"{path} holds {data.size} bytes of data for dims {dims}: truncated or corrupt; delete it and re-download"
        )
    return data.reshape(dims)


def _find_idx(dirs: Sequence[Path]) -> dict[str, Path] | None:
    """The first directory holding all four IDX files (gzipped or not)."""
    for d in dirs:
        found = {}
        for key, stem in IDX_FILES.items():
            for cand in (d / f"{stem}.gz", d / stem):
                if cand.is_file():
                    found[key] = cand
                    break
        if len(found) == len(IDX_FILES):
            return found
    return None


def _load_idx_dataset(
    name: str, tv_class: str, system_dir: str, apt_package: str | None
) -> Callable[[Path | None, bool], RawSplits]:
    """Loader for an MNIST-format dataset: explicit root, else the system package, else the cache."""

    def loader(root: Path | None, download: bool) -> RawSplits:
        data_root = resolve_data_root(root)
        # torchvision's download layout is <root>/<Class>/raw; a plain directory of the four files also works
        here = [data_root, data_root / tv_class / "raw", data_root / name]
        dirs = here if root is not None else [SYSTEM_DATASETS / system_dir, *here]
        files = _find_idx(dirs)
        if files is None and download:
            _torchvision_download(tv_class, data_root, name)
            files = _find_idx(here)
        if files is None:
            fixes = []
            if apt_package:
                fixes.append(f"apt-get install {apt_package}" + (" and omit --data-root" if root is not None else ""))
            fixes.append(f"pass --data-root DIR containing {IDX_FILES['x_train']}.gz and the other three IDX files")
            fixes.append(f"allow download with --download (download=True) into {data_root}")
            looked = ", ".join(str(d) for d in dirs)
            raise DatasetNotFoundError(f"{name} not found (looked in {looked}); " + ", or ".join(fixes))
        arrays = {k: read_idx(p) for k, p in files.items()}
        return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]

    return loader


def _torchvision_download(tv_class: str, data_root: Path, name: str) -> None:
    try:
        import torchvision.datasets as tvd
    except ImportError as e:  # pragma: no cover - torchvision is a dependency
        raise DatasetNotFoundError(f"downloading {name} needs torchvision: pip install torchvision") from e
    log.info("downloading %s to %s", name, data_root)
    try:
        getattr(tvd, tv_class)(str(data_root), train=True, download=True)
        getattr(tvd, tv_class)(str(data_root), train=False, download=True)
    except (RuntimeError, OSError) as e:
        raise DatasetNotFoundError(
            f"downloading {name} to {data_root} failed ({str(e).strip().splitlines()[0]}); check the network, "
            f"or put the files there yourself and pass --data-root"
        ) from e


register_dataset(
    "fashion-mnist",
    input_shape=(1, 28, 28),
    num_classes=10,
    description="Zalando Fashion-MNIST: 28x28 greyscale clothing images, 10 classes",
    n_train=60000,
    n_test=10000,
    aliases=("fmnist", "fashion_mnist", "fashionmnist"),
)(_load_idx_dataset("fashion-mnist", "FashionMNIST", "fashion-mnist", "dataset-fashion-mnist"))

register_dataset(
    "mnist",
    input_shape=(1, 28, 28),
    num_classes=10,
    description="MNIST handwritten digits: 28x28 greyscale, 10 classes",
    n_train=60000,
    n_test=10000,
)(_load_idx_dataset("mnist", "MNIST", "mnist", None))


# --------------------------------------------------------------------------------------------
# torchvision (CIFAR, SVHN)
# --------------------------------------------------------------------------------------------


def _torchvision_loader(name: str, open_split: Callable[[Any, str, bool, bool], tuple[Any, Any]]) -> Loader:
    """Wrap a torchvision dataset: read its raw arrays once, turn "not found" into a fix-naming error."""

    def loader(root: Path | None, download: bool) -> RawSplits:
        data_root = resolve_data_root(root)
        try:
            import torchvision.datasets as tvd
        except ImportError as e:  # pragma: no cover - torchvision is a dependency
            raise DatasetNotFoundError(f"{name} is read through torchvision: pip install torchvision") from e
        out: list[Any] = []
        for train in (True, False):
            try:
                x, y = open_split(tvd, str(data_root), train, download)
            except (RuntimeError, OSError) as e:
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                fix = (
                    "check the network, or download the files yourself and pass --data-root DIR"
                    if download
                    else f"allow download with --download (download=True), or pass --data-root DIR holding "
                    f"torchvision's {name} files"
                )
                raise DatasetNotFoundError(f"{name} not found in {data_root} ({reason}); {fix}") from e
            out += [x, y]
        return out[0], out[1], out[2], out[3]

    return loader


def _cifar(cls_name: str) -> Callable[[Any, str, bool, bool], tuple[Any, Any]]:
    def open_split(tvd: Any, root: str, train: bool, download: bool) -> tuple[Any, Any]:
        ds = getattr(tvd, cls_name)(root, train=train, download=download)
        return np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)), np.asarray(ds.targets, dtype=np.int64)

    return open_split


def _svhn(tvd: Any, root: str, train: bool, download: bool) -> tuple[Any, Any]:
    ds = tvd.SVHN(root, split="train" if train else "test", download=download)
    return ds.data, np.asarray(ds.labels, dtype=np.int64)


register_dataset(
    "cifar10",
    input_shape=(3, 32, 32),
    num_classes=10,
    description="CIFAR-10: 32x32 colour images, 10 classes (torchvision)",
    n_train=50000,
    n_test=10000,
)(_torchvision_loader("cifar10", _cifar("CIFAR10")))

register_dataset(
    "cifar100",
    input_shape=(3, 32, 32),
    num_classes=100,
    description="CIFAR-100: 32x32 colour images, 100 fine classes (torchvision)",
    n_train=50000,
    n_test=10000,
)(_torchvision_loader("cifar100", _cifar("CIFAR100")))

register_dataset(
    "svhn",
    input_shape=(3, 32, 32),
    num_classes=10,
    description="SVHN house numbers: 32x32 colour digits, 10 classes; train/test splits, no 'extra' (torchvision)",
    n_train=73257,
    n_test=26032,
)(_torchvision_loader("svhn", _svhn))


# --------------------------------------------------------------------------------------------
# MNIST-1D (generated locally)
# --------------------------------------------------------------------------------------------

MNIST1D_CACHE_VERSION = 1


def _mnist1d_args() -> dict[str, Any]:
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
        args = _mnist1d_args()
    except ImportError as e:
        raise DatasetNotFoundError("mnist1d needs the mnist1d package: pip install mnist1d") from e
    key = hashlib.sha256(json.dumps([MNIST1D_CACHE_VERSION, args], sort_keys=True).encode()).hexdigest()[:12]
    path = resolve_data_root(root) / "mnist1d" / f"mnist1d-{key}.npz"
    arrays: dict[str, np.ndarray] | None = None
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, ValueError, KeyError, zlib.error) as e:
            log.warning("ignoring unreadable MNIST-1D cache %s (%s); regenerating", path, e)
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
    """Write then rename, so concurrent workers never read a half-written cache; a read-only root is not fatal."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        log.warning("could not cache MNIST-1D at %s (%s); it will be regenerated next time", path, e)


# --------------------------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------------------------

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
