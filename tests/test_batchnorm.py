"""Lagging running BatchNorm statistics are recomputed before a model is tested; others are left alone."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from autosparse.data import load_dataset
from autosparse.training.batchnorm import lagging_batchnorms, recalibrate_lagging_batchnorm
from autosparse.training.trainer import TrainConfig, evaluate, train


def _net(momentum: float | None) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2), nn.BatchNorm2d(8, momentum=momentum), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 13 * 13, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return load_dataset("fashion-mnist", n_train=1024, n_test=512, seed=0)


def test_only_momentum_below_the_default_lags() -> None:
    assert lagging_batchnorms(_net(0.01)) == ["1"] and lagging_batchnorms(_net(None)) == ["1"]
    assert lagging_batchnorms(_net(0.1)) == []
    untracked = _net(0.01)
    untracked[1] = nn.BatchNorm2d(8, momentum=0.01, track_running_stats=False)
    assert lagging_batchnorms(untracked) == []


def test_a_lagging_net_is_tested_with_the_training_sets_statistics(data) -> None:
    """After train(), the running mean is the mean of the BatchNorm's input over the training set
    under the trained weights (what momentum 0.01 never reached in 16 steps), and the reported
    accuracy is measured with it; the momentum is the model's own again."""
    model = _net(0.01)
    result = train(model, data, TrainConfig(epochs=2, num_threads=1))
    with torch.no_grad():
        inputs = model[0](data.x_train)  # every batch is 128 examples: the mean of batch means is this
    assert torch.allclose(model[1].running_mean, inputs.mean((0, 2, 3)), atol=1e-5)
    assert model[1].momentum == 0.01
    assert result.test_accuracy == evaluate(model, data.x_test, data.y_test)


def test_a_net_with_the_default_momentum_is_untouched(data) -> None:
    model = _net(0.1)
    train(model, data, TrainConfig(epochs=1, num_threads=1))
    before = copy.deepcopy(model.state_dict())
    assert recalibrate_lagging_batchnorm(model, data.x_train, 128, torch.device("cpu"), torch.float32) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _deep(momentum: float) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for c_in, c_out in ((1, 8), (8, 16), (16, 16)):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out, momentum=momentum), nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(16 * 4 * 4, 10))


def test_recalibration_lifts_a_net_whose_statistics_lag_far_behind(data) -> None:
    """Momentum 0.001 over 16 steps keeps the running statistics near their initial values; tested
    with them, three BatchNorms in a row compound the error and the trained net falls behind
    the same weights tested with the recomputed ones."""
    model = _deep(0.001)
    train(model, data, TrainConfig(epochs=2, num_threads=1))
    stale = copy.deepcopy(model)
    for m in stale.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()  # what 16 steps at momentum 0.001 leave, to within 2%
    good, bad = evaluate(model, data.x_test, data.y_test), evaluate(stale, data.x_test, data.y_test)
    assert good > bad + 0.05, (good, bad)  # 68.6% against 57.4% on this data


def test_recalibrating_between_epochs_leaves_the_training_as_it_was(data) -> None:
    """eval_every_epoch is cosmetic (it is hashed into no cell or run id), but the train-mode passes
    of a recalibration between epochs drew dropout masks from the training's stream, so every later
    draw moved: another training than the one the id names (hunt). The caller's stream is kept too."""

    def dropout_net() -> nn.Module:
        net = _net(0.01)
        net.insert(4, nn.Dropout(0.5))
        return net

    trained = []
    for every_epoch in (False, True):
        net = dropout_net()
        cfg = TrainConfig(epochs=3, batch_size=128, num_threads=1, eval_every_epoch=every_epoch)
        train(net, data, cfg)
        trained.append(net.state_dict())
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0])

    net = dropout_net().train()
    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    assert recalibrate_lagging_batchnorm(net, data.x_train[:256], 64, torch.device("cpu"), torch.float32) == 1
    assert torch.equal(torch.random.get_rng_state(), before)


def test_the_last_recalibration_follows_the_recipe_seed_not_the_callers_stream(data) -> None:
    """After training, the recalibration drew its dropout masks from the caller's stream: with a dropout
    before a lagging BatchNorm, the same training gave another accuracy after another torch.manual_seed,
    and the caller's stream moved (hunt)."""
    results = []
    for caller_seed in (0, 1):
        torch.manual_seed(5)
        net = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.5),
            nn.BatchNorm1d(64, momentum=0.01), nn.Linear(64, 10),
        )  # fmt: skip
        torch.manual_seed(caller_seed)
        before = torch.random.get_rng_state()
        result = train(net, data, TrainConfig(epochs=1, batch_size=128, num_threads=1))
        assert torch.equal(torch.random.get_rng_state(), before)
        results.append((result.test_accuracy, net[4].running_mean.clone()))
    assert results[0][0] == results[1][0] and torch.equal(results[0][1], results[1][1])


def test_recalibration_joins_a_last_batch_of_one_only_where_it_fails() -> None:
    """A last batch of one example ended the run in a raw ValueError where a BatchNorm sees one value per
    channel; joining it to the batch before everywhere moved the statistics of nets it never failed (review)."""
    cpu = torch.device("cpu")
    x = torch.randn(17, 3, 4, 4, generator=torch.Generator().manual_seed(0))

    def conv() -> nn.Module:  # 4x4 maps: one example is 16 values per channel, which BatchNorm takes
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, momentum=0.01))

    net = conv()
    want = copy.deepcopy(net)  # by hand: every batch as it comes, the last one of one example included
    assert recalibrate_lagging_batchnorm(net, x, 16, cpu, torch.float32) == 1
    torch.optim.swa_utils.update_bn([x[:16], x[16:]], want)
    assert torch.equal(net[1].running_mean, want[1].running_mean) and net[1].momentum == 0.01
    flat = nn.Sequential(nn.Flatten(), nn.Linear(48, 4), nn.BatchNorm1d(4, momentum=0.01))  # one value per channel
    assert recalibrate_lagging_batchnorm(flat, x, 16, cpu, torch.float32) == 1
    assert flat[2].momentum == 0.01 and bool(torch.isfinite(flat[2].running_var).all())
