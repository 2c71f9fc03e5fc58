"""The forward order of the prunable layers (autosparse.topology.call_order)."""

from __future__ import annotations

import torch
from torch import nn

from autosparse.core.layers import prunable_layers
from autosparse.topology.call_order import call_order, reached


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


def _names(model: nn.Module, x: torch.Tensor | None) -> tuple[list[str], str, str]:
    layers = prunable_layers(model)
    order = call_order(model, layers, x)
    return [layers[i].name for i in order.order], layers[order.first].name, layers[order.last].name


def test_the_forward_decides_and_a_skipped_layer_goes_last() -> None:
    model = Net()
    stats = model.bn.running_mean.clone()
    x = torch.randn(1, 8)
    before = torch.random.get_rng_state()
    assert _names(model, x) == (["body.weight", "head.weight", "aux.weight"], "body.weight", "head.weight")
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

    names, _, last = _names(Attn(), torch.randn(1, 4, 8))
    assert names == ["attn.in_proj_weight", "attn.out_proj.weight", "fc.weight"] and last == "fc.weight"


def test_without_an_input_or_a_forward_that_runs_it_is_registration_order() -> None:
    model = Net()
    registered = ["head.weight", "aux.weight", "body.weight"]
    assert _names(model, None) == (registered, "head.weight", "body.weight")
    assert _names(model, torch.randn(1, 5)) == (registered, "head.weight", "body.weight")  # the pass fails


def test_weights_read_without_calling_their_module_count() -> None:
    """A review's regressions of the first, module-hook version: layers run by `.forward(x)` fired no hook,
    so the first layer was taken for the output layer; a weight read by `F.linear` in a block that calls
    another submodule (Swin's qkv beside its cpb_mlp) read as never reached."""

    class Direct(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head, self.body = nn.Linear(16, 3), nn.Linear(8, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head.forward(torch.relu(self.body.forward(x)))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv, self.gate, self.out = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(nn.functional.linear(x, self.qkv.weight) * torch.sigmoid(self.gate(x)))

    assert _names(Direct(), torch.randn(1, 8)) == (["body.weight", "head.weight"], "body.weight", "head.weight")
    assert _names(Block(), torch.randn(1, 8))[0] == ["qkv.weight", "gate.weight", "out.weight"]


def test_a_branch_only_training_runs_is_reached_in_train_mode() -> None:
    class Aux(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.aux, self.head = nn.Linear(8, 8), nn.Linear(8, 3), nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.body(x))
            return self.head(h) + (self.aux(h) if self.training else 0)

    model = Aux()
    layers = prunable_layers(model)
    x = torch.randn(2, 8)
    assert reached(model, layers, x) == {0, 2} and reached(model, layers, x, train=True) == {0, 1, 2}
    assert _names(model, x) == (["body.weight", "aux.weight", "head.weight"], "body.weight", "head.weight")
