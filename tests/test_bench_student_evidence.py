"""``train-scorer --add-student-evidence``: a scorer's own learned cells paired with SynFlow's on the
same nets, grouped by network kind, on a real (tiny) bench and a copy of the shipped scorer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autosparse.bench.config import BenchConfig, MethodSpec
from autosparse.bench.runner import run_bench
from autosparse.bench.student_evidence import add_student_evidence
from autosparse.cli import main as cli_main
from autosparse.core.errors import ConfigError
from autosparse.scorer import autos as autos_module
from autosparse.scorer.checkpoint import SHIPPED_DIR, load_checkpoint, save_checkpoint
from autosparse.task import ModelSpec
from autosparse.training.trainer import TrainConfig

N_TRAIN, N_TEST = 1200, 300
OFF = {"density_guard": "off", "student_guard": "off", "collapse": "off"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the default scorer, and a bench of its learned mask and SynFlow's on a plain conv
    net and an MLP (plus a row with the density guard on, which is not the learned mask)."""
    root = tmp_path_factory.mktemp("student")
    scorer = root / "scorer"
    shutil.copytree(SHIPPED_DIR / autos_module.DEFAULT_SCORER, scorer)
    config = BenchConfig(
        name="student",
        models=[ModelSpec("conv2", {"width": 0.125}), ModelSpec("mlp", {"widths": [48, 24]})],
        methods=[
            MethodSpec("synflow"),
            MethodSpec("autos", {"scorer": str(scorer), **OFF}, label="learned"),
            MethodSpec("autos", {"scorer": str(scorer), "student_guard": "off"}, label="guarded"),
        ],
        densities=[0.05],
        seeds=[0],
        train=TrainConfig(epochs=1, num_threads=1),
        n_train=N_TRAIN,
        n_test=N_TEST,
        samples_per_class=3,
    )
    run_bench(config, root / "bench", report=False)
    return scorer, root / "bench"


def test_learned_cells_pair_with_synflow_by_kind_and_land_on_the_card(bench, capsys) -> None:
    scorer, folder = bench
    sha_before = load_checkpoint(scorer)[0].weights_sha256
    card = add_student_evidence(scorer, [folder])
    cells = [json.loads(p.read_text()) for p in sorted((folder / "cells").glob("*.json"))]
    acc = {(c["model"], c["label"]): c["test_accuracy"] for c in cells}
    points = card.student["points"]
    assert set(points) == {"plain-conv", "plain"}  # each net's kind, from its model
    (conv,) = points["plain-conv"]
    assert conv["net"] == "conv2-width0.125" and conv["density"] == 0.05 and conv["seeds"] == 1
    assert conv["learned"] == pytest.approx(acc[("conv2-width0.125", "learned")])
    assert conv["synflow"] == pytest.approx(acc[("conv2-width0.125", "synflow")])
    (mlp,) = points["plain"]
    assert mlp["learned"] == pytest.approx(acc[("mlp-widths48x24", "learned")])
    assert card.weights_sha256 == sha_before and "--add-student-evidence" in card.training["student_command"]
    # the command line needs no store for it, and prints the table with the verdict per kind
    assert cli_main(["train-scorer", "--out", str(scorer), "--add-student-evidence", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "conv2-width0.125" in out and "-> plain-conv at 5.00%" in out


def test_cells_of_other_weights_are_not_the_students_evidence(bench, tmp_path) -> None:
    _, folder = bench
    other = tmp_path / "other"
    shutil.copytree(SHIPPED_DIR / "autos_gnn", other)  # another scorer's weights: none of these cells are its
    with pytest.raises(ConfigError, match="current weights"):
        add_student_evidence(other, [folder])
    # the hint names the student's bench, not the source evidence's
    with pytest.raises(ConfigError, match=r"holds no bench cells .*fmnist_student_evidence\.yaml") as err:
        add_student_evidence(other, [tmp_path / "nowhere"])
    assert "source_evidence" not in str(err.value)


def test_a_rescued_collapse_is_not_the_students_mask(bench, tmp_path) -> None:
    """With the collapse rule on, a learned allocation that disconnects the net records SynFlow's
    accuracy as the student's: such cells (the definition before 2026-12-02) do not count."""
    scorer, folder = bench
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    for path in (old / "cells").glob("*.json"):
        cell = json.loads(path.read_text())
        cell["hparams"] = {k: v for k, v in (cell.get("hparams") or {}).items() if k != "collapse"}
        path.write_text(json.dumps(cell))
    with pytest.raises(ConfigError, match="student_guard and collapse off"):
        add_student_evidence(scorer, [old])


def test_kept_points_are_replaced_only_where_the_folders_measure(bench, tmp_path) -> None:
    scorer, folder = bench
    mine = tmp_path / "scorer"
    shutil.copytree(scorer, mine)
    card, tensors = load_checkpoint(mine)
    card.student = {
        "margin": 0.03,
        "reach": 2.0,
        "provenance": ["earlier/folder"],
        "points": {
            "plain-conv": [
                {"net": "conv2-width0.125", "density": 0.05, "learned": 0.1, "synflow": 0.9, "seeds": 2},
                {"net": "conv2-width0.125", "density": 0.01, "learned": 0.2, "synflow": 0.3, "seeds": 2},
            ],
            "residual": [{"net": "resnet20-width0.75", "density": 0.01, "learned": 0.7, "synflow": 0.6, "seeds": 2}],
        },
    }
    save_checkpoint(mine, tensors, card)
    merged = add_student_evidence(mine, [folder], keep_other_points=True).student
    fresh = add_student_evidence(scorer, [folder]).student
    conv = {p["density"]: p for p in merged["points"]["plain-conv"]}
    assert conv[0.05] == next(p for p in fresh["points"]["plain-conv"] if p["density"] == 0.05)  # measured: replaced
    assert conv[0.01]["learned"] == 0.2 and merged["points"]["residual"][0]["learned"] == 0.7  # not measured: kept
    assert merged["points"]["plain"] == fresh["points"]["plain"]  # a new net joins
    assert merged["margin"] == 0.03 and merged["provenance"] == ["earlier/folder", str(folder)]
    assert "--keep-student-points" in load_checkpoint(mine)[0].training["student_command"]


def test_train_scorer_without_a_store_says_which_flag_is_missing(tmp_path, capsys) -> None:
    assert cli_main(["train-scorer", "--out", str(tmp_path / "x")]) != 0
    assert "--store" in capsys.readouterr().err
