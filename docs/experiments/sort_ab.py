"""One `autos` call on torchvision ResNet-18 (3x32x32, 1% density), for timing the whole process.

Why a script: docs/SPEED.md times it under ``farm-bench`` with ``AUTOSPARSE_RANK_SORT=packed`` and
``=radix`` alternated, so the ratio covers everything a user's call pays, start-up included.
"""

import torch

from autosparse import build_model, prune
from autosparse.data import load_dataset, pruning_batch

torch.set_num_threads(1)
model = build_model("tv:resnet18", (3, 32, 32), 10, seed=0)
data = pruning_batch(load_dataset("fake:cifar10", n_train=256, n_test=128), samples_per_class=10)
prune(model, "autos", density=0.01, data=data, seed=0)
