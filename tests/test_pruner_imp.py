"""The ``imp`` pruner: IRP behind ``autosparse.prune`` (its rounds are tested in test_irp.py)."""

from __future__ import annotations

import pytest
import torch

import autosparse
from autosparse.core.errors import ConfigError
from autosparse.pruners import make_pruner

QUICK = {"dataset": "digits", "n_train": 100, "epochs": 0.2}


def _model() -> torch.nn.Module:
    return autosparse.build_model("lenet_300_100", (1, 8, 8), 10, seed=0)


def test_scope_uniform_keeps_the_same_share_of_every_layer_and_erk_is_refused() -> None:
    """`scope` was accepted and ignored: every scope gave the global mask (helper)."""
    masks = autosparse.prune(_model(), "imp", density=0.3, scope="uniform", **QUICK)
    assert [round(float(m.float().mean()), 3) for m in masks.values()] == [0.3, 0.3, 0.3]
    overall = autosparse.prune(_model(), "imp", density=0.3, **QUICK)
    assert len({round(float(m.float().mean()), 3) for m in overall.values()}) > 1  # global: shares differ
    with pytest.raises(ConfigError, match="scope global or uniform"):
        autosparse.prune(_model(), "imp", density=0.3, scope="erk", **QUICK)
    with pytest.raises(ConfigError, match="use it with scope global"):  # before any data loads (review)
        make_pruner("imp", dataset="digits", criterion="flow", scope="uniform")


def test_the_snip_criterion_scores_on_the_batch_given_or_one_of_the_training_set() -> None:
    """It failed after a round of training, asking for a pruning batch it had been given (helper)."""
    x, y = torch.randn(20, 1, 8, 8), torch.arange(20) % 10
    given = autosparse.prune(_model(), "imp", density=0.5, criterion="snip", data=(x, y), **QUICK)
    own = autosparse.prune(_model(), "imp", density=0.5, criterion="snip", **QUICK)
    assert given.kept == own.kept == round(0.5 * given.total)
    assert any(not torch.equal(given[n], own[n]) for n in given)  # scored on different batches


def test_a_loaded_dataset_is_refused_naming_what_imp_takes() -> None:
    with pytest.raises(ConfigError, match="registered dataset's name"):
        autosparse.prune(_model(), "imp", density=0.5, dataset=autosparse.load_dataset("digits", n_train=100))


def test_imp_trains_only_the_rounds_that_choose_its_mask(monkeypatch) -> None:
    """The last round trained the final mask only to measure it, which prune throws away (hunt):
    density 0.3 at prune_fraction 0.5 is two prunings, so two trainings, and the same mask as IRP's."""
    import autosparse.training.irp as irp_module

    trained: list[str] = []
    real = irp_module.train
    monkeypatch.setattr(irp_module, "train", lambda *a, **k: trained.append(k["desc"]) or real(*a, **k))
    masks = autosparse.prune(_model(), "imp", density=0.3, **QUICK)
    assert trained == ["IRP round 0/2", "IRP round 1/2"]
    assert masks.kept == round(0.3 * masks.total)
    pruner = make_pruner("imp", **QUICK)
    cfg = irp_module.IRPConfig(target_densities=(0.3**0.5, 0.3))
    dataset = pruner.config.train_data(0).load()
    train_cfg = autosparse.TrainConfig(epochs=0.2, lr=0.1, batch_size=128, seed=0)
    full = irp_module.run_irp(_model(), dataset, cfg, train_cfg, seed=0)
    assert len(full.accuracies) == 3 and all(torch.equal(masks[n], lab >= 2) for n, lab in full.labels.items())


def test_a_model_carrying_masks_is_refused_before_any_training(monkeypatch) -> None:
    """Round 0 trained under the old hooks, then round 1 failed on them (hunt)."""
    import autosparse.training.irp as irp_module

    model = _model()
    autosparse.prune(model, "magnitude", density=0.5, apply=True)
    monkeypatch.setattr(irp_module, "train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(autosparse.AutosparseError, match=r"remove_masks\(model\) first"):
        autosparse.prune(model, "imp", density=0.75, **QUICK)


def test_a_rewind_step_is_checked_first_and_said_not_to_travel_with_the_masks(monkeypatch, caplog) -> None:
    """The masks carry no θ_k, so training them from θ0 is not late rewinding: said; and a step past
    round 0 failed only once round 0 had trained (hunt)."""
    import autosparse.training.irp as irp_module

    real = irp_module.train
    monkeypatch.setattr(irp_module, "train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ConfigError, match="beyond the 1 steps of round 0"):
        autosparse.prune(_model(), "imp", density=0.5, rewind_step=5, **QUICK)
    monkeypatch.setattr(irp_module, "train", real)
    with caplog.at_level("WARNING", logger="autosparse.pruners.imp"):
        autosparse.prune(_model(), "imp", density=0.5, rewind_step=1, **{**QUICK, "epochs": 2})
    assert "not late-rewinding IMP" in caplog.text
