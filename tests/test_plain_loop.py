"""A user's own training loop gets the network the bench trains: prune → apply → optimiser.

Issue #14: the θ0 rescaling that keeps extreme masks trainable used to live in ``masks.meta``,
where only the project's own trainer looked. These tests use nothing of autosparse's training
code: ``autosparse.prune``, ``masks.apply`` (or ``Masks.load`` + ``apply``) and a torch loop.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import autosparse
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks
from autosparse.data import load_dataset
from autosparse.models import build_model
from autosparse.training.trainer import TrainConfig, evaluate, train

SHAPE = (1, 28, 28)
DEEP = {"widths": [100] * 6}  # deeper than any source MLP


@pytest.fixture(scope="module")
def data():
    return load_dataset("fashion-mnist", n_train=3000, n_test=1000, seed=0)


def _plain_train(model: torch.nn.Module, data, epochs: int, seed: int = 0) -> float:
    """SGD with Nesterov momentum and one-cycle, written the way a user would."""
    torch.manual_seed(seed)
    steps_per_epoch = -(-len(data.y_train) // 128)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data.y_train))
        for i in range(0, len(order), 128):
            idx = order[i : i + 128]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return evaluate(model, data.x_test, data.y_test)


def _pruned(data, density: float) -> tuple[torch.nn.Module, Masks]:
    model = build_model("mlp", SHAPE, 10, seed=0, **DEEP)
    masks = autosparse.prune(model, "autos", density=density, data=(data.x_train[:100], data.y_train[:100]), seed=0)
    return model, masks


@pytest.mark.slow
def test_plain_loop_reproduces_the_bench_accuracy_of_rescaled_autos() -> None:
    # 20k images: on 3k the two loops' data orders alone moved a 1%-dense deep MLP by up to 8 points
    # (both allocators; measured 2026-12-02), on 20k by 3
    torch.set_num_threads(1)
    data = load_dataset("fashion-mnist", n_train=20000, n_test=1000, seed=0)
    model, masks = _pruned(data, 0.01)
    assert masks.init is not None and masks.init.factors  # autos rescales by default
    bench_model = build_model("mlp", SHAPE, 10, seed=0, **DEEP)
    bench = train(bench_model, data, TrainConfig(epochs=4, num_threads=1), masks=masks).test_accuracy
    masks.apply(model)
    plain = _plain_train(model, data, epochs=4)
    for layer in prunable_layers(model):
        assert torch.all(layer.weight[~masks[layer.name]] == 0)
    assert bench > 0.5 and abs(plain - bench) < 0.05, (plain, bench)


def test_save_load_apply_train_equals_prune_apply_train(data, tmp_path) -> None:
    torch.set_num_threads(1)
    model, masks = _pruned(data, 0.01)
    masks.save(tmp_path / "m")
    again = build_model("mlp", SHAPE, 10, seed=0, **DEEP)
    masks.apply(model)
    Masks.load(tmp_path / "m").apply(again)
    small = type(data)(**{**vars(data), "x_train": data.x_train[:512], "y_train": data.y_train[:512]})
    _plain_train(model, small, epochs=1)
    _plain_train(again, small, epochs=1)
    for a, b in zip(prunable_layers(model), prunable_layers(again), strict=True):
        assert torch.equal(a.weight, b.weight), a.name
