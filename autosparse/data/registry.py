"""The dataset registry: one place where a dataset name becomes a :class:`Dataset`.

Loaders are registered by name (:func:`register_dataset`) so the CLI, configs and the bench discover
them; ``fake:<name>`` gives seeded random data with a registered dataset's shape. A missing dataset
is a :class:`~autosparse.core.errors.DatasetNotFoundError` that says how to get it.
"""

from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from autosparse.core.errors import ConfigError, UnknownNameError, closest_name
from autosparse.data.convert import to_dataset
from autosparse.data.dataset import Dataset, DatasetInfo, Loader
from autosparse.data.fake import FAKE_PREFIX, fake_dataset, fake_info

log = logging.getLogger(__name__)


#: ``locate(root)``: raise the loader's "not found" error when the files it reads are not there (none read)
Locator = Callable[[Path | None], object]


@dataclass(frozen=True)
class _Spec:
    info: DatasetInfo
    loader: Loader
    locate: Locator | None = None  # None: the loader needs no files (generated or bundled data)


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
    locate: Locator | None = None,
) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader(root, download) -> (x_train, y_train, x_test, y_test)``; ``locate``
    checks its files are there without reading them (:func:`check_dataset_files`).

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
        _REGISTRY[key] = _Spec(info, loader, locate)
        for alias in aliases:
            _ALIASES[alias.lower()] = key
        return loader

    return deco


def available_datasets(include_fake: bool = False) -> list[str]:
    """Canonical dataset names (``fake:<name>`` variants too if asked)."""
    names = sorted(_REGISTRY)
    return names + [FAKE_PREFIX + n for n in names] if include_fake else names


def check_subset_sizes(dataset: str, n_train: int | None, n_test: int | None) -> None:
    """Refuse subset sizes the dataset cannot give, from its nominal sizes (nothing is loaded).

    Why here: a grid (``gen``, ``bench``) failed every one of its runs on them, after the data had
    loaded; ``--check`` called it valid.
    """
    base, fake = _canonical(dataset)
    info = _REGISTRY[base].info
    for name, n, have in (("n_train", n_train, info.n_train), ("n_test", n_test, info.n_test)):
        if n is None:
            continue
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:  # numpy ints as the loader (hunt)
            raise ConfigError(f"{name} must be a positive number of examples (or omitted: all), got {n!r}")
        if have is not None and n > have and not fake:  # fake data comes in any size
            raise ConfigError(f"{name}={n} is more than {dataset}'s {have} examples; pass 1..{have} or omit it")


def check_dataset_files(name: str, root: str | Path | None = None, *, download: bool = False) -> None:
    """Raise the loader's own "not found" error if ``name``'s files are missing, reading none of them.

    Why: a bench grid on a dataset without its files failed every cell with that same error, one
    after the other, and ``--check`` had called it valid. Only the files' presence is looked at
    (cheap enough for ``--check``); a corrupt file is still found when the data load. With
    ``download`` a run fetches what is missing, so nothing is refused (and nothing fetched) here.
    """
    base, fake = _canonical(name)
    spec = _REGISTRY[base]
    if not fake and not download and spec.locate is not None:
        spec.locate(Path(root).expanduser() if root is not None else None)


def canonical_dataset(name: str) -> str:
    """The registered name ``name`` spells (``Fashion-MNIST``, ``fmnist`` → ``fashion-mnist``; a
    ``fake:`` prefix kept). Why: a name hashed into a run id must be one spelling, or the same run is
    generated and stored twice and a holdout filter matches only one of the copies."""
    base, fake = _canonical(name)
    return FAKE_PREFIX + base if fake else base


def _canonical(name: str) -> tuple[str, bool]:
    """Resolve aliases; returns (canonical base name, is_fake)."""
    if not isinstance(name, str):  # load_dataset(3) failed in str.strip (helper)
        raise ConfigError(
            f"a dataset is named by a string (`autosparse datasets` lists them), got a {type(name).__name__}; "
            "data of your own goes in autosparse.Dataset(name, x_train, y_train, x_test, y_test, classes, shape)"
        )
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
            near = closest_name(base, [*_REGISTRY, *_ALIASES])
            raise UnknownNameError(
                "dataset",
                name,
                available_datasets(),
                suggest=(FAKE_PREFIX + near if fake else near) if near else False,
                hint=f"prefix any of them with {FAKE_PREFIX!r} (e.g. fake:cifar10) for random data of that shape",
                aliases=_ALIASES,
            )
    return base, fake


def dataset_info(name: str) -> DatasetInfo:
    """Input shape, class count and description of a dataset, without loading it."""
    base, fake = _canonical(name)
    info = _REGISTRY[base].info
    return fake_info(info) if fake else info


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
        return fake_dataset(spec.info, n_train, n_test, seed)
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = spec.loader(Path(root).expanduser() if root is not None else None, download)
    ds = to_dataset(spec.info, x_tr, y_tr, x_te, y_te)
    seconds = time.perf_counter() - t0
    if n_train is not None or n_test is not None:
        full = f"{ds.n_train} / {ds.n_test}"
        ds = ds.subset(n_train, n_test, seed)
        log.info(
            "loaded %s in %.2fs: %d train / %d test (a stratified subset of %s)",
            base,
            seconds,
            ds.n_train,
            ds.n_test,
            full,
        )
    else:
        log.info("loaded %s (%d train / %d test) in %.2fs", base, ds.n_train, ds.n_test, seconds)
    return ds
