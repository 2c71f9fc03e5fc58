"""Robust pruning at init: EOC rescaling of kept weights and stable-ResNet branch scaling."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from autosparse.core.errors import ConfigError, UnknownNameError
from autosparse.core.init_transform import InitTransform, fingerprint, rescale_factors, scale_branches
from autosparse.core.masks import Masks
from autosparse.pruners import available, make_pruner, prune
from autosparse.pruners.robust import branch_scales, residual_branch_ends


def rescale_weights(model: nn.Module, masks, granularity: str = "paper") -> dict[str, torch.Tensor]:
    """The factors in weight shape, 1 where pruned (what the paper's formula gives per weight)."""
    compact = rescale_factors(model, masks, granularity)
    return {n: torch.where(masks[n], f.expand(masks[n].shape), 1.0) for n, f in compact.items()}


def apply_rescale(model: nn.Module, masks, granularity: str = "paper") -> dict[str, torch.Tensor]:
    init = InitTransform(factors=rescale_factors(model, masks, granularity), fingerprint=fingerprint(model))
    factors = rescale_weights(model, masks, granularity)
    init.apply(model)
    return factors


def apply_stable_resnet(model: nn.Module) -> None:
    scale_branches(model, branch_scales(model))


def lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def lenet_data(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def random_mask(shape: tuple[int, ...], density: float, seed: int = 100) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < density


def test_rescale_restores_per_unit_preactivation_variance() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(256, 64, bias=False)
    keep = random_mask(tuple(lin.weight.shape), 0.1, seed=123)
    masks = {"weight": keep}
    x = torch.randn(20000, 256)
    dense_var = (x @ lin.weight.detach().T).var(dim=0)
    sparse = copy.deepcopy(lin)
    with torch.no_grad():
        sparse.weight.mul_(keep)
    sparse_var = (x @ sparse.weight.detach().T).var(dim=0)
    assert float((sparse_var / dense_var).mean()) < 0.2  # pruning 90% shrinks the variance ~10x

    factors = apply_rescale(lin, masks)
    with torch.no_grad():
        lin.weight.mul_(keep)
    rescaled_var = (x @ lin.weight.detach().T).var(dim=0)
    torch.testing.assert_close(rescaled_var, dense_var, rtol=0.1, atol=0.0)
    # exact identity behind it: the kept row energy equals the dense row energy
    assert factors["weight"][~keep].eq(1).all()


def test_rescale_formula_by_hand() -> None:
    lin = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0, 0.0], [1.0, 2.0, 2.0]]))
    keep = torch.tensor([[True, False, False], [False, True, True]])
    f = rescale_weights(lin, {"weight": keep})["weight"]
    # row 0: dense energy 25, kept 9 -> 5/3 ; row 1: dense 9, kept 8 -> 3/sqrt(8)
    expected = torch.tensor([[5 / 3, 1.0, 1.0], [1.0, 3 / 8**0.5, 3 / 8**0.5]], dtype=torch.float32)
    torch.testing.assert_close(f, expected)


def test_rescale_dense_is_identity_and_empty_unit_untouched() -> None:
    lin = nn.Linear(5, 3)
    keep = torch.ones(3, 5, dtype=torch.bool)
    keep[1] = False
    f = rescale_weights(lin, {"weight": keep})["weight"]
    torch.testing.assert_close(f, torch.ones(3, 5))


def test_conv_granularities() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 4, 3, bias=False)
    keep = random_mask(tuple(conv.weight.shape), 0.3, seed=2)
    w = conv.weight.detach().double()
    paper = rescale_weights(conv, {"weight": keep}, "paper")["weight"].double()
    unit = rescale_weights(conv, {"weight": keep}, "unit")["weight"].double()
    kept_paper = ((paper * w) ** 2 * keep).sum(dim=1)  # per (out channel, kernel position)
    groups_nonempty = keep.any(dim=1)
    torch.testing.assert_close(kept_paper[groups_nonempty], (w**2).sum(dim=1)[groups_nonempty], rtol=1e-5, atol=0)
    kept_unit = ((unit * w) ** 2 * keep).sum(dim=(1, 2, 3))
    torch.testing.assert_close(kept_unit, (w**2).sum(dim=(1, 2, 3)), rtol=1e-5, atol=0)
    with pytest.raises(ConfigError):
        rescale_factors(conv, {"weight": keep}, "layer")


def test_apply_rescale_through_torch_pruning_and_baked_zeros() -> None:
    net = lenet()
    masks = Masks(
        {
            n: random_mask(tuple(p.shape), 0.05, 100 + i)
            for i, (n, p) in enumerate(net.named_parameters())
            if "weight" in n
        }
    )
    plain, hooked = copy.deepcopy(net), copy.deepcopy(net)
    apply_rescale(plain, masks)
    init = InitTransform(factors=rescale_factors(net, masks, "paper"), fingerprint=fingerprint(net))
    masks.with_init(init).apply(hooked)  # weight_orig + weight_mask: the rescale acts on weight_orig
    hooked(torch.zeros(1, 784))  # torch pruning recomputes .weight from weight_orig in a pre-forward hook
    for i in (1, 3, 5):
        torch.testing.assert_close(hooked[i].weight, plain[i].weight * masks[f"{i}.weight"])
    baked = copy.deepcopy(net)
    with torch.no_grad():
        for i in (1, 3, 5):
            baked[i].weight.mul_(masks[f"{i}.weight"])
    with pytest.raises(ConfigError, match="θ0"):
        apply_rescale(baked, masks)


def test_an_initialisation_with_zeros_of_its_own_is_rescaled_as_theta0() -> None:
    """nn.init.sparse_ zeroes half of each column at θ0; magnitude prunes those zeros first, and the
    guard against baked-in masks (every pruned weight zero) refused the rescale (helper)."""
    torch.manual_seed(0)
    lin = nn.Linear(12, 64)
    nn.init.sparse_(lin.weight, sparsity=0.5)
    zeros = torch.nonzero(lin.weight.detach().flatten() == 0).squeeze(1)
    keep = torch.ones(768, dtype=torch.bool)
    keep[zeros[:230]] = False  # what magnitude prunes at 70% density: 230 of the 384 zeros
    keep = keep.view(64, 12)
    assert zeros.numel() == 384 and bool((lin.weight.detach()[~keep] == 0).all())
    rho = rescale_factors(nn.Sequential(lin), {"0.weight": keep}, "unit")["0.weight"]
    torch.testing.assert_close(rho, torch.ones_like(rho))  # the pruned zeros held no variance to restore


@pytest.mark.skipif("snip" not in available(), reason="needs the snip pruner")
def test_robust_pruner_exact_count_meta_and_prepare() -> None:
    net = lenet()
    data = lenet_data()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    m1 = prune(net, "robust", sparsity=0.999, data=data, seed=4)
    m2 = prune(net, "robust", sparsity=0.999, data=data, seed=4)
    base = prune(net, "snip", sparsity=0.999, data=data, seed=4)
    assert m1.kept == 266
    assert all(torch.equal(m1[n], m2[n]) and torch.equal(m1[n], base[n]) for n in m1)
    assert m1.init is not None and m1.init.factors and m1.meta["method"] == "robust"
    assert m1.init.granularity == "paper"
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())

    trained = copy.deepcopy(net)
    m1.apply(trained)
    trained(data[0])
    for i in (1, 3, 5):
        name = f"{i}.weight"
        w0, w = net[i].weight.detach(), trained[i].weight_orig.detach()
        assert torch.equal(w[~m1[name]], w0[~m1[name]])
        rows = m1[name].any(dim=1)
        energy = (trained[i].weight.detach() ** 2).sum(dim=1)
        torch.testing.assert_close(energy[rows], (w0**2).sum(dim=1)[rows])
    # masks of other methods change nothing but the masked weights
    assert base.init is None
    other = copy.deepcopy(net)
    assert base.prepare(other) is False
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), net.state_dict().values()))


def test_robust_over_data_free_base_needs_no_data() -> None:
    pruner = make_pruner("robust", base_method="magnitude")
    assert not pruner.data_dependent
    masks = prune(lenet(), "robust", density=0.01, base_method="magnitude", rescale_granularity="unit")
    assert masks.kept == round(0.01 * masks.total)
    assert masks.init is not None and masks.init.granularity == "unit"
    with pytest.raises(ConfigError):
        make_pruner("robust", base_method="robust")
    with pytest.raises(UnknownNameError):
        make_pruner("robust", base_method="magnitude", rescale_granularity="kernel")


class Block(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.b1 = Block(4, 4)
        self.b2 = Block(4, 8)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b2(self.b1(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))


def test_stable_resnet_finds_branches_and_scales_them() -> None:
    torch.manual_seed(0)
    net = TinyResNet().eval()
    assert residual_branch_ends(net) == ["b1.bn2", "b2.bn2"]
    x = torch.randn(2, 3, 8, 8)
    stable = copy.deepcopy(net)
    apply_stable_resnet(stable)
    apply_stable_resnet(stable)  # idempotent
    with torch.no_grad():
        h = net.stem(x)
        b = net.b1
        h = torch.relu(b.bn2(b.conv2(torch.relu(b.bn1(b.conv1(h))))) / 2**0.5 + h)
        b = net.b2
        h = torch.relu(b.bn2(b.conv2(torch.relu(b.bn1(b.conv1(h))))) / 2**0.5 + b.shortcut(h))
        expected = net.head(h.mean(dim=(2, 3)))
        torch.testing.assert_close(stable(x), expected)
        torch.testing.assert_close(copy.deepcopy(stable)(x), expected)  # hooks survive copies


@pytest.mark.skipif("snip" not in available(), reason="needs the snip pruner")
def test_sbp_sr_prunes_the_stable_network_and_leaves_caller_alone() -> None:
    torch.manual_seed(0)
    net = TinyResNet()
    data = (torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,)))
    masks = prune(net, "robust", density=0.1, data=data, stable_resnet=True, rescale=False, seed=0)
    assert masks.kept == round(0.1 * masks.total)
    assert masks.meta["stable_resnet"] is True and masks.init is not None and not masks.init.factors
    assert masks.init.branch_scale == {"b1.bn2": 1 / 2**0.5, "b2.bn2": 1 / 2**0.5}
    assert not any(m._forward_hooks for m in net.modules())  # caller's model has no hooks
    prepared = masks.apply(copy.deepcopy(net))
    assert prepared.b1.bn2._forward_hooks and prepared.b2.bn2._forward_hooks


def test_stable_resnet_rejects_plain_and_untraceable_models() -> None:
    with pytest.raises(ConfigError, match="not a ResNet"):
        apply_stable_resnet(lenet())

    class Dynamic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) + x if x.sum() > 0 else x  # data-dependent control flow

    with pytest.raises(ConfigError, match=r"torch\.fx"):
        apply_stable_resnet(Dynamic())
