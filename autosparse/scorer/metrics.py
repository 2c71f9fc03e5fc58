"""How well a scorer ranks held-out weights, in the terms the mask will be used in.

- ``spearman``: rank correlation of score and IRP label within each layer (averaged);
- ``precision@round r``: per layer, take as many top-scored weights as IMP kept in round r;
  the fraction of them IMP also kept. This isolates *which* weights from *how many*;
- ``alloc_log_error``: mean |log(predicted layer density / IMP layer density)|, the *how many*;
- ``mask_overlap``: both together: the full autos mask against IMP's mask at the same density.

The same functions score SNIP, GraSP, SynFlow and magnitude used as rankers, so the docs can
put the learned scorer next to them on equal terms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr


def spearman_within_layers(scores: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]) -> float:
    vals = []
    for s, y in zip(scores, labels, strict=True):
        if y.numel() < 3 or int(y.min()) == int(y.max()):
            continue
        rho = spearmanr(s.numpy(), y.numpy()).statistic
        if np.isfinite(rho):
            vals.append(float(rho))
    return float(np.mean(vals)) if vals else float("nan")


def precision_at_round(scores: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], r: int) -> float:
    """Overlap with IMP's round-r mask when each layer keeps IMP's count (ranking only)."""
    hit = total = 0
    for s, y in zip(scores, labels, strict=True):
        keep = y >= r
        k = int(keep.sum())
        if k == 0:
            continue
        top = torch.argsort(s, descending=True, stable=True)[:k]
        hit += int(keep[top].sum())
        total += k
    return hit / total if total else float("nan")


def random_precision(labels: Sequence[torch.Tensor], r: int) -> float:
    """Expected precision of a random within-layer ranking (the floor to beat)."""
    num = den = 0.0
    for y in labels:
        k = float((y >= r).sum())
        num += k * k / y.numel()
        den += k
    return num / den if den else float("nan")


def alloc_log_error(pred: Sequence[float], actual: Sequence[float], numel: Sequence[int]) -> float:
    errs = [abs(math.log(max(p, 1.0 / n) / max(a, 1.0 / n))) for p, a, n in zip(pred, actual, numel, strict=True)]
    return float(np.mean(errs))


def mask_overlap(
    scores: Sequence[torch.Tensor], counts: Sequence[int], labels: Sequence[torch.Tensor], r: int
) -> float:
    """|autos mask ∩ IMP mask| / |IMP mask| with autos keeping ``counts`` per layer."""
    hit = total = 0
    for s, k, y in zip(scores, counts, labels, strict=True):
        keep = y >= r
        total += int(keep.sum())
        if k > 0:
            top = torch.argsort(s, descending=True, stable=True)[:k]
            hit += int(keep[top].sum())
    return hit / total if total else float("nan")


def heldout_table(metrics: dict[str, dict], scorer_names: dict[str, dict] | None = None) -> str:
    """Markdown: held-out ranking quality of learned scorers next to classic saliencies as rankers.

    ``metrics`` is a card's ``metrics`` (per held-out run: spearman, rounds → precision…);
    ``scorer_names`` optionally maps extra row names to other cards' metrics on the same runs.
    Precision is averaged over the held-out runs that share an IRP schedule — one table per
    schedule, since round r of an MLP run and of a conv run are different densities.
    """
    if not metrics:
        return "(no held-out runs)"
    groups: dict[tuple[float, ...], list[str]] = {}
    for run, m in metrics.items():
        sched = tuple(round(float(m["rounds"][r]["density"]), 6) for r in sorted(m["rounds"], key=int))
        groups.setdefault(sched, []).append(run)
    tables = []
    for runs in groups.values():
        title = ", ".join(sorted({run.split("__")[0] for run in runs}))
        tables.append(f"{title} ({len(runs)} runs)\n" + _schedule_table(metrics, runs, scorer_names))
    return "\n\n".join(tables)


def _schedule_table(metrics: dict[str, dict], runs: list[str], scorer_names: dict[str, dict] | None) -> str:
    cards = {"learned": metrics, **(scorer_names or {})}
    rounds = sorted(int(r) for r in metrics[runs[0]]["rounds"])
    dens = {r: float(np.mean([metrics[run]["rounds"][str(r)]["density"] for run in runs])) for r in rounds}
    deep = [r for r in rounds if dens[r] <= 0.05]
    header = ["ranker", "Spearman", *[f"prec. @ {100 * dens[r]:.2g}%" for r in deep]]
    rows = []

    def row(name: str, card: dict, key: str, sp_key: str) -> None:
        sp = np.nanmean([card[run].get(sp_key, np.nan) for run in runs if run in card])
        precs = [
            np.nanmean([card[run]["rounds"].get(str(r), {}).get(key, np.nan) for run in runs if run in card])
            for r in deep
        ]
        rows.append([name, f"{sp:.3f}", *[f"{p:.3f}" for p in precs]])

    for name, card in cards.items():
        row(name, card, "precision", "spearman")
    for base in ("magnitude", "snip", "grasp", "synflow"):
        row(base, metrics, f"precision_{base}", f"spearman_{base}")
    rows.append(
        [
            "random",
            "0",
            *[f"{np.nanmean([metrics[run]['rounds'][str(r)]['random_precision'] for run in runs]):.3f}" for r in deep],
        ]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
