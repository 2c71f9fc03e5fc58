"""The default scorer on what users prune: torchvision ResNet-18 and MobileNet-v3 at 99% sparsity.

The first MLP-only scorer starved the stem and the classifier of residual nets; a mask that leaves
a layer empty or off every input-to-output path trains to chance however good its ranking is.
"""

from __future__ import annotations

import pytest
import torch
from test_scorer_evidence import _scorer_with_evidence

from autosparse.api import prune
from autosparse.models import build_model
from autosparse.topology.paths import layer_collapse, path_stats

SHAPE = (3, 32, 32)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tv:resnet18", "tv:mobilenet_v3_small"])
def test_default_autos_keeps_every_layer_alive_and_connected_at_99_percent(name: str, tmp_path, caplog) -> None:
    torch.set_num_threads(1)
    model = build_model(name, SHAPE, 10, seed=0)
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(20, *SHAPE, generator=g), torch.arange(20) % 10)
    masks = prune(model, "autos", density=0.01, data=data, seed=0)
    assert masks.kept == round(0.01 * masks.total)
    assert [n for n, m in masks.items() if not bool(m.any())] == []
    assert layer_collapse(model, masks, SHAPE) == []
    # the shipped evidence leaves both alone (their residual sources' IMP beat SynFlow at 1%); with
    # evidence that SynFlow won everywhere, ResNet-18 gets SynFlow's mask, mended where SynFlow
    # empties a 1x1 shortcut, and MobileNet-v3 keeps the learned one, since SynFlow's leaves layers
    # off every path there
    assert masks.meta.get("guard", {}).get("reason") != "density"
    scorer = _scorer_with_evidence(tmp_path, imp=0.10, synflow=0.80, density=0.01)
    guarded = prune(model, "autos", density=0.01, data=data, seed=0, scorer=scorer)
    assert guarded.kept == masks.kept and [n for n, m in guarded.items() if not bool(m.any())] == []
    assert layer_collapse(model, guarded, SHAPE) == []
    if name == "tv:resnet18":
        assert guarded.meta["guard"]["reason"] == "density" and guarded.meta["guard"]["mended"]["empty"]
        # the hand-off says the mask is SynFlow's mended, not SynFlow's as made, and that the mend connected it
        said = [r.getMessage() for r in caplog.records if "SynFlow's mask left" in r.getMessage()]
        assert len(said) == 1 and "every layer the input reaches now lies on an input-to-output path" in said[0]
    else:
        assert "declined" in guarded.meta["density_guard"]
        # and said, not only recorded in the meta (helper)
        said = [r.getMessage() for r in caplog.records if "the learned mask is kept" in r.getMessage()]
        assert len(said) == 1 and said[0].startswith("autos: the density guard would hand this net to SynFlow's")


def test_autos_puts_mobilenet_v3_weights_on_paths_at_half_a_percent() -> None:
    """At 0.5% (32 px) whole inverted-residual branches of the learned mask were dead, the shortcut
    carrying the signal around them, and 90% of the kept weights lay on no path: no single layer had
    an on-path position for its dead weights. The repair's chain step lays those branches again."""
    torch.set_num_threads(1)
    model = build_model("tv:mobilenet_v3_small", SHAPE, 10, seed=0)
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(64, *SHAPE, generator=g), torch.arange(64) % 10)
    masks = prune(model, "autos", density=0.005, data=data, seed=0)
    assert masks.kept == round(0.005 * masks.total)
    stats = path_stats(model, masks, SHAPE)
    assert stats.effective_params >= 0.9 * masks.kept, (stats.effective_params, masks.kept)


def test_autos_spends_regnet_weights_on_paths_across_layers() -> None:
    """RegNet-X-400MF at 1% (32 px): the allocation gave block 4's grouped 3x3 convs thousands of
    weights and the 1x1 convs around them a few hundred, all live, so few channels were open and
    64% of the kept weights lay on no path; no step that keeps per-layer counts can place them. The
    rehome step gives them to layers with on-path room. Since the range guard's layers get ERK's
    count (2026-12-05; 51 of 72 layers are out of range here) the allocation itself leaves only
    43 of 50,611 off every path; rehome still places those."""
    torch.set_num_threads(1)
    model = build_model("tv:regnet_x_400mf", SHAPE, 10, seed=0)
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(64, *SHAPE, generator=g), torch.arange(64) % 10)
    kept_counts = prune(model, "autos", density=0.01, data=data, seed=0, rehome=False)
    before = path_stats(model, kept_counts, SHAPE)
    assert before.effective_params < kept_counts.kept, (before.effective_params, kept_counts.kept)
    masks = prune(model, "autos", density=0.01, data=data, seed=0, rehome=True)
    assert masks.kept == kept_counts.kept == round(0.01 * masks.total)
    assert [n for n, m in masks.items() if not bool(m.any())] == []
    assert path_stats(model, masks, SHAPE).effective_params == masks.kept
