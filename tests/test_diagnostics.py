"""The one summary of a mask, and the warning it gives: chance accuracy only when no path is left."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from autosparse.core.masks import Masks
from autosparse.topology.diagnostics import mask_diagnostics


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 3)
        self.branch = nn.Linear(3, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        return self.out(h + self.branch(h))


def _masks(model: nn.Module, empty: str) -> Masks:
    return Masks(
        {
            n: torch.zeros_like(p, dtype=torch.bool) if n == empty else torch.ones_like(p, dtype=torch.bool)
            for n, p in model.named_parameters()
            if n.endswith("weight")
        }
    )


def test_dead_branch_is_reported_without_claiming_chance_accuracy(caplog) -> None:
    model = _Residual()
    with caplog.at_level(logging.WARNING, logger="autosparse.topology.diagnostics"):
        diag = mask_diagnostics(model, _masks(model, "branch.weight"), (4,))
    assert diag["empty_layers"] == ["branch.weight"] and diag["log10_paths"] > 0
    [record] = caplog.records
    assert "paths remain elsewhere" in record.message and "chance" not in record.message


def test_a_cut_network_is_said_to_train_to_chance(caplog) -> None:
    model = _Residual()
    with caplog.at_level(logging.WARNING, logger="autosparse.topology.diagnostics"):
        diag = mask_diagnostics(model, _masks(model, "inp.weight"), (4,))
    assert diag["log10_paths"] == float("-inf")
    [record] = caplog.records
    assert "trains to chance accuracy" in record.message and "inp.weight" in record.message


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp, self.rnn, self.out = nn.Linear(4, 6), nn.LSTM(6, 6, batch_first=True), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.inp(x))
        return self.out(h[:, -1])


def test_an_empty_layer_before_an_unmodelled_op_claims_no_paths_elsewhere(caplog) -> None:
    """An emptied input layer before an LSTM was said to leave "paths elsewhere" (review): the path
    run does not model the LSTM, so it cannot tell."""
    model = _Recurrent()
    masks = Masks({"inp.weight": torch.zeros(6, 4, dtype=torch.bool), "out.weight": torch.ones(2, 6, dtype=torch.bool)})
    with caplog.at_level(logging.WARNING, logger="autosparse.topology.diagnostics"):
        diag = mask_diagnostics(model, masks, (3, 4))
    assert diag["paths"].startswith("approximate") and diag["empty_layers"] == ["inp.weight"]
    [record] = caplog.records
    assert "paths remain elsewhere" not in record.message and "is unknown" in record.message


def test_diagnostics_take_a_dict_and_a_wrong_shape_is_one_error() -> None:
    """mask_diagnostics refused a dict (its siblings take one); path_stats gave torch's raw shape error (helper)."""
    import autosparse
    from autosparse.core.errors import ConfigError

    m = autosparse.build_model("lenet5", (1, 28, 28), 10, seed=0)
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 10
    masks = autosparse.prune(m, "snip", density=0.1, data=(x, y), check=False)
    diag = autosparse.mask_diagnostics(m, dict(masks), (1, 28, 28), warn=False)
    assert diag["effective_params"] == autosparse.path_stats(m, masks, (1, 28, 28)).effective_params
    with pytest.raises(ConfigError, match=r"input_shape=\(3, 32, 32\).*without the batch dimension"):
        autosparse.path_stats(m, masks, (3, 32, 32))


def test_an_input_size_given_as_one_int_is_read_as_prune_reads_it() -> None:
    """`prune(input_shape=784)` works; the diagnostics said "unavailable ('int' object is not iterable)" (helper)."""
    model = _Residual()
    masks = _masks(model, "")
    import numpy as np

    want = mask_diagnostics(model, masks, (4,), warn=False)["log10_paths"]
    assert want > 0
    for size in (4, np.int64(4)):  # a numpy int too, as prune takes one (review)
        assert mask_diagnostics(model, masks, size, warn=False)["log10_paths"] == want


def test_an_input_shape_unlike_the_datas_is_said_when_the_diagnostics_cannot_run_on_it(caplog) -> None:
    """It overrides the data's shape for the path counts, which then read "unavailable" without a word (helper)."""
    import autosparse

    model = autosparse.build_model("mlp", (1, 8, 8), 10, seed=0)
    x, y = torch.randn(20, 1, 8, 8), torch.arange(20) % 10
    with caplog.at_level(logging.WARNING, logger="autosparse.pruners.entry"):
        masks = autosparse.prune(model, "snip", density=0.1, data=(x, y), input_shape=(7,))
    assert str(masks.meta["diagnostics"]["paths"]).startswith("unavailable")
    assert any("examples are (1, 8, 8): drop input_shape" in r.getMessage() for r in caplog.records)


def test_masks_of_another_model_are_refused_not_reported_clean() -> None:
    """Without an input shape the counts were the masks' own ("nothing collapsed"); with one the
    mismatch was swallowed into "paths: unavailable" (helper)."""
    from autosparse.core.errors import MaskError

    masks = Masks({"0.weight": torch.ones(4, 3, dtype=torch.bool)})
    other = nn.Sequential(nn.Linear(5, 4))
    for shape in (None, (5,)):
        with pytest.raises(MaskError, match="made for another width or input shape"):
            mask_diagnostics(other, masks, shape, warn=False)
