from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autosparse.core.allocation import (
    allocate,
    apportion,
    check_ranks_something,
    counts_from_shares,
    erk_counts,
    erk_densities,
    target_count,
    topk_mask,
    uniform_counts,
)
from autosparse.core.errors import ConfigError, DensityError, MaskError, ScoreError, UnknownNameError


def _scores(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a.weight": torch.rand(300, 784, generator=g),
        "b.weight": torch.rand(100, 300, generator=g),
        "c.weight": torch.rand(10, 100, generator=g),
    }


@pytest.mark.parametrize("scope", ["global", "uniform", "erk"])
@pytest.mark.parametrize("density", [0.5, 0.01, 0.001])
def test_exact_kept_count(scope: str, density: float) -> None:
    scores = _scores()
    total = sum(s.numel() for s in scores.values())
    masks = allocate(scores, density, scope=scope)
    assert masks.kept == round(density * total)
    assert not masks.empty_layers() or scope == "global"


def test_global_keeps_the_highest_scores() -> None:
    scores = {"x": torch.tensor([[0.1, 0.9], [0.5, 0.2]]), "y": torch.tensor([0.8, 0.3])}
    m = allocate(scores, density=0.5)  # 3 of 6
    assert m["x"].tolist() == [[False, True], [True, False]]
    assert m["y"].tolist() == [True, False]


def test_ties_break_by_index_deterministically() -> None:
    s = torch.zeros(10)
    m = topk_mask(s, 3)
    assert m.tolist() == [True] * 3 + [False] * 7
    spread = topk_mask(torch.tensor([5.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 4, ties="spread")
    assert spread.tolist() == [True, True, False, False, True, False, False, True, False, False]
    assert topk_mask(torch.zeros(7), 7, ties="spread").all()


def test_nan_scores_are_never_kept_first_and_say_so() -> None:
    s = torch.tensor([float("nan"), 1.0, 2.0])
    with pytest.warns(RuntimeWarning, match="NaN"):
        assert topk_mask(s, 2).tolist() == [False, True, True]
    with pytest.warns(RuntimeWarning, match="NaN"):  # below -inf too, as before the fast path
        assert topk_mask(torch.tensor([float("nan"), -math.inf, 1.0]), 2).tolist() == [False, True, True]


def test_scores_without_nan_rank_as_written_and_warn_nothing() -> None:
    s = torch.tensor([math.inf, -math.inf, 1.0, -math.inf, math.inf, 0.5], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert topk_mask(s, 3).tolist() == [True, False, True, False, True, False]
        assert topk_mask(s, 5).tolist() == [True, True, True, False, True, True]  # -inf ties: lower index


def test_all_nan_scores_are_an_error_naming_the_cause() -> None:
    with pytest.raises(ScoreError, match="diverged"):
        topk_mask(torch.full((4,), float("nan")), 2)
    with pytest.raises(ScoreError, match="diverged"):
        allocate({"a": torch.full((2, 3), float("nan"))}, 0.5)


def test_uniform_counts_are_proportional() -> None:
    shapes = {n: s.shape for n, s in _scores().items()}
    counts = uniform_counts(shapes, 0.1)
    for n, shape in shapes.items():
        assert abs(counts[n] - 0.1 * math.prod(shape)) <= 1


def test_erk_densities_follow_the_rule_and_cap_at_one() -> None:
    shapes = {"a": torch.Size([300, 784]), "b": torch.Size([100, 300]), "c": torch.Size([10, 100])}
    dens = erk_densities(shapes, 0.5)
    assert all(0 < d <= 1 for d in dens.values())
    assert dens["c"] == 1.0  # the small last layer saturates
    # below saturation densities scale as (fan_in + fan_out) / (fan_in * fan_out)
    dens = erk_densities(shapes, 0.01)
    ratio = dens["a"] / dens["b"]
    expected = ((300 + 784) / (300 * 784)) / ((100 + 300) / (100 * 300))
    assert ratio == pytest.approx(expected, rel=1e-6)
    counts = erk_counts(shapes, 0.01)
    assert sum(counts.values()) == target_count(sum(math.prod(s) for s in shapes.values()), 0.01)


def test_counts_from_shares_water_fills_full_layers() -> None:
    shapes = {"a": torch.Size([1000]), "b": torch.Size([10])}
    counts = counts_from_shares(shapes, 0.5, {"a": 1.0, "b": 100.0})
    assert counts["b"] == 10  # capped at its size
    assert counts["a"] == 505 - 10


def test_counts_from_shares_respects_caps() -> None:
    shapes = {"a": torch.Size([1000]), "b": torch.Size([1000])}
    counts = counts_from_shares(shapes, 0.1, {"a": 1.0, "b": 1.0}, caps={"a": 20, "b": 1000})
    assert counts == {"a": 20, "b": 180}


def test_apportion_is_proportional_and_exact() -> None:
    # 10 in proportion 1:3: 2.5 / 7.5, the tie of remainders goes to the earlier key
    assert apportion(10, {"a": 1, "b": 3}, {"a": 100, "b": 100}) == {"a": 3, "b": 7}
    assert apportion(7, {"a": 1, "b": 1, "c": 1}, {"a": 9, "b": 9, "c": 9}) == {"a": 3, "b": 2, "c": 2}


def test_apportion_gives_what_a_cap_cannot_take_to_the_others() -> None:
    # "b" would get 90 of 100 but holds 5; the other 95 split 1:1 between "a" and "c"
    assert apportion(100, {"a": 1, "b": 18, "c": 1}, {"a": 100, "b": 5, "c": 100}) == {"a": 48, "b": 5, "c": 47}


def test_apportion_stops_at_the_caps_and_feeds_unweighted_keys_last() -> None:
    assert apportion(50, {"a": 1, "b": 1}, {"a": 10, "b": 20}) == {"a": 10, "b": 20}
    assert apportion(12, {"a": 1, "b": 0}, {"a": 10, "b": 10}) == {"a": 10, "b": 2}
    assert apportion(0, {"a": 1}, {"a": 10}) == {"a": 0}


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.integers(0, 50), min_size=1, max_size=6),
    caps=st.lists(st.integers(0, 40), min_size=6, max_size=6),
    total=st.integers(0, 300),
)
def test_property_apportion_sums_exactly_within_caps(weights: list[int], caps: list[int], total: int) -> None:
    names = [f"l{i}" for i in range(len(weights))]
    cap = dict(zip(names, caps))
    out = apportion(total, dict(zip(names, weights)), cap)
    assert sum(out.values()) == min(total, sum(cap.values()))
    assert all(0 <= out[n] <= cap[n] for n in names)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_bad_density_is_a_clear_error(bad: float) -> None:
    with pytest.raises(DensityError, match="density"):
        allocate(_scores(), bad)


@pytest.mark.parametrize("bad", [True, "0.1", None])
def test_a_density_that_is_not_a_number_is_refused(bad: object) -> None:
    # float(True) is 1.0 (a dense mask) and float("0.1") parses: neither may slip through
    from autosparse.core.errors import check_density

    with pytest.raises(DensityError, match="must be a number" if bad is not None else "exactly one"):
        check_density(bad)  # type: ignore[arg-type]
    with pytest.raises(DensityError, match="must be a number"):
        check_density(sparsity=True)  # type: ignore[arg-type]
    assert check_density(0.25) == 0.25 and check_density(sparsity=0.75) == 0.25
    assert check_density(torch.tensor(0.5)) == 0.5 and check_density(np.float32(0.5)) == 0.5  # numbers stay welcome
    with pytest.raises(DensityError, match="must be a number"):
        check_density(torch.tensor([0.5]))  # a vector is not a density


def test_both_density_and_sparsity_is_ambiguous() -> None:
    with pytest.raises(DensityError, match="exactly one"):
        allocate(_scores(), 0.1, sparsity=0.9)


def test_unknown_scope() -> None:
    with pytest.raises(UnknownNameError, match="erk"):
        allocate(_scores(), 0.1, scope="layerwise")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 400), min_size=1, max_size=5),
    density=st.floats(0.0005, 1.0),
    scope=st.sampled_from(["global", "uniform", "erk"]),
)
def test_property_exact_count(sizes: list[int], density: float, scope: str) -> None:
    scores = {f"l{i}": torch.rand(n) for i, n in enumerate(sizes)}
    total = sum(sizes)
    k = target_count(total, density)
    if scope != "global" and k < len(sizes):
        k = len(sizes)  # per-layer scopes keep at least one weight per layer
    masks = allocate(scores, density, scope=scope)
    assert masks.kept == max(k, target_count(total, density)) or masks.kept == target_count(total, density)


def test_unit_topk_keeps_k_weights_in_the_best_units() -> None:
    from autosparse.core.allocation import unit_topk_mask

    g = torch.Generator().manual_seed(0)
    score = torch.rand(20, 30, generator=g)
    score[3] += 1.0  # two clearly best units
    score[11] += 1.0
    mask = unit_topk_mask(score, 12, units=2)
    assert int(mask.sum()) == 12
    assert set(torch.nonzero(mask.any(1)).flatten().tolist()) == {3, 11}
    assert torch.equal(unit_topk_mask(score, 12, units=20), topk_mask(score, 12))  # no restriction


def test_unit_topk_raises_units_to_fit_k() -> None:
    from autosparse.core.allocation import unit_topk_mask

    score = torch.rand(10, 4, 3, 3)
    mask = unit_topk_mask(score, 100, units=1)  # 36 weights per unit: needs 3 units
    assert int(mask.sum()) == 100 and int(mask.reshape(10, -1).any(1).sum()) == 3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_equal_half_precision_scores_name_the_underflow_not_a_zero_head(dtype: torch.dtype) -> None:
    with pytest.raises(ScoreError, match=r"half precision .* underflow to zero; prune the float32 model"):
        check_ranks_something(torch.zeros(10, dtype=dtype), 3)
    with pytest.raises(ScoreError, match="zero-initialised classifier head"):
        check_ranks_something(torch.zeros(10), 3)


def test_scores_that_are_not_tensors_are_one_error_naming_the_cast() -> None:
    """numpy scores failed on .detach and a list on .items (helper)."""
    import numpy as np

    with pytest.raises(ConfigError, match=r"the scores of 'a' are a ndarray; give tensors"):
        allocate({"a": np.ones(10)}, 0.5)
    with pytest.raises(ConfigError, match="mapping of layer name to a score tensor, got a list"):
        allocate([torch.ones(10)], 0.5)  # type: ignore[arg-type]


def test_a_global_mask_chosen_mostly_by_position_among_ties_says_so() -> None:
    """timm's zero-initialised BatchNorm scales made SNIP's scores zero on every residual branch, and
    73% of the mask was the first zero-scored weights in layer order, with no word (helper)."""
    scores = {"a": torch.zeros(100), "b": torch.zeros(100), "c": torch.linspace(1, 2, 10)}
    with pytest.warns(
        RuntimeWarning,
        match=r"40 of the 50 kept weights \(80%\) were chosen by position among 200 weights of equal score \(0\).*zero_init_last",
    ):
        masks = allocate(scores, 50 / 210)
    assert int(masks["a"].sum()) == 40 and int(masks["b"].sum()) == 0  # what the warning describes
    few = {"a": torch.arange(100.0), "b": torch.zeros(100)}  # one zero tie decided by position: ordinary
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        allocate(few, 0.2)
        allocate({"a": torch.zeros(100), "b": torch.ones(5)}, 5 / 105)  # every tie kept: nothing chosen by position


def test_a_selection_with_nothing_to_rank_by_says_the_mask_carries_no_signal() -> None:
    """NTK-SAP on LeNet-5 at 1% scored every survivor 0 in a middle round: the warning blamed a zero
    norm scale the net does not have (review). Every kept weight chosen by position says why."""
    import warnings

    from autosparse.core.allocation import warn_position_fill

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_position_fill(1226, 1226, 1544, 0.0, "spread", stacklevel=1)
        warn_position_fill(100, 50, 400, 0.0, stacklevel=1)
    first, second = (str(w.message) for w in caught)
    assert "Every weight left scored zero" in first and "no input-to-output path" in first
    assert "zero_init_residual" not in first and "zero_init_residual" in second


def test_a_per_layer_scope_says_when_layers_were_filled_by_position() -> None:
    """A residual branch behind a zero BatchNorm scale scores all zero: under scope=erk each such layer kept
    its first k weights in flat order with no word, where the global scope warns (helper)."""
    scores = {"a": torch.rand(40, 40), "b": torch.zeros(40, 40), "c": torch.zeros(40, 40), "d": torch.rand(10, 40)}
    with pytest.warns(
        RuntimeWarning, match=r"by position .* each keeping its first weights in flat order \(2 layers: b, c\)"
    ):
        masks = allocate(scores, 0.2, "erk")
    assert bool(masks["b"].reshape(-1)[: int(masks["b"].sum())].all())  # what it says: the first ones
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        allocate({n: torch.rand_like(s) for n, s in scores.items()}, 0.2, "uniform")  # nothing tied: nothing said


@pytest.mark.parametrize("scope", ["global", "uniform", "erk"])
def test_a_zero_size_layer_is_one_error_in_every_scope(scope: str) -> None:
    """erk divided by the layer's zero size: a raw ZeroDivisionError (helper)."""
    with pytest.raises(MaskError, match="mask 'a' has no elements"):
        allocate({"a": torch.rand(0, 3), "b": torch.rand(4, 4)}, 0.5, scope)
