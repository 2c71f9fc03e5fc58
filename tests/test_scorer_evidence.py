"""The density guard: IMP against SynFlow on the scorer's own sources decides where ``autos`` trusts
its learned allocation (autosparse/scorer/evidence.py, the guard in autosparse/scorer/autos/guards.py)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

# the guard tests' data and their autouse fixture that forgets which warnings were printed
from test_scorer_guard import SHAPE, _data, _fresh_warnings  # noqa: F401

from autosparse.api import prune
from autosparse.models import build_model
from autosparse.scorer import autos as autos_module
from autosparse.scorer.checkpoint import SHIPPED_DIR
from autosparse.scorer.evidence import DensityEvidence, Point
from autosparse.scorer.loaded import load_scorer


def test_evidence_speaks_for_nearby_densities_only() -> None:
    ev = DensityEvidence({"vgg": [Point(0.0156, 0.85, 0.84), Point(0.0078, 0.26, 0.80)]})
    assert ev.at("vgg", 0.01) == Point(0.0078, 0.26, 0.80)  # nearer in log scale than 1.56%
    assert ev.at("vgg", 0.02) == Point(0.0156, 0.85, 0.84)
    assert ev.at("vgg", 0.0039) == Point(0.0078, 0.26, 0.80)  # exactly one factor of two away
    assert ev.at("vgg", 0.001) is None and ev.at("vgg", 0.05) is None  # beyond reach: no evidence
    assert ev.at("resnet", 0.01) is None


def test_verdict_weighs_layers_by_their_weights_and_needs_coverage() -> None:
    ev = DensityEvidence({"plain": [Point(0.01, 0.20, 0.80)], "res": [Point(0.01, 0.40, 0.38)]})
    # 90% of the weights nearest the plain source, where SynFlow won by 60 points
    v = ev.verdict(["plain", "res"], [900.0, 100.0], 0.01)
    assert v.prefer_synflow and v.gap == pytest.approx(0.9 * 0.6 + 0.1 * -0.02)
    assert v.covered == 1.0 and set(v.per_source) == {"plain", "res"}
    # mostly residual: the weighted gap is below the margin
    assert not ev.verdict(["plain", "res"], [50.0, 950.0], 0.01).prefer_synflow
    # most weights nearest a source without evidence: no decision, whatever the rest says
    v = ev.verdict(["plain", "mlp"], [300.0, 700.0], 0.01)
    assert not v.prefer_synflow and v.gap is None and v.covered == pytest.approx(0.3)
    # a gap inside the margin keeps the learned allocation
    assert not DensityEvidence({"a": [Point(0.01, 0.80, 0.84)]}).verdict(["a"], [1.0], 0.01).prefer_synflow
    again = DensityEvidence.from_card(ev.to_card())
    assert again is not None and again.points == ev.points and again.margin == ev.margin
    assert DensityEvidence.from_card({}) is None


def _scorer_with_evidence(tmp_path: Path, imp: float, synflow: float, density: float) -> str:
    """The default scorer with evidence at ``density`` for every source it knows."""
    out = tmp_path / "with_evidence"
    shutil.copytree(SHIPPED_DIR / autos_module.DEFAULT_SCORER, out)
    card = json.loads((out / "card.json").read_text())
    sources = sorted(set(card["coverage"]["owners"]))
    card["evidence"] = DensityEvidence({s: [Point(density, imp, synflow)] for s in sources}).to_card()
    (out / "card.json").write_text(json.dumps(card))
    return str(out)


def test_where_synflow_beat_the_teacher_autos_returns_synflows_mask_and_says_so(tmp_path, caplog) -> None:
    scorer = _scorer_with_evidence(tmp_path, imp=0.10, synflow=0.80, density=0.02)
    model = build_model("lenet_300_100", SHAPE, 10, seed=0)
    with caplog.at_level(logging.WARNING, logger="autosparse.scorer.autos"):
        masks = prune(model, "autos", density=0.02, data=_data(), seed=3, scorer=scorer)
        prune(model, "autos", density=0.02, data=_data(), seed=4, scorer=scorer)  # warned once
    assert len([r for r in caplog.records if "density_guard=off" in r.message]) == 1
    guard = masks.meta["guard"]
    assert guard["reason"] == "density" and guard["fallback"] == "synflow-mask"
    assert guard["verdict"]["gap"] == pytest.approx(0.7) and guard["verdict"]["covered"] == 1.0
    synflow = prune(model, "synflow", density=0.02, data=_data(), seed=3)
    assert all(torch.equal(masks[n], synflow[n]) for n in synflow)
    assert masks.kept == round(0.02 * masks.total)
    # the switch to ablate it, and a target density the evidence does not reach, keep the learned mask
    learned = prune(model, "autos", density=0.02, data=_data(), seed=3, scorer=scorer, density_guard="off")
    far = prune(model, "autos", density=0.2, data=_data(), seed=3, scorer=scorer)
    assert "guard" not in learned.meta and "guard" not in far.meta
    assert not all(torch.equal(learned[n], synflow[n]) for n in synflow)


def test_where_the_teacher_held_its_own_autos_keeps_the_learned_mask(tmp_path) -> None:
    scorer = _scorer_with_evidence(tmp_path, imp=0.85, synflow=0.84, density=0.02)
    model = build_model("lenet_300_100", SHAPE, 10, seed=0)
    guarded = prune(model, "autos", density=0.02, data=_data(), seed=0, scorer=scorer)
    plain = prune(model, "autos", density=0.02, data=_data(), seed=0, scorer=scorer, density_guard="off")
    assert "guard" not in guarded.meta
    assert all(torch.equal(guarded[n], plain[n]) for n in plain)


def test_evidence_changes_the_cell_identity_so_bench_cells_are_recomputed(tmp_path) -> None:
    from autosparse.pruners.registry import make_pruner

    scorer = _scorer_with_evidence(tmp_path, imp=0.1, synflow=0.8, density=0.02)
    with_evidence = make_pruner("autos", {"scorer": scorer}).config.identity()
    shipped = make_pruner("autos", {"scorer": autos_module.DEFAULT_SCORER}).config.identity()
    assert with_evidence["scorer_sha256"] == shipped["scorer_sha256"]  # same weights
    assert with_evidence["evidence_sha256"] != shipped["evidence_sha256"]  # other evidence: other masks
    # where the evidence cannot act, it is not part of the identity: those cells stay current
    off = make_pruner("autos", {"scorer": scorer, "density_guard": "off"}).config.identity()
    assert off == {k: v for k, v in with_evidence.items() if k != "evidence_sha256"}  # all else as with it


def test_shipped_default_records_per_layer_owners_for_the_guard() -> None:
    scorer = load_scorer(autos_module.DEFAULT_SCORER)
    assert scorer.coverage is not None and len(scorer.coverage.owners) == len(scorer.coverage.points)
    lenet = build_model("lenet_300_100", SHAPE, 10, seed=0)
    from autosparse.data.pruning_data import PruningData
    from autosparse.features import compute_features

    table = compute_features(lenet, PruningData.coerce(_data()), names=scorer.features)
    owners = scorer.coverage.nearest_sources(table.layers)
    assert owners is not None and len(owners) == 3
    # the hidden layers (all but 1k of LeNet's 266k weights) are nearest MLP sources; the small
    # classifier may sit nearest a conv net's classifier, which votes with its 1,000 weights only
    assert owners[0].startswith("mlp") and owners[1].startswith("mlp")


def test_a_target_listens_only_to_sources_of_its_kind(tmp_path) -> None:
    """Layer shapes cannot tell a wide ResNet's convs from a VGG's; the vote is among sources of the
    target's kind (plain or residual), as the card records them."""
    out = Path(_scorer_with_evidence(tmp_path, imp=0.10, synflow=0.80, density=0.02))
    card = json.loads((out / "card.json").read_text())
    owners = sorted(set(card["coverage"]["owners"]))
    residual = {s: s.startswith("resnet") for s in owners}
    points = {s: [Point(0.02, 0.60, 0.30) if residual[s] else Point(0.02, 0.10, 0.80)] for s in owners}
    card["evidence"] = DensityEvidence(points, residual=residual).to_card()
    (out / "card.json").write_text(json.dumps(card))
    resnet = build_model("resnet20", SHAPE, 10, seed=0, width=0.25)
    plain = build_model("conv4", SHAPE, 10, seed=0, width=0.25)
    kept = prune(resnet, "autos", density=0.02, data=_data(), seed=0, scorer=str(out))
    handed = prune(plain, "autos", density=0.02, data=_data(), seed=0, scorer=str(out))
    assert kept.meta.get("guard", {}).get("reason") != "density"
    assert handed.meta["guard"]["reason"] == "density"
    assert set(handed.meta["guard"]["verdict"]["per_source"]) <= {s for s, r in residual.items() if not r}
