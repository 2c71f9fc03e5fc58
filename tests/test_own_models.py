"""Users' own modules at the edges: aliases, zero-size and one-logit layers, dense weights the
masks do not cover, scripted models, shapes given as ints, parametrizations with state.

Each case was a review's finding on 2026-12-04: a raw traceback, or a model changed or reported
wrongly without a word. Each now works or gives one error that names the fix.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import autosparse
from autosparse.core.errors import ConfigError, NoPrunableLayersError


def _batch(n: int = 16, features: int = 8, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


class Aliased(nn.Module):
    """One Linear registered under two names, as ``self.head = self.layers[-1]`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.alias = self.body
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


@pytest.mark.parametrize("method", ["ntk_sap", "prospr"])
def test_a_module_under_two_names_keeps_its_weight(method: str) -> None:
    """torch.func.functional_call left the aliased weight a plain tensor: NTK-SAP then raised KeyError
    after a false "computed by a torch parametrization" warning."""
    torch.manual_seed(0)
    model = Aliased()
    masks = autosparse.prune(model, method, density=0.2, data=_batch(), rounds=1)
    assert sorted(masks.to_dict()) == ["body.weight", "head.weight"]
    assert masks.kept == round(0.2 * masks.total)
    assert isinstance(model.body.weight, nn.Parameter)


def test_spectral_norm_state_is_left_as_it_was() -> None:
    """Reading a parametrized weight runs spectral_norm's power iteration in train mode, which rewrote
    the caller's `_u` / `_v` (prune promises to leave the model as it was)."""
    from torch.nn.utils.parametrizations import spectral_norm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 20), nn.ReLU(), spectral_norm(nn.Linear(20, 20)), nn.ReLU(), nn.Linear(20, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for method in ("random", "snip"):
        autosparse.prune(model, method, density=0.2, data=_batch())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


class WithEmptyLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.extra = nn.Linear(8, 0)
        self.b = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("method", ["random", "npb", "phew", "autos"])
def test_a_zero_size_layer_is_not_a_prunable_layer(method: str) -> None:
    """npb divided by zero, phew could not reshape, autos hit a math domain error."""
    torch.manual_seed(0)
    masks = autosparse.prune(WithEmptyLayer(), method, density=0.2, data=_batch())
    assert sorted(masks.to_dict()) == ["a.weight", "b.weight"] and masks.kept == round(0.2 * masks.total)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_a_model_of_zero_size_layers_only_says_so() -> None:
    with pytest.raises(NoPrunableLayersError, match="zero-size"):
        autosparse.prune(nn.Sequential(nn.Linear(8, 0)), "random", density=0.5)


def test_input_shape_as_an_int_is_one_axis_and_a_string_is_refused() -> None:
    """``input_shape=10`` failed after the mask was made ("'int' object is not iterable"); "10" was read (1, 0)."""
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))
    assert autosparse.prune(model, "synflow", density=0.2, input_shape=10).kept == 52
    for bad in ("10", (1.5,), (0,)):
        with pytest.raises(ConfigError, match="input_shape"):
            autosparse.prune(model, "random", density=0.2, input_shape=bad)


def test_one_logit_is_refused_naming_two_outputs() -> None:
    """Cross-entropy over one logit is 0: SNIP's "all scores are equal" blamed the init instead."""
    model = nn.Sequential(nn.Linear(8, 20), nn.ReLU(), nn.Linear(20, 1))
    x, _ = _batch()
    with pytest.raises(ConfigError, match="2 outputs"):
        autosparse.prune(model, "snip", density=0.2, data=(x, torch.zeros(16, dtype=torch.long)))


class WithBilinear(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.fc0 = nn.Linear(6, 6)
        self.bil = nn.Bilinear(6, 6, width)
        self.fc = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bil(self.fc0(x), x)))


def test_weights_of_layers_not_pruned_are_counted_in_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    """An nn.Bilinear's 1152 weights stayed dense under a report of density 0.05, without a word."""
    x, y = _batch(features=6)
    with caplog.at_level("WARNING", logger="autosparse"):
        masks = autosparse.prune(WithBilinear(), "snip", density=0.05, data=(x, y))
    assert "1152 weights in Bilinear layers are not pruned" in caplog.text
    assert sorted(masks.to_dict()) == ["fc.weight", "fc0.weight"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="autosparse"):  # another net with the same layer types is told too
        autosparse.prune(WithBilinear(width=8), "snip", density=0.05, data=(x, y))
    assert "288 weights in Bilinear layers are not pruned" in caplog.text


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_scripted_model_is_refused_naming_the_eager_one() -> None:
    scripted = torch.jit.script(nn.Sequential(nn.Linear(8, 20), nn.ReLU(), nn.Linear(20, 3)))
    with pytest.raises(NoPrunableLayersError, match="eager model"):
        autosparse.prune(scripted, "random", density=0.5)


class WithUnusedHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.aux = nn.Linear(8, 100)  # built, never called
        self.b = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def test_kept_weights_in_a_layer_the_forward_never_calls_are_named(caplog: pytest.LogCaptureFixture) -> None:
    """random spent 163 of 195 kept weights on an unused head; only the CLI's summary line said so."""
    with caplog.at_level("WARNING", logger="autosparse"):
        masks = autosparse.prune(WithUnusedHead(), "random", density=0.2, data=_batch())
    assert int(masks["aux.weight"].sum()) > 0
    assert "aux.weight keep weights, but no forward reads them, in eval or train mode" in caplog.text
    assert masks.meta["diagnostics"]["input_independent_layers"] == ["aux.weight"]
