"""NTK-SAP: data-free finite-difference NTK-trace saliency, pruned in rounds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.data.pruning_data import PruningData
from autosparse.pruners import make_pruner, prune
from autosparse.pruners.ntk_sap import ntk_sap_scores


def lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def test_linear_model_by_hand() -> None:
    """For f(x) = (W ⊙ c) x the objective is Σ‖(εZ ⊙ c) x‖², so ∂/∂c_ij = 2ε² Σ_x (Z x)_i Z_ij x_j."""
    lin = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1]]))
    eps, n = 0.05, 6
    gen = torch.Generator().manual_seed(11)
    scores = ntk_sap_scores(lin, None, (3,), gen=gen, epsilon=eps, num_samples=n, reinit="none")
    # replay the same draws (in float32, whatever the model's dtype): the Gaussian inputs, then the perturbation
    replay = torch.Generator().manual_seed(11)
    x = torch.randn((n, 3), generator=replay).double()
    z = torch.randn((2, 3), generator=replay).double()
    zx = x @ z.T  # (n, 2)
    expected = (2 * eps**2 * torch.einsum("ni,ij,nj->ij", zx, z, x)).abs()
    torch.testing.assert_close(scores["weight"], expected)


def test_linear_model_scales_with_epsilon_squared() -> None:
    lin = nn.Linear(5, 4, bias=False).double()
    s1 = ntk_sap_scores(lin, None, (5,), gen=torch.Generator().manual_seed(0), epsilon=0.01, reinit="none")
    s2 = ntk_sap_scores(lin, None, (5,), gen=torch.Generator().manual_seed(0), epsilon=0.02, reinit="none")
    torch.testing.assert_close(s2["weight"], 4 * s1["weight"])


def test_scores_finite_nonnegative_and_seeded() -> None:
    net = lenet()
    pruner = make_pruner("ntk_sap", input_shape=(1, 28, 28))
    a = pruner.scores(net, None, seed=5)
    b = pruner.scores(net, None, seed=5)
    c = pruner.scores(net, None, seed=6)
    for n in a:
        assert torch.isfinite(a[n]).all() and (a[n] >= 0).all()
        assert a[n].shape == dict(net.named_parameters())[n].shape
        assert torch.equal(a[n], b[n])
    assert any(not torch.equal(a[n], c[n]) for n in a)
    assert all(float(a[n].sum()) > 0 for n in a)


def test_pruned_weights_score_zero_and_stay_pruned() -> None:
    net = lenet()
    masks = prune(net, "ntk_sap", density=0.05, input_shape=(1, 28, 28), rounds=2, seed=0)
    s = ntk_sap_scores(net, masks, (1, 28, 28), gen=torch.Generator().manual_seed(0), num_samples=8)
    for n in s:
        assert (s[n][~masks[n]] == 0).all()


def test_exact_count_deterministic_and_model_untouched() -> None:
    net = lenet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(4, 1, 28, 28)
    data = (x, torch.arange(4))
    m1 = prune(net, "ntk_sap", sparsity=0.999, data=data, seed=2, rounds=4)
    m2 = prune(net, "ntk_sap", sparsity=0.999, data=data, seed=2, rounds=4)
    assert m1.kept == 266
    assert all(torch.equal(m1[n], m2[n]) for n in m1)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert net.training  # mode untouched (default modules are in train mode)


def test_data_only_gives_the_shape() -> None:
    """Data-free: two datasets with the same shape and class count give the same mask."""
    net = lenet()
    d1 = PruningData([(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))], 10)
    d2 = PruningData([(torch.zeros(8, 1, 28, 28), torch.zeros(8, dtype=torch.long))], 10)
    pruner = make_pruner("ntk_sap", rounds=2)
    a, b = pruner.masks(net, d1, 0.01, seed=0), pruner.masks(net, d2, 0.01, seed=0)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_batchnorm_statistics_and_mode_untouched() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    net.eval()
    with torch.no_grad():
        net[1].running_mean.fill_(0.3)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for reinit in ("layer_std", "kaiming_normal", "none"):
        masks = prune(net, "ntk_sap", density=0.2, input_shape=(3, 8, 8), rounds=2, reinit=reinit, num_samples=6)
        assert masks.kept == round(0.2 * masks.total)
    s = make_pruner("ntk_sap", input_shape=(3, 8, 8), num_samples=6).scores(net, None)
    assert all(torch.isfinite(v).all() for v in s.values())
    assert not net.training and net[1].momentum == 0.1
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_errors() -> None:
    with pytest.raises(ConfigError, match="input_shape"):
        prune(lenet(), "ntk_sap", density=0.1)
    with pytest.raises(ConfigError):
        prune(lenet(), "ntk_sap", density=0.1, input_shape=(1, 28, 28), reinit="xavier")
    with pytest.raises(ConfigError):
        prune(lenet(), "ntk_sap", density=0.1, input_shape=(1, 28, 28), rounds=0)


def test_the_seed_draws_the_same_whatever_the_models_dtype() -> None:
    """Draws in the model's dtype made the seed's stream differ between a float32 and a float64 model
    with the same weights: 167 of 221 kept weights differed (helper)."""
    net = lenet()
    wide = lenet().double()
    wide.load_state_dict({k: v.double() for k, v in net.state_dict().items()})
    a = prune(net, "ntk_sap", density=0.05, input_shape=(1, 28, 28), rounds=2, seed=3)
    b = prune(wide, "ntk_sap", density=0.05, input_shape=(1, 28, 28), rounds=2, seed=3)
    assert all(torch.equal(a[n], b[n]) for n in a)
