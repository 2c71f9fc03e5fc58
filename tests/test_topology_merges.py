"""Plain or residual: whether a network adds two computed tensors (autosparse/topology/merges.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autosparse.models import build_model
from autosparse.topology.merges import ProbeError, residual_kind

SHAPE = (1, 28, 28)


def test_residual_nets_are_told_from_plain_ones() -> None:
    assert residual_kind(build_model("resnet20", SHAPE, 10, seed=0, width=0.25), SHAPE) is True
    assert residual_kind(build_model("vgg11", SHAPE, 10, seed=0, width=0.125), SHAPE) is False
    assert residual_kind(build_model("lenet_300_100", SHAPE, 10, seed=0), SHAPE) is False
    assert residual_kind(build_model("conv4", SHAPE, 10, seed=0, width=0.25), SHAPE) is False


class _Biased(nn.Module):
    """Adds a constant and a shape-derived number: not a skip connection."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x + 1.0) + x.shape[0]


class _Branchy(nn.Module):
    """Data-dependent control flow (which fx could not trace) around a skip connection."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return h + x if x.sum() <= 0 else h


def test_adding_constants_is_not_residual_and_a_failing_forward_is_unknown() -> None:
    assert residual_kind(_Biased(), (4,)) is False
    assert residual_kind(_Branchy(), (4,)) is True
    with pytest.raises(ProbeError):  # the forward fails: cannot tell
        residual_kind(_Biased(), (5,))


def test_the_probe_leaves_the_model_as_it_was() -> None:
    model = build_model("resnet20", SHAPE, 10, seed=0, width=0.25).train()
    frozen = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    frozen.eval()  # a user's frozen BatchNorm inside a training model stays frozen
    modes = {name: m.training for name, m in model.named_modules()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    residual_kind(model, SHAPE)
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm stats untouched
    assert torch.equal(torch.random.get_rng_state(), rng)


class _Doubling(nn.Module):
    """h + h doubles one tensor: not a skip connection."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return h + h


def test_adding_a_tensor_to_itself_is_not_a_skip_and_a_failure_names_its_cause() -> None:
    assert residual_kind(_Doubling(), (4,)) is False
    with pytest.raises(ProbeError, match=r"zero input of shape \(5,\)"):
        residual_kind(_Doubling(), (5,))
