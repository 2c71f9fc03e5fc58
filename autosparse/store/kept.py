"""How IMP allocated one source run: per layer, the weights still kept after each IRP round.

Why: the learned allocator imitates these counts, so when ``autos`` starves or floods a layer the
first question is whether its teacher did the same (docs/SCORER.md compares the θ0 and the
late-rewind teachers this way). The labels already hold the answer — a weight labelled ``k < R``
was pruned in round ``k + 1``, ``R`` means it survived every round — so nothing is rebuilt or
retrained, and the table is exact whatever the run's recorded attributes say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autosparse.core.errors import StoreError
from autosparse.store.reader import StoreReader


@dataclass(frozen=True)
class KeptTable:
    """Kept weights per layer (columns) after each round (rows; row 0 is the dense network)."""

    run_id: str
    layer_names: list[str]
    layer_shapes: list[list[int]]
    kept: np.ndarray  # (rounds + 1, n_layers) int64
    accuracies: list[float]  # test accuracy after each row's training, as the run recorded it (may be empty)

    @property
    def rounds(self) -> int:
        return self.kept.shape[0] - 1

    def format(self, last: int | None = None) -> str:
        """A text table: one row per layer, one column per round (the last ``last`` rounds, or all)."""
        first = 0 if last is None else max(0, self.rounds + 1 - last)
        rows = list(range(first, self.rounds + 1))
        total = self.kept[0].sum()
        head = ["layer", "shape"] + [f"r{r}" for r in rows]
        body = [
            [name, "x".join(map(str, shape))] + [str(int(self.kept[r, j])) for r in rows]
            for j, (name, shape) in enumerate(zip(self.layer_names, self.layer_shapes, strict=True))
        ]
        body.append(["all", ""] + [str(int(self.kept[r].sum())) for r in rows])
        body.append(["density", ""] + [f"{self.kept[r].sum() / total:.4g}" for r in rows])
        if self.accuracies:
            body.append(
                ["test acc", ""]
                + [
                    f"{self.accuracies[r]:.4f}"
                    if r < len(self.accuracies) and not math.isnan(self.accuracies[r])
                    else "-"
                    for r in rows
                ]
            )
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

        def line(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        return "\n".join(
            [
                f"run {self.run_id}: weights kept per layer after each IRP round (r0 = dense)",
                line(head),
                *map(line, body),
            ]
        )


def kept_per_round(path: str | Path, run_id: str) -> KeptTable:
    """Count, from a complete run's labels, each layer's weights kept after every IRP round."""
    run = StoreReader(path).load_run(run_id, columns=[])  # an unknown or incomplete run: the reader's error
    label = np.asarray(run.label, dtype=np.int64)
    layer = np.asarray(run.layer, dtype=np.int64)
    n_layers, rounds = len(run.layers), run.rounds
    # weights pruned in round k + 1 carry label k; a weight is kept after round r when its label is >= r
    if label.size and (label.min() < 0 or label.max() > rounds):
        raise StoreError(
            f"run {run_id!r} has labels outside 0..{rounds} (its IRP rounds); check the store with "
            f"`autosparse store validate {path}` and regenerate the run if it is broken"
        )
    counts = np.zeros((rounds + 1, n_layers), dtype=np.int64)
    np.add.at(counts, (label, layer), 1)
    kept = counts[::-1].cumsum(axis=0)[::-1]
    accuracies = [float(a) if a is not None else math.nan for a in run.attrs.get("accuracies") or []]
    return KeptTable(
        run_id,
        [str(e["name"]) for e in run.layers],
        [list(e["shape"]) for e in run.layers],
        kept,
        accuracies,
    )
