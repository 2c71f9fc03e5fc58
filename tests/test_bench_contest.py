"""The learned method against the best classic one: choice of the best, paired seeds, share of the gap."""

from __future__ import annotations

from pathlib import Path

import pytest

from autosparse.bench import run_bench
from autosparse.bench.config import bench_config_from_dict
from autosparse.bench.contest import contest_table, contests, no_verdicts
from autosparse.core.errors import ConfigError

BASE = {
    "name": "c",
    "models": ["lenet_300_100"],
    "datasets": ["fashion-mnist"],
    "methods": ["synflow", "phew", "autos", "imp"],
    "densities": [0.02, 0.005],
    "seeds": [0, 1, 2],
}
CFG = bench_config_from_dict(BASE)
MODEL = CFG.models[0].label()


def _records(acc: dict[tuple[str, float], list[float]]) -> list[dict]:
    return [
        {"model": MODEL, "dataset": "fashion-mnist", "label": label, "density": d, "seed": s, "test_accuracy": a / 100}
        for (label, d), values in acc.items()
        for s, a in enumerate(values)
    ]


def test_best_classic_by_mean_paired_seeds_and_share_of_the_gap() -> None:
    records = _records(
        {
            ("synflow", 0.005): [36.0, 37.0, 35.0],
            ("phew", 0.005): [40.0, 36.0, 38.3],  # mean 38.1: the best classic method here
            ("autos", 0.005): [50.0, 55.0, 54.0],
            ("imp", 0.005): [53.0, 54.0, 54.4],
            ("synflow", 0.02): [70.0, 71.0, 70.8],
            ("phew", 0.02): [75.0, 76.0, 74.6],
            ("autos", 0.02): [74.9, 76.5, 73.6],  # above PHEW on seed 1 only
            ("imp", 0.02): [74.5, 74.5, 74.5],  # IMP below PHEW: no gap to close
        }
    )
    by_density = {c.density: c for c in contests(CFG, records, MODEL, "fashion-mnist")}
    deep = by_density[0.005]
    assert deep.best == "phew" and deep.best_mean == pytest.approx(38.1)
    assert deep.margin == pytest.approx(53.0 - 38.1) and (deep.seeds_above, deep.seeds_paired) == (3, 3)
    assert deep.gap_share == pytest.approx((53.0 - 38.1) / (53.8 - 38.1))
    shallow = by_density[0.02]
    assert shallow.best == "phew" and shallow.seeds_above == 1 and shallow.gap_share is None
    table = contest_table([shallow, deep])
    assert "| autos | 98% | phew 75.2 | -0.2 | 1 of 3 | imp 74.5 | none: IMP is not above it |" in table
    assert "| autos | 99.5% | phew 38.1 | +14.9 | 3 of 3 | imp 53.8 | 95% |" in table


def test_the_gap_is_measured_to_the_imp_row_the_config_names() -> None:
    # a grid with magnitude IMP and the flow teacher: the first imp row by default, the named one with gap_to
    rows = ["synflow", "autos", "imp", {"method": "imp", "hparams": {"criterion": "flow"}, "label": "imp-flow"}]
    records = _records(
        {
            ("synflow", 0.005): [40.0, 40.0, 40.0],
            ("autos", 0.005): [45.0, 45.0, 45.0],
            ("imp", 0.005): [10.0, 10.0, 10.0],
            ("imp-flow", 0.005): [50.0, 50.0, 50.0],
        }
    )
    default = bench_config_from_dict({**BASE, "methods": rows})
    (first,) = [c for c in contests(default, records, MODEL, "fashion-mnist") if c.density == 0.005]
    assert first.imp == "imp" and first.gap_share is None
    named = bench_config_from_dict({**BASE, "methods": rows, "gap_to": "imp-flow"}).validate()
    (flow,) = [c for c in contests(named, records, MODEL, "fashion-mnist") if c.density == 0.005]
    assert flow.imp == "imp-flow" and flow.gap_share == pytest.approx(0.5)
    with pytest.raises(
        ConfigError,
        match=r"gap_to 'imp_lth' \(the config's or --gap-to\) is not an imp row of this bench; use one of: imp, imp-flow",
    ):
        bench_config_from_dict({**BASE, "methods": rows, "gap_to": "imp_lth"}).validate()
    # --methods that keeps no imp row (the baselines alone) measures no gap: the config's gap_to stands
    only = bench_config_from_dict({**BASE, "methods": ["synflow"], "gap_to": "imp-flow"}).validate()
    assert only.gap_to == "imp-flow"
    with pytest.raises(ConfigError, match=r"add the row 'imp-flow' to --methods, or clear it with --gap-to ''"):
        bench_config_from_dict({**BASE, "methods": ["synflow", "imp"], "gap_to": "imp-flow"}).validate()


def test_a_loss_says_so_and_missing_rows_are_left_out() -> None:
    records = _records({("synflow", 0.005): [40.0, 41.0, 42.0], ("autos", 0.005): [30.0, 31.0, 29.0]})
    rows = contests(CFG, records, MODEL, "fashion-mnist")
    assert len(rows) == 1 and rows[0].imp_mean is None  # no IMP cells, no cells at 98%
    # the grid's other classic row has no cells here: the verdict says so (it said "share its seeds")
    table = contest_table(rows)
    assert (
        "| autos | 99.5% | synflow 41.0 (1 of 2 classic rows compared: 1 has no cells here) | -11.0 | 0 of 3 |" in table
    )
    rows = contests(
        CFG,
        _records({("synflow", 0.005): [40.0], ("autos", 0.005): [30.0], ("imp", 0.005): [60.0]}),
        MODEL,
        "fashion-mnist",
    )
    assert "none: below it" in contest_table(rows)
    # past IMP the ratio only measured how small IMP's lead was (a bench showed 1950%)
    above = _records({("synflow", 0.005): [21.5], ("autos", 0.005): [36.7], ("imp", 0.005): [22.3]})
    table = contest_table(contests(CFG, above, MODEL, "fashion-mnist"))
    assert "| imp 22.3 | all: +14.4 over IMP |" in table and "%" not in table.splitlines()[-1].split("|")[-2]
    assert contest_table(contests(CFG, _records({("synflow", 0.005): [40.0]}), MODEL, "fashion-mnist")) == ""


def test_a_diverged_row_is_not_the_best_classic_one_and_a_diverged_learned_row_gets_no_verdict() -> None:
    """As in the accuracy table: a classic row that diverged (any seed) is no candidate for the best one,
    and the learned row's own divergence is said, not counted as a margin."""
    records = _records(
        {
            ("synflow", 0.005): [90.0, 90.0, 90.0],  # high, but one seed diverged: not the best classic row
            ("phew", 0.005): [40.0, 41.0, 42.0],
            ("autos", 0.005): [50.0, 50.0, 50.0],
            ("imp", 0.005): [60.0, 60.0, 60.0],
            ("synflow", 0.02): [70.0, 70.0, 70.0],
            ("phew", 0.02): [60.0, 60.0, 60.0],
            ("autos", 0.02): [10.0, 75.0, 75.0],  # seed 0 diverged
        }
    )
    for r in records:
        if (r["label"], r["density"], r["seed"]) in {("synflow", 0.005, 1), ("autos", 0.02, 0)}:
            r["diverged"] = "loss 4e13 at epoch 1"
    by_density = {c.density: c for c in contests(CFG, records, MODEL, "fashion-mnist")}
    deep, shallow = by_density[0.005], by_density[0.02]
    assert (deep.best, deep.margin, deep.seeds_above, deep.diverged) == ("phew", pytest.approx(9.0), 3, False)
    assert (deep.classic_compared, deep.classic_diverged) == (1, 1)
    assert shallow.diverged and shallow.best == "synflow" and shallow.gap_share is None
    table = contest_table([shallow, deep])
    assert "| autos ‡ | 98% | synflow 70.0 | – | – | – | none: its training diverged ‡ |" in table
    assert "| autos | 99.5% | phew 41.0 (1 of 2 classic rows compared: 1 diverged) | +9.0 | 3 of 3 |" in table
    # every classic row diverged: nothing to compare with
    only = [
        dict(r, diverged="nan") if r["label"] in ("synflow", "phew") and r["density"] == 0.005 else r for r in records
    ]
    assert [c.density for c in contests(CFG, only, MODEL, "fashion-mnist")] == [0.02]
    # IMP diverged: no share of a gap to it (it was measured against IMP's chance-level accuracy; helper)
    imp_off = [dict(r, diverged="nan") if r["label"] == "imp" and r["seed"] == 2 else r for r in records]
    row = {c.density: c for c in contests(CFG, imp_off, MODEL, "fashion-mnist")}[0.005]
    assert row.imp_diverged and row.imp_mean is None and row.gap_share is None and row.margin == pytest.approx(9.0)
    assert "| imp ‡ | none: IMP's training diverged ‡ |" in contest_table([row])


def test_the_margin_compares_the_same_seeds() -> None:
    # a grid still running: autos has seed 0 only, PHEW all three; the margin is seed 0's
    records = _records({("phew", 0.005): [40.0, 30.0, 20.0], ("imp", 0.005): [50.0, 50.0, 50.0]})
    records += _records({("autos", 0.005): [45.0]})
    (row,) = contests(CFG, records, MODEL, "fashion-mnist")
    assert (row.mean, row.best_mean, row.seeds_paired, row.imp_mean) == (45.0, 40.0, 1, 50.0)
    assert row.gap_share == pytest.approx(0.5)


def test_the_best_classic_row_is_the_highest_mean_and_a_row_missing_seeds_says_so() -> None:
    """The row with the smallest margin on shared seeds was named "best": a row whose seed-1 and seed-2 cells
    failed shared only the learned row's weakest seed, and was named although its mean was the lowest. The
    footnote's rule: the highest mean over its finished seeds; the margin on the seeds the two share."""
    records = _records({("synflow", 0.005): [40.0, 41.0, 42.0], ("autos", 0.005): [30.0, 45.0, 46.0]})
    records += _records({("phew", 0.005): [31.0]})  # seeds 1 and 2 failed: mean 31, the lowest
    (row,) = contests(CFG, records, MODEL, "fashion-mnist")
    assert (row.best, row.margin, row.seeds_above, row.seeds_paired) == ("synflow", pytest.approx(-2.0 / 3), 2, 3)
    # the best row missing seeds the learned row has: its margin is on fewer, and the verdict says which
    records = _records({("synflow", 0.005): [40.0, 41.0, 42.0], ("autos", 0.005): [50.0, 45.0, 46.0]})
    records += _records({("phew", 0.005): [48.0]})  # seed 0 only, the highest mean
    (row,) = contests(CFG, records, MODEL, "fashion-mnist")
    assert (row.best, row.margin, row.seeds_paired, row.best_lacks) == ("phew", 2.0, 1, (1, 2))
    assert "| phew 48.0 (lacks seeds 1, 2 of autos's) | +2.0 | 1 of 1 |" in contest_table([row])
    # a row sharing no seed is no rival, and is said as such (not as a row without cells)
    records = _records({("synflow", 0.005): [40.0], ("autos", 0.005): [50.0]})
    records += [dict(r, seed=2) for r in _records({("phew", 0.005): [60.0]})]
    (row,) = contests(CFG, records, MODEL, "fashion-mnist")
    assert row.best == "synflow" and "(1 of 2 classic rows compared: 1 shares none of its seeds)" in contest_table(
        [row]
    )


def test_a_margin_that_rounds_to_zero_is_level_not_below() -> None:
    """-0.02 points printed "-0.0" and "none: below it"."""
    records = _records({("synflow", 0.005): [40.02], ("autos", 0.005): [40.0], ("imp", 0.005): [60.0]})
    table = contest_table(contests(CFG, records, MODEL, "fashion-mnist"))
    assert "| 0.0 | 0 of 1 | imp 60.0 | none: level with it |" in table and "-0.0" not in table


def test_the_report_states_the_verdict(tmp_path: Path) -> None:
    cfg = bench_config_from_dict(
        {
            "name": "tiny",
            "models": [{"model": "mlp", "model_kwargs": {"widths": [32]}}],
            "datasets": ["fake:fashion-mnist"],
            "methods": ["magnitude", "autos"],
            "densities": [0.1],
            "seeds": [0],
            "n_train": 256,
            "n_test": 128,
            "train": {"epochs": 1, "batch_size": 64, "num_threads": 1},
        }
    )
    run = run_bench(cfg, tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "### The learned method against the best classic one" in text
    assert "| autos | 90% | magnitude " in text and "the learned method against" in run.report.tables.lower()


def test_a_share_of_the_gap_needs_imp_on_the_margins_seeds() -> None:
    """IMP's mean over seed 0 against a margin over seeds 0-2 turned a loss into a share of the gap (helper)."""
    records = _records({("synflow", 0.005): [40.0, 41.0, 42.0], ("autos", 0.005): [45.0, 46.0, 47.0]})
    records += _records({("imp", 0.005): [60.0]})
    (row,) = contests(CFG, records, MODEL, "fashion-mnist")
    assert row.imp_lacks == (1, 2) and row.imp_mean == 60.0 and row.gap_share is None
    assert "| imp 60.0 (lacks seeds 1, 2) | none: IMP lacks seeds 1, 2 of the margin's |" in contest_table([row])
    # IMP with every seed of the margin (and more) measures the share on the margin's seeds
    records = _records({("synflow", 0.005): [40.0], ("autos", 0.005): [45.0], ("imp", 0.005): [50.0, 90.0]})
    (row,) = contests(CFG, records, MODEL, "fashion-mnist")
    assert row.imp_lacks == () and row.imp_mean == 50.0 and row.gap_share == pytest.approx(0.5)


def test_seeds_the_learned_row_lacks_are_said() -> None:
    records = _records({("synflow", 0.005): [40.0, 41.0, 42.0], ("imp", 0.005): [60.0, 60.0, 60.0]})
    records += _records({("autos", 0.005): [45.0]})
    (row,) = contests(CFG, records, MODEL, "fashion-mnist")
    assert row.learned_lacks == (1, 2)
    assert "| autos (lacks seeds 1, 2) | 99.5% | synflow 40.0 (1 of 2 classic rows compared" in contest_table([row])


def test_every_density_without_a_verdict_says_why() -> None:
    """A density missing from the verdict table read as never run (helper)."""
    records = _records({("synflow", 0.02): [70.0, 70.0, 70.0], ("synflow", 0.005): [40.0, 40.0, 40.0]})
    records += _records({("autos", 0.005): [45.0, 45.0, 45.0], ("phew", 0.005): [41.0, 41.0, 41.0]})
    rows = contests(CFG, records, MODEL, "fashion-mnist")
    assert [c.density for c in rows] == [0.005]
    assert no_verdicts(CFG, records, MODEL, "fashion-mnist", rows) == [
        "No verdict for autos at 98% sparsity: autos has no finished cell here."
    ]
    diverged = [dict(r, diverged="loss nan") if r["label"] in ("synflow", "phew") else r for r in records]
    assert no_verdicts(CFG, diverged, MODEL, "fashion-mnist", contests(CFG, diverged, MODEL, "fashion-mnist")) == [
        "No verdict for autos at 98% sparsity: autos has no finished cell here.",
        "No verdict for autos at 99.5% sparsity: every classic row's training diverged here ‡.",
    ]


def test_a_grid_without_classic_rows_asks_no_verdict() -> None:
    """A screen of scorers (learned rows only) got a "no classic row has a finished cell" line per density (review)."""
    cfg = bench_config_from_dict({**BASE, "methods": ["autos", {"method": "autos", "label": "autos-b"}, "imp"]})
    records = _records({("autos", 0.005): [45.0, 45.0, 45.0], ("autos-b", 0.005): [44.0, 44.0, 44.0]})
    assert no_verdicts(cfg, records, MODEL, "fashion-mnist", contests(cfg, records, MODEL, "fashion-mnist")) == []
