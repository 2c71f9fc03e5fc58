"""``autos``' own mechanics on the shipped default scorer: one path network per call, whose
measurements reach ``prune``'s diagnostics, and the borrowed SynFlow allocation."""

from __future__ import annotations

import pytest
import torch

from autosparse.api import prune
from autosparse.core.masks import Masks
from autosparse.models import build_model
from autosparse.pruners import make_pruner
from autosparse.topology import paths as paths_module
from autosparse.topology.diagnostics import mask_diagnostics

SHAPE = (1, 28, 28)


def _data(n: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *SHAPE, generator=g), torch.arange(n) % 10


def test_one_path_network_serves_repair_collapse_check_and_diagnostics(monkeypatch) -> None:
    """The repair's last pass measures the final masks: the collapse check and prune's diagnostics
    reuse it (on MobileNet-v3 the two extra copies and passes were a third of autos' time), and
    the diagnostics are exactly what a fresh pass says."""
    model = build_model("conv2", SHAPE, 10, seed=0, width=0.25)
    built: list[int] = []
    real_init = paths_module.PathNetwork.__init__

    def counting_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        built.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(paths_module.PathNetwork, "__init__", counting_init)
    masks = prune(model, "autos", density=0.02, data=_data(), seed=0)
    assert len(built) == 1
    monkeypatch.setattr(paths_module.PathNetwork, "__init__", real_init)
    fresh = mask_diagnostics(model, masks, SHAPE, warn=False)
    assert masks.meta["diagnostics"] == fresh and fresh["paths"] == "exact" and fresh["log10_paths"] > 0


def test_measured_paths_only_for_the_masks_it_returned() -> None:
    pruner = make_pruner("autos")
    model = build_model("lenet_300_100", SHAPE, 10, seed=0)
    from autosparse.data.pruning_data import PruningData

    data = PruningData.coerce(_data())
    masks = pruner.masks(model, data, 0.02, seed=0)
    measured = pruner.measured_paths(masks)
    assert measured is not None and measured[0] == SHAPE and measured[1].effective_params == masks.kept
    assert pruner.measured_paths(Masks(masks.to_dict())) is None  # another object: no claim


def test_synflow_allocation_takes_synflows_per_layer_counts() -> None:
    model = build_model("conv2", SHAPE, 10, seed=0, width=0.25)
    borrowed = prune(model, "autos", density=0.01, data=_data(), seed=0, allocation="synflow")
    synflow = prune(model, "synflow", density=0.01, data=_data(), seed=0)
    assert {n: int(m.sum()) for n, m in borrowed.items()} == {n: int(m.sum()) for n, m in synflow.items()}
    assert "guard" not in borrowed.meta  # a chosen allocation, not a guard's fallback
    assert any(not torch.equal(borrowed[n], synflow[n]) for n in borrowed)  # the learned ranker chose within


def test_erk_floor_lifts_the_layers_the_learned_allocation_starves() -> None:
    """With ``erk_floor`` no layer's learned density stays below that fraction of ERK's (up to the
    renormalisation of the budget); layers above it keep their learned share, and the count is exact."""
    import math

    from autosparse.core.allocation import erk_densities
    from autosparse.core.layers import prunable_layers

    model = build_model("vgg11", (1, 28, 28), 10, seed=0, width=0.125)
    shapes = {layer.name: layer.parameter.shape for layer in prunable_layers(model)}
    density = 0.01
    erk = erk_densities(shapes, density)

    def ratios(**hp: object) -> dict[str, float]:
        m = prune(model, "autos", density=density, data=_data(), seed=0, guard="off", repair=0, collapse="guard", **hp)
        assert m.kept == round(density * m.total)
        return {n: int(m[n].sum()) / (erk[n] * math.prod(shapes[n])) for n in shapes}

    plain, floored = ratios(), ratios(erk_floor=0.5)
    starved = [n for n, r in plain.items() if r < 0.4]
    assert starved, "the default scorer no longer starves a VGG-11 layer: pick another test model"
    assert all(floored[n] >= 0.4 for n in shapes)
    assert all(floored[n] <= plain[n] + 1e-9 for n in shapes if n not in starved)


def test_erk_floor_outside_zero_one_is_one_clear_error() -> None:
    import pytest

    from autosparse.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"erk_floor must be in \[0, 1\]"):
        make_pruner("autos", erk_floor=1.5)
    with pytest.raises(ConfigError, match="erk_floor acts on the learned or synflow allocation"):
        make_pruner("autos", erk_floor=0.5, allocation="erk")


def test_scope_is_refused_naming_allocation() -> None:
    """`scope` (every pruner's) was accepted and ignored: scope=erk gave the default mask."""
    import pytest

    from autosparse.core.errors import ConfigError

    with pytest.raises(ConfigError, match="pass allocation='erk'"):
        make_pruner("autos", scope="erk")
    make_pruner("autos", scope="global")  # the inherited default, written out


def test_flow_rounds_keep_every_layers_count_and_put_the_kept_weights_on_paths() -> None:
    """``flow_rounds`` re-chooses weights within each layer only: the learned allocation's counts are
    kept to the weight, the unit head's chosen units still bound the hidden layers, and far more of
    what the flow chose lies on input→output paths than of the unchained choice (before any repair)."""
    model = build_model("lenet_300_100", SHAPE, 10, seed=0)
    kw = {"density": 0.01, "data": _data(), "seed": 0, "repair": 0}
    learned = prune(model, "autos", **kw)
    chained = prune(model, "autos", flow_rounds=20, **kw)
    assert {n: int(m.sum()) for n, m in chained.items()} == {n: int(m.sum()) for n, m in learned.items()}
    assert any(not torch.equal(chained[n], learned[n]) for n in learned)
    for n in list(learned)[:-1]:  # hidden layers: no unit the head dropped comes back
        units = learned[n].any(1)
        assert not bool((chained[n].any(1) & ~units).any())
    # the last round shrinks every layer at once, so a few lose their partners; far fewer than unchained
    dead = chained.kept - chained.meta["diagnostics"]["effective_params"]
    assert dead < 0.5 * (learned.kept - learned.meta["diagnostics"]["effective_params"])
    again = prune(model, "autos", flow_rounds=20, **kw)
    assert all(torch.equal(again[n], chained[n]) for n in chained)


def test_flow_rounds_magnitude_prior_takes_synflows_edge_values() -> None:
    """With SynFlow's per-layer counts and |θ| as the prior, 100 flow rounds are SynFlow's own
    iteration up to its schedule (each layer shrinks to its own count rather than one global top-k),
    so they keep most of SynFlow's mask; a bad option is one clear error."""
    import pytest

    from autosparse.core.errors import ConfigError

    model = build_model("conv2", SHAPE, 10, seed=0, width=0.25)
    kw = {"density": 0.02, "data": _data(), "seed": 0, "repair": 0, "rescale": False}
    chained = prune(model, "autos", allocation="synflow", flow_rounds=100, flow_prior="magnitude", **kw)
    synflow = prune(model, "synflow", density=0.02, data=_data(), seed=0)
    shared = sum(int((chained[n] & synflow[n]).sum()) for n in synflow) / synflow.kept
    learned = prune(model, "autos", allocation="synflow", **kw)
    baseline = sum(int((learned[n] & synflow[n]).sum()) for n in synflow) / synflow.kept
    assert shared > 0.6 and shared > baseline
    with pytest.raises(ConfigError, match="flow_prior"):
        make_pruner("autos", flow_prior="theta")
    with pytest.raises(ConfigError, match="flow_rounds must be >= 0"):
        make_pruner("autos", flow_rounds=-1)


def test_flow_refine_ranks_off_path_weights_below_on_path_ones_whatever_the_prior_scale() -> None:
    """|θ| priors are unbounded: a weight on no path must still rank below every weight on one."""
    from autosparse.scorer.autos.flow import _key

    key = _key(
        torch.tensor([0.0, 1.0, float("-inf"), float("-inf")]),
        torch.tensor([0.1, 0.1, 0.5, 1.0], dtype=torch.float64),
        torch.tensor([True, True, True, False]),
    )
    assert key[2] < key[0] < key[1] and key[3] == float("-inf")


def test_flow_refine_stays_within_allowed_positions_unless_they_cannot_hold_the_count() -> None:
    from autosparse.core.masks import Masks as M
    from autosparse.scorer.autos.flow import flow_priors, flow_refine
    from autosparse.topology.paths import PathNetwork

    model = build_model("mlp", (1, 4, 4), 10, seed=0, widths=[12])
    net = PathNetwork(model, (1, 4, 4))
    g = torch.Generator().manual_seed(0)
    scores = {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters() if n.endswith("weight")}
    masks = M(
        {
            n: torch.zeros(s.shape, dtype=torch.bool).view(-1).index_fill_(0, torch.arange(20), True).view(s.shape)
            for n, s in scores.items()
        }
    )
    first, last = list(scores)
    roomy = torch.zeros(scores[first].shape, dtype=torch.bool)
    roomy[:6] = True  # 6 units x 16 inputs: room for 20
    tight = torch.zeros(scores[last].shape, dtype=torch.bool)
    tight[:, :1] = True  # 10 positions for 20 weights: the count wins
    out = flow_refine(net, masks, flow_priors("learned", scores, model), 10, {first: roomy, last: tight})
    assert {n: int(m.sum()) for n, m in out.items()} == {n: 20 for n in scores}
    assert not bool((out[first] & ~roomy).any())


class _UnusedHead(torch.nn.Module):
    """A 1000-way head the forward never calls: the learned allocation gave it 85% of the budget."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.o, self.aux = torch.nn.Linear(32, 64), torch.nn.Linear(64, 10), torch.nn.Linear(64, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(torch.relu(self.a(x)))


def test_a_layer_the_forward_never_calls_keeps_one_weight_unless_the_rest_cannot_hold_the_budget() -> None:
    torch.manual_seed(0)
    data = (torch.randn(20, 32), torch.arange(20) % 10)
    masks = prune(_UnusedHead(), "autos", density=0.02, data=data)
    assert int(masks["aux.weight"].sum()) == 1 and masks.kept == round(0.02 * masks.total)
    # at 5% the two used layers (2,688 weights) cannot hold 3,334: the unused head takes only the rest
    masks = prune(_UnusedHead(), "autos", density=0.05, data=data)
    counts = {n: int(m.sum()) for n, m in masks.to_dict().items()}
    assert counts == {"a.weight": 2048, "o.weight": 640, "aux.weight": 3334 - 2688}


def test_weights_read_without_calling_their_layer_are_reached() -> None:
    """Swin reads qkv.weight and proj.weight without calling those layers: counting only called
    layers as reached would have given its attention one weight each."""
    from torchvision.models.swin_transformer import SwinTransformer

    from autosparse.topology.paths import PathNetwork

    torch.manual_seed(0)
    model = SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=[2, 2])
    assert PathNetwork(model, (3, 16, 16)).unreached == []
    assert PathNetwork(_UnusedHead(), (32,)).unreached == ["aux.weight"]


def test_a_scorer_given_as_a_list_is_one_config_error() -> None:
    import pytest

    from autosparse.core.errors import ConfigError

    with pytest.raises(ConfigError, match="scorer takes one value"):  # was a TypeError from pathlib
        make_pruner("autos", scorer=["autos_mlp"])


class _HeadLast(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = torch.nn.Linear(784, 300), torch.nn.Linear(300, 100), torch.nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x.flatten(1))))))


class _HeadFirst(_HeadLast):
    def __init__(self) -> None:
        torch.nn.Module.__init__(self)
        self.head = torch.nn.Linear(100, 10)  # registered first, called last
        self.fc1, self.fc2 = torch.nn.Linear(784, 300), torch.nn.Linear(300, 100)


class _AuxLast(_HeadLast):
    def __init__(self) -> None:
        super().__init__()
        self.aux = torch.nn.Linear(300, 10)  # registered after the head, never called


def test_the_order_layers_are_registered_in_does_not_change_the_mask() -> None:
    """Depth and the output layer came from registration order: a head registered first read as the first
    layer, and an unused head registered after the classifier left 5 of 10 classes without a weight (review).
    They now come from the forward."""
    torch.manual_seed(0)
    last = _HeadLast()
    first, aux = _HeadFirst(), _AuxLast()
    first.load_state_dict(last.state_dict())
    aux.load_state_dict(last.state_dict(), strict=False)
    g = torch.Generator().manual_seed(1)
    data = (torch.randn(100, 1, 28, 28, generator=g), torch.randint(0, 10, (100,), generator=g))
    a = prune(last, "autos", density=0.01, data=data, guard="off")
    b = prune(first, "autos", density=0.01, data=data, guard="off")
    assert all(torch.equal(a[n], b[n]) for n in a)
    c = prune(aux, "autos", density=0.01, data=data)
    assert bool(c["head.weight"].any(1).all())  # every class keeps a weight


def test_a_loaded_scorer_object_is_refused_naming_the_name_or_path() -> None:
    """load_scorer's Scorer passed as scorer= failed in Path() with a TypeError (helper); a Path works."""
    from pathlib import Path

    from autosparse.core.errors import ConfigError
    from autosparse.scorer.loaded import load_scorer

    with pytest.raises(ConfigError, match="pass the name or the path you loaded it from"):
        make_pruner("autos", scorer=load_scorer("autos_mlp"))
    assert make_pruner("autos", scorer=Path("some/folder")).config.scorer == "some/folder"
