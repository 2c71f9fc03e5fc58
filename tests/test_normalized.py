"""Which layers feed a normalization layer, and that the θ0 rescaling leaves those alone."""

from __future__ import annotations

import torch
from torch import nn

from autosparse.api import prune
from autosparse.core.layers import prunable_layers
from autosparse.models import build_model
from autosparse.topology.normalized import normalized_layers

SHAPE = (1, 28, 28)


def test_conv_bn_layers_are_found_and_the_classifier_is_not() -> None:
    model = build_model("resnet20", SHAPE, 10, seed=0, width=0.25)
    before = {n: b.clone() for n, b in model.named_buffers()}
    model.train()
    found = normalized_layers(model, torch.randn(4, *SHAPE))
    names = [layer.name for layer in prunable_layers(model)]
    assert set(names) - found == {"fc.weight"}  # every conv (shortcuts included) feeds its BatchNorm
    assert model.training and all(torch.equal(before[n], b) for n, b in model.named_buffers())


def test_anything_between_layer_and_norm_means_not_normalized() -> None:
    """conv → ReLU → BN and a pre-norm residual stream are left out (conservative: keep the rescale)."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    assert normalized_layers(model, torch.randn(2, 1, 8, 8)) == {"3.weight"}
    assert normalized_layers(build_model("lenet_300_100", SHAPE, 10, seed=0), torch.randn(2, *SHAPE)) == set()
    vit = build_model("vit_tiny", SHAPE, 10, seed=0, depth=1, dim=32)
    assert normalized_layers(vit, torch.randn(2, *SHAPE)) == set()


def test_rescale_skips_normalized_layers_unless_asked() -> None:
    model = build_model("vgg11", SHAPE, 10, seed=0, width=0.125)
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(20, *SHAPE, generator=g), torch.arange(20) % 10)
    default = prune(model, "random", density=0.05, data=data, seed=0, rescale=True)
    assert default.init is not None and set(default.init.factors) == {"fc.weight"}
    everything = prune(model, "random", density=0.05, data=data, seed=0, rescale=True, rescale_normalized=True)
    assert everything.init is not None and len(everything.init.factors) == 9
    assert torch.equal(everything.init.factors["fc.weight"], default.init.factors["fc.weight"])
    assert all(torch.equal(default[n], everything[n]) for n in default)  # the masks themselves are the same


def test_the_probe_leaves_the_callers_model_as_it_was() -> None:
    # the probe's forward ran on the user's model: a call counter kept in a buffer counted it
    class Counting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.bn, self.fc2 = nn.Linear(20, 32), nn.BatchNorm1d(32), nn.Linear(32, 5)
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return self.fc2(torch.relu(self.bn(self.fc1(x))))

    net = Counting().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert normalized_layers(net, torch.randn(4, 20)) == {"fc1.weight"}
    prune(net, "autos", density=0.1, data=(torch.randn(40, 20), torch.randint(0, 5, (40,))))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the counter included
    assert net.training and net.bn.training
