"""MNIST-format datasets (Fashion-MNIST, MNIST) read straight from their IDX files.

An explicit root is the only place looked in; otherwise the system package (Debian's
``dataset-*``) and then the cache. torchvision is used only to download, never to read.
"""

from __future__ import annotations

import functools
import gzip
import logging
import math
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from autosparse.core.errors import DatasetNotFoundError
from autosparse.data.dataset import RawSplits
from autosparse.data.registry import register_dataset
from autosparse.data.roots import SYSTEM_DATASETS, resolve_data_root

log = logging.getLogger(__name__)

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, unzipped where its name ends in .gz (torchvision keeps both forms)."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) straight into a numpy array: no torchvision, ~0.3 s for 60k images."""
    try:
        with _open_binary(path) as f:
            buf = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetNotFoundError(
            f"cannot read {path} ({e}); delete it and reinstall or re-download the dataset"
        ) from e
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] != 0x08:
        raise DatasetNotFoundError(f"{path} is not an unsigned-byte IDX file; delete it and re-download the dataset")
    ndim = buf[3]
    if len(buf) < 4 + 4 * ndim:
        raise DatasetNotFoundError(
            f"{path} ends inside its IDX header: truncated; delete it and re-download the dataset"
        )
    dims = tuple(int(d) for d in np.frombuffer(buf, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise DatasetNotFoundError(
            f"{path} holds {data.size} bytes of data for dims {dims}: truncated or corrupt; delete it and re-download"
        )
    return data.reshape(dims)


def find_idx(
    dirs: Sequence[Path], name: str | None = None, others: list[tuple[Path, str]] | None = None
) -> dict[str, Path] | None:
    """The first directory holding all four IDX files (gzipped or not); with ``name``, the first
    whose files are not another MNIST-format dataset's (those are listed in ``others``)."""
    for d in dirs:
        found = {}
        for key, stem in IDX_FILES.items():
            for cand in (d / f"{stem}.gz", d / stem):
                if cand.is_file():
                    found[key] = cand
                    break
        if len(found) == len(IDX_FILES):
            other = _whose(name, found["y_test"]) if name else None
            if other is None:
                return found
            if others is not None:
                others.append((d, other))
    return None


#: the first test labels of each MNIST-format dataset: the files share their names, so only their contents tell them apart
TEST_LABELS_BEGIN = {
    "fashion-mnist": (9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5),
    "mnist": (7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6),
}


def _whose(name: str, test_labels: Path) -> str | None:
    """The other MNIST-format dataset whose files these are, or None (``name``'s, or a user's own).

    Why: a root folder holding four IDX files is read as any of these datasets, so `mnist` with the
    `--data-root` of Fashion-MNIST trained on Fashion-MNIST under MNIST's name (helper). Twelve bytes
    of the test labels are read.
    """
    try:
        with _open_binary(test_labels) as f:
            head = tuple(f.read(8 + 12)[8:])
    except (OSError, EOFError, zlib.error):
        return None  # read_idx says what is wrong with the file, when the data load
    return next((o for o, begin in TEST_LABELS_BEGIN.items() if o != name and head == begin), None)


def idx_dirs(root: Path, name: str, tv_class: str) -> list[Path]:
    """The folders under one data root that may hold a dataset's IDX files.

    torchvision's download layout is ``<root>/<Class>/raw``; a plain folder of the four files, or
    a ``<root>/<name>`` subfolder, works as well, so a copy from anywhere can be pointed at.
    """
    return [root, root / tv_class / "raw", root / name]


def _idx_files(
    name: str, tv_class: str, system_dir: str, apt_package: str | None
) -> Callable[[Path | None, bool], dict[str, Path]]:
    """The four IDX files of an MNIST-format dataset: explicit root, else the system package, else the
    cache (downloaded there if allowed); one function for the loader and the check that reads nothing."""

    def locate(root: Path | None, download: bool) -> dict[str, Path]:
        data_root = resolve_data_root(root)
        here = idx_dirs(data_root, name, tv_class)
        dirs = here if root is not None else [SYSTEM_DATASETS / system_dir, *here]
        others: list[tuple[Path, str]] = []
        files = find_idx(dirs, name, others)
        if files is None and download:
            _torchvision_download(tv_class, data_root, name)
            files = find_idx(here, name, others)
        if files is None and others:
            where, whose = others[0]
            begin = " ".join(map(str, TEST_LABELS_BEGIN[whose][:5]))
            raise DatasetNotFoundError(
                f"the IDX files in {where} are {whose}'s (their test labels begin {begin} …), not {name}'s, and "
                f"no folder looked in holds {name}'s ({', '.join(str(d) for d in dirs)}): point --data-root at them"
            )
        if files is None:
            fixes = []
            system = SYSTEM_DATASETS / system_dir
            if root is not None and find_idx([system], name, []) is not None:
                # the system package is installed: telling the user to install it sent them in a circle (helper)
                fixes.append(f"omit --data-root to read the installed copy in {system}")
            elif apt_package:
                fixes.append(f"apt-get install {apt_package}" + (" and omit --data-root" if root is not None else ""))
            fixes.append(f"pass --data-root DIR containing {IDX_FILES['x_train']}.gz and the other three IDX files")
            fixes.append(
                f"let train, prune or bench download it with --download true (download=True in Python) into {data_root}"
            )
            looked = ", ".join(str(d) for d in dirs)
            raise DatasetNotFoundError(f"{name} not found (looked in {looked}); " + ", or ".join(fixes))
        return files

    return locate


def _load_idx_dataset(
    locate: Callable[[Path | None, bool], dict[str, Path]], name: str, sizes: tuple[int, int]
) -> Callable[[Path | None, bool], RawSplits]:
    """Loader for an MNIST-format dataset whose files ``locate`` finds; ``sizes``: its published split."""

    def loader(root: Path | None, download: bool) -> RawSplits:
        files = locate(root, download)
        arrays = {k: read_idx(p) for k, p in files.items()}
        for split in ("train", "test"):  # e.g. the t10k labels copied over the train labels
            n_x, n_y = len(arrays[f"x_{split}"]), len(arrays[f"y_{split}"])
            if n_x != n_y:
                raise DatasetNotFoundError(
                    f"{files[f'x_{split}']} holds {n_x} images but {files[f'y_{split}']} {n_y} labels: the two files "
                    "are not a pair; delete them and reinstall or re-download the dataset"
                )
        x_train, x_test = arrays["x_train"], arrays["x_test"]
        if x_train.shape == x_test.shape and np.array_equal(x_train, x_test):
            # the test images copied over the training ones trained on the test set in silence (hunt)
            raise DatasetNotFoundError(
                f"{files['x_train']} holds the same images as {files['x_test']}: the training file is the test file "
                "(copied over it?); delete them and reinstall or re-download the dataset"
            )
        if (len(x_train), len(x_test)) != sizes:
            log.warning(
                "%s: %d training and %d test images where %s has %d and %d; these files are not the published "
                "split (cut, or replaced)",
                files["x_train"].parent,
                len(x_train),
                len(x_test),
                name,
                *sizes,
            )
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


_FMNIST = _idx_files("fashion-mnist", "FashionMNIST", "fashion-mnist", "dataset-fashion-mnist")
_MNIST = _idx_files("mnist", "MNIST", "mnist", None)

register_dataset(
    "fashion-mnist",
    input_shape=(1, 28, 28),
    num_classes=10,
    description="Zalando Fashion-MNIST: 28x28 greyscale clothing images, 10 classes",
    n_train=60000,
    n_test=10000,
    aliases=("fmnist", "fashion_mnist", "fashionmnist"),
    locate=functools.partial(_FMNIST, download=False),
)(_load_idx_dataset(_FMNIST, "fashion-mnist", (60000, 10000)))

register_dataset(
    "mnist",
    input_shape=(1, 28, 28),
    num_classes=10,
    description="MNIST handwritten digits: 28x28 greyscale, 10 classes",
    n_train=60000,
    n_test=10000,
    locate=functools.partial(_MNIST, download=False),
)(_load_idx_dataset(_MNIST, "mnist", (60000, 10000)))
