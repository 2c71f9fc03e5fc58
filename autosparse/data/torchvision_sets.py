"""CIFAR-10/100 and SVHN, read through torchvision's dataset classes (imported only when loading).

The raw arrays are read once (no per-sample transform); "not found" becomes an error naming the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from autosparse.core.errors import DatasetNotFoundError
from autosparse.data.dataset import Loader, RawSplits
from autosparse.data.registry import register_dataset
from autosparse.data.roots import resolve_data_root


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
                raise _not_found(name, data_root, reason, download) from e
            out += [x, y]
        return out[0], out[1], out[2], out[3]

    return loader


def _not_found(name: str, data_root: Path, reason: str, download: bool) -> DatasetNotFoundError:
    fix = (
        "check the network, or download the files yourself and pass --data-root DIR"
        if download
        else (
            f"pass --data-root DIR holding torchvision's {name} files, or let train, prune or bench download them "
            "with --download true (download=True in Python)"
        )
    )
    return DatasetNotFoundError(f"{name} not found in {data_root} ({reason}); {fix}")


def _locator(name: str, files: Callable[[Any], list[str]]) -> Callable[[Path | None], None]:
    """The check that torchvision's files ``files(tvd)`` (paths under the root) are there, none opened:
    the loader's own error when one is missing, without reading ~170 MB to say so."""

    def locate(root: Path | None) -> None:
        data_root = resolve_data_root(root)
        try:
            import torchvision.datasets as tvd
        except ImportError:  # pragma: no cover - the load says how to get it
            return
        missing = [f for f in files(tvd) if not (data_root / f).is_file()]
        if missing:
            raise _not_found(name, data_root, f"{missing[0]} is missing", download=False)

    return locate


def _cifar_files(cls_name: str) -> Callable[[Any], list[str]]:
    def files(tvd: Any) -> list[str]:
        cls = getattr(tvd, cls_name)
        return [f"{cls.base_folder}/{f}" for f, _ in [*cls.train_list, *cls.test_list]]

    return files


def _svhn_files(tvd: Any) -> list[str]:
    return [tvd.SVHN.split_list[split][1] for split in ("train", "test")]


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
    locate=_locator("cifar10", _cifar_files("CIFAR10")),
)(_torchvision_loader("cifar10", _cifar("CIFAR10")))

register_dataset(
    "cifar100",
    input_shape=(3, 32, 32),
    num_classes=100,
    description="CIFAR-100: 32x32 colour images, 100 fine classes (torchvision)",
    n_train=50000,
    n_test=10000,
    locate=_locator("cifar100", _cifar_files("CIFAR100")),
)(_torchvision_loader("cifar100", _cifar("CIFAR100")))

register_dataset(
    "svhn",
    input_shape=(3, 32, 32),
    num_classes=10,
    description="SVHN house numbers: 32x32 colour digits, 10 classes; train/test splits, no 'extra' (torchvision)",
    n_train=73257,
    n_test=26032,
    locate=_locator("svhn", _svhn_files),
)(_torchvision_loader("svhn", _svhn))
