"""``fake:<name>``: seeded random data with a registered dataset's shape, for tests and smoke runs.

Needs no file on disk, so every command can be tried (and every test run) on a bare machine.
"""

from __future__ import annotations

import numbers
import zlib

import torch

from autosparse.core.errors import ConfigError
from autosparse.data.convert import to_dataset
from autosparse.data.dataset import Dataset, DatasetInfo

FAKE_PREFIX = "fake:"
FAKE_SIZES = (512, 256)  # (train, test): enough for a smoke run, small enough to be instant


def fake_dataset(info: DatasetInfo, n_train: int | None, n_test: int | None, seed: int) -> Dataset:
    """Random inputs with a class-dependent mean, so a smoke run can see the loss go down.

    The class prototypes depend only on the dataset name (a fake dataset is one fixed task);
    ``seed`` picks the samples.
    """
    for n in (n_train, n_test):
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral)):
            raise ConfigError(f"fake dataset sizes must be whole numbers of examples, got {n!r}")
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
    return to_dataset(fake_info(info, n_tr, n_te), x_tr, y_tr, x_te, y_te)


def fake_info(info: DatasetInfo, n_train: int = FAKE_SIZES[0], n_test: int = FAKE_SIZES[1]) -> DatasetInfo:
    """What ``fake:<name>`` is, from the registered dataset it imitates."""
    return DatasetInfo(
        FAKE_PREFIX + info.name,
        info.input_shape,
        info.num_classes,
        f"seeded random data shaped like {info.name} (for tests and smoke runs)",
        n_train,
        n_test,
    )
