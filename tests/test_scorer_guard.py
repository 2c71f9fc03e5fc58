"""autos knows when its allocation extrapolates: the coverage of the scorer's source layers and the guard."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from autosparse.api import prune
from autosparse.core.allocation import erk_densities
from autosparse.core.masks import Masks
from autosparse.features import compute_features
from autosparse.models import build_model
from autosparse.scorer import autos as autos_module
from autosparse.scorer.autos import guards as guards_module
from autosparse.scorer.autos import pruner as pruner_module
from autosparse.scorer.coverage import Coverage
from autosparse.scorer.loaded import load_scorer

SHAPE = (1, 28, 28)
MLP_ONLY = "autos_mlp_fmnist"  # the scorer trained on MLPs alone: convolutions are out of its range


def _data(n: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *SHAPE, generator=g), torch.arange(n) % 10


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    guards_module._warned.clear()


def test_coverage_threshold_comes_from_the_sources_and_flags_far_points() -> None:
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    cov = Coverage.fit(("x", "y"), [a, b, a.clone()], ["A", "B", "A"], quantile=1.0, margin=1.0)
    assert len(cov.points) == 4  # the repeated architecture adds no point
    # nearest layer of another architecture: one unit of y away, i.e. 1 / std(y) standardised units
    std_y = float(torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0]).std())
    assert cov.threshold == pytest.approx(1 / std_y)
    from autosparse.features import LayerFeatures

    near = LayerFeatures("near", (1, 1), "linear", layer={"x": 0.5, "y": 0.5})
    far = LayerFeatures("far", (1, 1), "linear", layer={"x": 5.0, "y": 0.0})
    assert cov.out_of_range([near, far]) == [False, True]
    again = Coverage.from_card(cov.to_card())
    assert again is not None and again.points == cov.points and again.threshold == cov.threshold


def test_a_feature_no_source_varied_puts_a_target_that_differs_out_of_range() -> None:
    """A kind flag every source shared (kind_conv 0 in a store of MLPs) counted one standardised unit,
    under a threshold of 4: a user's MLP-only scorer read a conv as in range (review)."""
    from autosparse.features import LayerFeatures

    mlps = [
        torch.tensor([[0.0, 0.0, 0.0, 3.0], [1.0, 1.0, 0.0, 3.0]]),
        torch.tensor([[1.0, 0.0, 0.0, 3.0], [0.0, 1.0, 0.0, 3.0]]),
    ]
    cov = Coverage.fit(("size", "depth", "kind_conv", "log_total"), mlps, ["A", "B"], quantile=1.0, margin=1.25)
    mlp = LayerFeatures("fc", (1, 1), "linear", layer={"size": 0.5, "depth": 0.5, "kind_conv": 0.0, "log_total": 3.0})
    conv = LayerFeatures("conv", (1, 1), "conv", layer={"size": 0.5, "depth": 0.5, "kind_conv": 1.0, "log_total": 3.0})
    # a size all sources shared by chance (a store of one shape) is a size, not a kind: a little larger stays near
    wider = LayerFeatures("fc", (1, 1), "linear", layer={"size": 0.5, "depth": 0.5, "kind_conv": 0.0, "log_total": 3.1})
    assert cov.out_of_range([mlp, conv, wider]) == [False, True, False]
    assert cov.nearest_sources([mlp]) == cov.nearest_sources([conv])  # the same on every source: same nearest


def test_shipped_mlp_scorer_has_coverage_and_it_spans_mlps_only() -> None:
    scorer = load_scorer(MLP_ONLY)
    assert scorer.coverage is not None and all(s.startswith("mlp") for s in scorer.coverage.sources)
    lenet = build_model("lenet_300_100", SHAPE, 10, seed=0)
    conv = build_model("resnet20", SHAPE, 10, seed=0, width=0.25)
    from autosparse.data.pruning_data import PruningData

    data = PruningData.coerce(_data())
    assert not any(scorer.coverage.out_of_range(compute_features(lenet, data, names=scorer.features).layers))
    far = scorer.coverage.out_of_range(compute_features(conv, data, names=scorer.features).layers)
    assert sum(far) >= len(far) - 2  # every conv; the linear classifier may be near the MLPs' last layers


def test_guard_silent_on_a_held_out_mlp_of_the_source_family(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="autosparse.scorer.autos"):
        masks = prune(
            build_model("lenet_300_100", SHAPE, 10, seed=0), "autos", density=0.01, data=_data(), scorer=MLP_ONLY
        )
    assert "guard" not in masks.meta
    assert not [r for r in caplog.records if "outside the range" in r.message]


def test_guard_fires_once_on_unseen_layer_kinds_and_uses_erk_there(caplog) -> None:
    model = build_model("resnet20", SHAPE, 10, seed=0, width=0.25)
    with caplog.at_level(logging.WARNING, logger="autosparse.scorer.autos"):
        guarded = prune(model, "autos", density=0.05, data=_data(), seed=0, scorer=MLP_ONLY)
        prune(model, "autos", density=0.05, data=_data(), seed=1, scorer=MLP_ONLY)  # no second warning
    warnings = [r for r in caplog.records if "outside the range" in r.message]
    assert len(warnings) == 1
    meta = guarded.meta["guard"]
    assert meta["fallback"] == "erk" and "conv.weight" in meta["layers"]
    # the stem conv is out of range: its count follows ERK's density (up to the exact-count rounding)
    shapes = {n: m.shape for n, m in guarded.items()}
    erk = erk_densities(shapes, 0.05)
    stem = guarded["conv.weight"]
    assert abs(float(stem.float().mean()) - erk["conv.weight"]) < 0.35
    forced = prune(model, "autos", density=0.05, data=_data(), seed=0, guard="off", scorer=MLP_ONLY)
    assert "guard" not in forced.meta
    assert guarded.kept == forced.kept == round(0.05 * guarded.total)


def test_guarded_layers_get_erks_count_while_the_others_share_the_rest() -> None:
    """The guard wrote ERK's density beside the allocator's raw predictions, which on an unseen net sum to
    several times the budget: normalised together, a guarded layer got ERK's count divided by that
    factor (LeNet-5's first conv one weight of 150, ERK's 12; review). Here only fc2 is out of range."""
    model = build_model("mlp", (1, 8, 8), 10, seed=0, widths=[32, 16])
    data = (torch.randn(20, 1, 8, 8, generator=torch.Generator().manual_seed(100)), torch.arange(20) % 10)
    masks = prune(model, "autos", density=0.05, data=data, seed=0)
    assert masks.meta["guard"]["layers"] == ["fc2.weight"]
    erk = erk_densities({n: m.shape for n, m in masks.items()}, 0.05)
    assert abs(int(masks["fc2.weight"].sum()) - erk["fc2.weight"] * masks["fc2.weight"].numel()) <= 1
    assert masks.kept == round(0.05 * masks.total)


def test_a_scorer_without_coverage_says_how_to_add_it(tmp_path, caplog) -> None:
    import json
    import shutil

    from autosparse.scorer.checkpoint import SHIPPED_DIR

    shutil.copytree(SHIPPED_DIR / "autos_mlp_fmnist", tmp_path / "old")
    card = json.loads((tmp_path / "old" / "card.json").read_text())
    card.pop("coverage")
    (tmp_path / "old" / "card.json").write_text(json.dumps(card))
    model: nn.Module = build_model("lenet_300_100", SHAPE, 10, seed=0)
    with caplog.at_level(logging.WARNING, logger="autosparse.scorer.autos"):
        prune(model, "autos", density=0.05, data=_data(), scorer=str(tmp_path / "old"))
    assert any("--add-coverage" in r.message for r in caplog.records)


def _cut_a_layer_of_the_learned_mask(monkeypatch) -> None:
    """Make the learned allocation starve a layer, as it does on a deep plain VGG."""
    real = pruner_module.learned_masks

    def cut_middle_layer(call, *, force=False):  # type: ignore[no-untyped-def]
        masks = real(call, force=force)
        if force:
            return masks
        cut = masks.to_dict()
        name = list(cut)[1]
        cut[name] = torch.zeros_like(cut[name])
        return Masks(cut, meta=masks.meta)

    monkeypatch.setattr(pruner_module, "learned_masks", cut_middle_layer)


def test_a_disconnected_learned_mask_falls_back_to_synflows_mask(monkeypatch, caplog) -> None:
    """The default collapse rule hands the network to SynFlow, whose masks never disconnect: on
    the validation VGG-11 every learned-ranker fallback trained below SynFlow's own mask."""
    model = build_model("lenet_300_100", SHAPE, 10, seed=0)
    _cut_a_layer_of_the_learned_mask(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="autosparse.scorer.autos"):
        fallback = prune(model, "autos", density=0.02, data=_data(), seed=3)
    assert len([r for r in caplog.records if "using SynFlow's mask instead" in r.message]) == 1
    guard = fallback.meta["guard"]
    assert guard["reason"] == "collapse" and guard["fallback"] == "synflow-mask" and guard["collapsed"]
    synflow = prune(model, "synflow", density=0.02, data=_data(), seed=3)
    assert all(torch.equal(fallback[n], synflow[n]) for n in synflow)
    assert fallback.kept == round(0.02 * fallback.total)


def test_each_network_handed_to_synflow_is_told_once(monkeypatch, caplog) -> None:
    """The hand-off was said once per process and density: a second, different model got SynFlow's mask
    without a word (review). Once per network: the same model again is not told twice."""
    _cut_a_layer_of_the_learned_mask(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="autosparse.scorer.autos"):
        for widths in ((300, 100), (64, 32), (300, 100)):
            prune(build_model("mlp", SHAPE, 10, seed=0, widths=widths), "autos", density=0.02, data=_data(), seed=3)
    assert len([r for r in caplog.records if "using SynFlow's mask instead" in r.message]) == 2


def test_a_disconnected_learned_mask_can_fall_back_to_the_guard_allocation(monkeypatch, caplog) -> None:
    """``collapse="guard"``: the learned ranker under ERK's allocation for every layer (the ablation)."""
    model = build_model("lenet_300_100", SHAPE, 10, seed=0)
    _cut_a_layer_of_the_learned_mask(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="autosparse.scorer.autos"):
        fallback = prune(model, "autos", density=0.02, data=_data(), seed=0, collapse="guard")
        prune(model, "autos", density=0.02, data=_data(), seed=1, collapse="guard")
    assert len([r for r in caplog.records if "autos: the learned mask of scorer" in r.message]) == 1
    guard = fallback.meta["guard"]
    assert guard["reason"] == "collapse" and guard["fallback"] == "erk" and guard["collapsed"]
    assert all(bool(m.any()) for m in fallback.values()) and fallback.kept == round(0.02 * fallback.total)
    kept = prune(model, "autos", density=0.02, data=_data(), seed=0, guard="off")
    assert "guard" not in kept.meta and not bool(kept[list(kept)[1]].any())


def test_collapse_off_keeps_the_disconnected_learned_mask(monkeypatch) -> None:
    """``collapse="off"``: the scorer's own mask, as the student evidence measures it; prune()'s
    diagnostics still report the cut layer."""
    model = build_model("lenet_300_100", SHAPE, 10, seed=0)
    _cut_a_layer_of_the_learned_mask(monkeypatch)
    kept = prune(model, "autos", density=0.02, data=_data(), seed=0, collapse="off")
    assert "guard" not in kept.meta or kept.meta["guard"].get("reason") != "collapse"
    assert not bool(kept[list(kept)[1]].any())
    assert kept.meta["diagnostics"]["collapsed_layers"]


def test_default_scorer_covers_conv_and_residual_nets() -> None:
    """The all-sources default knows convolutions: no guard on a residual net of its family."""
    scorer = load_scorer(autos_module.DEFAULT_SCORER)
    assert scorer.coverage is not None
    families = {s.split("-")[0] for s in scorer.coverage.sources}
    assert {"mlp", "conv4", "resnet20", "cnn1d"} <= families
    model = build_model("resnet20", SHAPE, 10, seed=0, width=0.25)
    masks = prune(model, "autos", density=0.05, data=_data(), seed=0)
    assert "guard" not in masks.meta and masks.kept == round(0.05 * masks.total)


def test_a_guarded_layer_stays_at_its_count_when_a_free_layer_is_full() -> None:
    """A free layer filled to its size spilled its surplus over every layer: a guarded layer at ERK's
    47.6 weights ended with 82 (review). The other free layers take the surplus now."""
    from autosparse.core.allocation import counts_from_shares
    from autosparse.scorer.autos.learned import _guard_caps, _guarded_shares

    shapes = {"a": torch.Size([1000]), "b": torch.Size([10]), "c": torch.Size([1000])}
    density = 100 / 2010
    shares = _guarded_shares({"a": 47.6, "b": 10.0, "c": 1.0}, {"a": 3.0}, 100.0)
    caps = _guard_caps(shapes, density, shares, {"a": 3.0}, None)
    counts = counts_from_shares(shapes, density, shares, caps=caps)
    assert counts["a"] <= 48 and counts["b"] == 10 and sum(counts.values()) == 100, counts
    assert counts_from_shares(shapes, density, shares)["a"] > 48  # what the caps prevent


def test_the_range_warning_is_said_only_for_a_learned_mask_that_is_returned(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ShuffleNet at 0.5%: the range warning named layers that "get ERK's allocation", then the student
    guard handed the net to SynFlow's mask, where they do not (helper). Since the repair lays a path
    through a mask with none, ShuffleNet's learned mask is kept there; a wide Conv-6 (a plain conv net,
    whose last conv is out of the scorer's range) is handed over."""
    model = build_model("conv6", (3, 32, 32), 10, seed=0, width=2.0)
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(20, 3, 32, 32, generator=g), torch.arange(20) % 10)
    import gc
    import weakref

    calls: list[weakref.ref] = []
    real = pruner_module._guarded_masks

    def spy(call):
        calls.append(weakref.ref(call))
        return real(call)

    monkeypatch.setattr(pruner_module, "_guarded_masks", spy)
    gc.disable()  # the deferred warning held the call in a cycle: its tensors lived until a collection (review)
    try:
        with caplog.at_level(logging.WARNING, logger="autosparse"):
            handed = prune(model, "autos", density=0.005, data=data, check=False)
        assert calls and calls[0]() is None
    finally:
        gc.enable()
    assert handed.meta["guard"]["fallback"] == "synflow-mask" and handed.meta["allocation"] == "synflow-mask"
    assert "outside the range" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autosparse"):
        kept = prune(
            model,
            "autos",
            density=0.005,
            data=data,
            check=False,
            student_guard="off",
            density_guard="off",
            collapse="off",
        )
    assert kept.meta["guard"]["reason"] == "range"
    said = [r.getMessage() for r in caplog.records if "outside the range" in r.getMessage()]
    assert len(said) == 1 and "rehome=false keeps them" in said[0]


def test_the_range_warning_is_said_once_per_network() -> None:
    """Keyed by layer names alone, a second network with the same names (LeNet-5 on another input)
    heard nothing (helper)."""
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("autosparse").addHandler(handler)
    try:
        for shape in ((1, 28, 28), (3, 32, 32)):
            model = build_model("lenet5", shape, 10, seed=0)
            g = torch.Generator().manual_seed(0)
            data = (torch.randn(20, *shape, generator=g), torch.arange(20) % 10)
            for _ in range(2):
                prune(model, "autos", density=0.01, data=data, check=False, guard="erk", scorer="autos_mlp_fmnist")
    finally:
        logging.getLogger("autosparse").removeHandler(handler)
    assert sum("outside the range" in m for m in said) == 2


def test_units_are_recorded_as_applied_and_scope_names_a_valid_fix() -> None:
    from autosparse.core.errors import ConfigError

    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=0)
    masks = prune(model, "autos", density=0.05, data=_mnist_like(), allocation="erk", check=False)
    assert masks.meta["units"] == "off"  # the unit head acts on the learned allocation only (helper)
    with pytest.raises(ConfigError, match="autos has no scope") as err:
        prune(model, "autos", density=0.05, data=_mnist_like(), scope="layer")
    assert "allocation='layer'" not in str(err.value)


def _mnist_like() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(20, 1, 28, 28, generator=g), torch.arange(20) % 10
