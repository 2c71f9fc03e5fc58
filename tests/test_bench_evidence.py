"""``train-scorer --add-evidence``: SynFlow's bench cells on a scorer's source shapes, paired with the
IMP accuracies its store recorded, on a tiny real store, scorer and bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autosparse.bench.config import BenchConfig, MethodSpec
from autosparse.bench.evidence import add_evidence
from autosparse.bench.runner import run_bench
from autosparse.cli import main as cli_main
from autosparse.core.errors import ConfigError
from autosparse.scorer.checkpoint import load_checkpoint
from autosparse.scorer.config import ScorerConfig
from autosparse.scorer.training import train_scorer
from autosparse.store import StoreReader
from autosparse.task import ModelSpec
from autosparse.training.irp import IRPConfig
from autosparse.training.trainer import TrainConfig
from data_gen.grid import GenConfig, generate

TRAIN = TrainConfig(epochs=1, num_threads=1)
N_TRAIN, N_TEST = 1200, 300


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> tuple[Path, Path, str]:
    """A store of two MLP sources, a scorer trained on one of them, and that run's id."""
    root = tmp_path_factory.mktemp("evidence")
    store = root / "s.zarr"
    cfg = GenConfig(
        models=[ModelSpec("mlp", {"widths": [48, 24]}), ModelSpec("mlp", {"widths": [40]})],
        datasets=["fashion-mnist"],
        seeds=[0],
        n_train=N_TRAIN,
        n_test=N_TEST,
        irp=IRPConfig(rounds=2, prune_fraction=0.6),
        train=TRAIN,
        samples_per_class=3,
    )
    assert all(o.ok for o in generate(cfg, store))
    scorer = root / "scorer"
    train_scorer(
        store,
        holdout="model_label=mlp-widths40",
        out=scorer,
        config=ScorerConfig(ranker_features=("abs_theta_rank", "snip_rank"), steps=20, eval_every=20, alloc_steps=20),
    )
    (run_id,) = load_checkpoint(scorer)[0].training["train_runs"]
    return store, scorer, run_id


def _bench(out: Path, densities: list[float], epochs: float = 1.0) -> Path:
    config = BenchConfig(
        name="evidence",
        models=[ModelSpec("mlp", {"widths": [48, 24]})],
        methods=[MethodSpec("synflow")],
        densities=densities,
        seeds=[0],
        train=TrainConfig(epochs=epochs, num_threads=1),
        n_train=N_TRAIN,
        n_test=N_TEST,
        samples_per_class=3,
    )
    run_bench(config, out, report=False)
    return out


def test_cells_pair_with_the_rounds_imp_recorded_and_land_on_the_card(sources, tmp_path, capsys) -> None:
    store, scorer, run_id = sources
    attrs = StoreReader(str(store)).attrs(run_id)
    densities = [round(float(d), 6) for d in attrs["densities"][:0:-1]]  # the run's two pruned rounds, ascending
    bench = _bench(tmp_path / "bench", densities)
    sha_before = load_checkpoint(scorer)[0].weights_sha256
    card = add_evidence(scorer, store, [bench])
    points = card.evidence["points"]["mlp-widths48x24"]
    assert [p["density"] for p in points] == densities
    assert [p["imp"] for p in points] == pytest.approx([float(a) for a in attrs["accuracies"][:0:-1]])
    cells = [json.loads(p.read_text()) for p in sorted((bench / "cells").glob("*.json"))]
    by_density = {c["density"]: c["test_accuracy"] for c in cells}
    assert [p["synflow"] for p in points] == pytest.approx([by_density[d] for d in densities])
    assert card.weights_sha256 == sha_before and "--add-evidence" in card.training["evidence_command"]
    assert card.evidence["residual"] == {"mlp-widths48x24": False}  # each source's kind, from its model
    # the command line prints the table it recorded
    assert cli_main(["train-scorer", "--store", str(store), "--out", str(scorer), "--add-evidence", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "mlp-widths48x24" in out and "SynFlow" in out


def test_cells_of_another_recipe_are_not_evidence(sources, tmp_path) -> None:
    store, scorer, run_id = sources
    attrs = StoreReader(str(store)).attrs(run_id)
    other = _bench(tmp_path / "other", [round(float(attrs["densities"][1]), 6)], epochs=2.0)
    with pytest.raises(ConfigError, match="same net, seed, data subset and recipe"):
        add_evidence(scorer, store, [other])
    with pytest.raises(ConfigError, match=r"holds no bench cells .*fmnist_source_evidence\.yaml"):
        add_evidence(scorer, store, [tmp_path / "nowhere"])
