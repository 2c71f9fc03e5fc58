"""The forward order of the prunable layers (autosparse.topology.call_order)."""

from __future__ import annotations

import torch
from torch import nn

from autosparse.core.layers import prunable_layers
from autosparse.topology.call_order import call_order


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(16, 3)  # registered first
        self.aux = nn.Linear(8, 5)  # never called
        self.body = nn.Linear(8, 16)
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm1d(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.bn(torch.relu(self.body(x)))))


def _names(model: nn.Module, x: torch.Tensor | None) -> tuple[list[str], str, int]:
    layers = prunable_layers(model)
    order = call_order(model, layers, x)
    return [layers[i].name for i in order.order], layers[order.last].name, order.called


def test_the_forward_decides_and_a_skipped_layer_goes_last() -> None:
    model = Net()
    stats = model.bn.running_mean.clone()
    x = torch.randn(1, 8)
    before = torch.random.get_rng_state()
    assert _names(model, x) == (["body.weight", "head.weight", "aux.weight"], "head.weight", 2)
    assert model.training and model.drop.training  # modes, statistics and the random stream as they were
    assert torch.equal(model.bn.running_mean, stats) and torch.equal(torch.random.get_rng_state(), before)


def test_a_wrapped_model_keeps_its_skipped_layer_last_not_first() -> None:
    wrapper = nn.Sequential(Net())
    assert _names(wrapper, torch.randn(1, 8))[0] == ["0.body.weight", "0.head.weight", "0.aux.weight"]


def test_attention_reads_its_out_proj_right_after_its_in_proj() -> None:
    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.fc = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.attn(x, x, x)[0].mean(1))

    names, last, called = _names(Attn(), torch.randn(1, 4, 8))
    assert names == ["attn.in_proj_weight", "attn.out_proj.weight", "fc.weight"] and last == "fc.weight"
    assert called == 3


def test_without_an_input_or_a_forward_that_runs_it_is_registration_order() -> None:
    model = Net()
    registered = ["head.weight", "aux.weight", "body.weight"]
    assert _names(model, None) == (registered, "body.weight", 3)
    assert _names(model, torch.randn(1, 5)) == (registered, "body.weight", 3)  # the wrong width: the pass fails
