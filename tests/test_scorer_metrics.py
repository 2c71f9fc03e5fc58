"""The held-out ranking table train-scorer prints: one table per IRP schedule."""

from __future__ import annotations

from autosparse.scorer.metrics import heldout_table


def _run(densities: list[float], precision: float) -> dict:
    rounds = {
        str(r + 1): {
            "density": d,
            "precision": precision,
            "random_precision": d,
            **{f"precision_{b}": precision / 2 for b in ("magnitude", "snip", "grasp", "synflow")},
        }
        for r, d in enumerate(densities)
    }
    return {
        "spearman": 0.5,
        **{f"spearman_{b}": 0.1 for b in ("magnitude", "snip", "grasp", "synflow")},
        "rounds": rounds,
    }


def test_runs_with_different_schedules_get_a_table_each() -> None:
    """Round 7 of an MLP run (10 rounds) and of a conv run (8) are different densities: a mixed
    holdout crashed the table (KeyError '7' on the conv run) or would have averaged across them."""
    metrics = {
        "mlp-a__fashion-mnist__s0__x": _run([0.5**r for r in range(1, 11)], 0.3),
        "mlp-a__fashion-mnist__s1__y": _run([0.5**r for r in range(1, 11)], 0.5),
        "conv4__fashion-mnist__s0__z": _run([0.5 ** (r + 1) for r in range(1, 9)], 0.9),
    }
    text = heldout_table(metrics)
    mlp, conv = text.split("\n\n")
    assert mlp.startswith("mlp-a (2 runs)") and conv.startswith("conv4 (1 runs)")
    # the MLP table averages only the two MLP runs; the deepest conv column is its own density
    learned = next(line for line in mlp.splitlines() if line.startswith("| learned"))
    assert set(learned.strip("| ").split(" | ")[2:]) == {"0.400"}
    assert "prec. @ 0.2%" in conv.splitlines()[1] and "| learned | 0.500 | 0.900 |" in conv
