"""Put the density evidence on a scorer's card: SynFlow's bench cells on the scorer's own source
shapes next to the accuracies the store recorded for IMP at the same densities.

Why here: the SynFlow side is bench cells (resumable, one JSON each), the IMP side is the store's
run attributes, and the card is the scorer's — this is the one place that sees all three. A cell
counts for a run only if it trained the same net (model and kwargs), from the same init seed, on
the same data subset, with the same recipe as the run's IRP rounds; anything else would compare
two recipes, not two masks. See :mod:`autosparse.scorer.evidence` for how ``autos`` uses it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autosparse.bench.cells import CELLS_DIR, read_cell
from autosparse.core.errors import ConfigError, StoreError
from autosparse.models import build_model
from autosparse.scorer.checkpoint import Card, changes_scorer_in_place, load_checkpoint, local_scorer, save_checkpoint
from autosparse.scorer.coverage import source_label
from autosparse.scorer.evidence import DensityEvidence, Point
from autosparse.store.reader import StoreReader
from autosparse.topology.merges import ProbeError, residual_kind

#: recipe fields that do not change a trained mask's accuracy (threads, evaluation batching) or
#: that the bench spells elsewhere (the training seed is the cell's seed)
_COSMETIC = ("num_threads", "eval_batch_size", "eval_every_epoch", "seed", "device")
#: a cell's density and an IRP round's recorded density agree within this relative tolerance
#: (IRP keeps exact global counts, so its densities sit a hair off the powers of two)
_DENSITY_TOL = 0.01


def training_recipe(train: dict[str, Any]) -> dict[str, Any]:
    """What of a cell's or run's training config decides its accuracy (cosmetic fields dropped, numbers as floats)."""
    return {
        k: (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
        for k, v in train.items()
        if k not in _COSMETIC
    }


def _matches(cell: dict[str, Any], attrs: dict[str, Any]) -> bool:
    spec, run = cell.get("spec") or {}, attrs.get("spec") or {}
    data = spec.get("data", {})
    return (
        cell.get("method") == "synflow"
        and not cell.get("hparams")
        and cell.get("model_name") == attrs.get("model")
        and (cell.get("model_kwargs") or {}) == (attrs.get("model_kwargs") or {})
        and cell.get("dataset") == attrs.get("dataset")
        and int(cell.get("seed", -1)) == int(attrs.get("seed", -2))
        and data.get("n_train") == run.get("n_train")
        and data.get("n_test") == run.get("n_test")
        and int(data.get("data_seed", 0)) == int(attrs.get("seed", 0))
        and training_recipe(spec.get("train", {})) == training_recipe(run.get("train", {}))
    )


#: the bench whose cells the source (density) evidence reads
SOURCE_CONFIG = "configs/bench/fmnist_source_evidence.yaml"


def read_cells(folders: Sequence[str | Path], *, config: str = SOURCE_CONFIG) -> list[dict[str, Any]]:
    """Every readable cell of ``folders``; ``config`` is the bench the hint of a folder without cells
    names, since the source and the student evidence read the cells of different benches (the
    student's hint sent users to the source bench)."""
    cells: list[dict[str, Any]] = []
    for folder in folders:
        cell_dir = Path(folder) / CELLS_DIR
        if not cell_dir.is_dir():
            raise ConfigError(
                f"{folder} holds no bench cells ({cell_dir} is missing); run its bench first, e.g. "
                f"`autosparse bench --config {config} --out {folder}`"
            )
        cells.extend(c for p in sorted(cell_dir.glob("*.json")) if (c := read_cell(p)) is not None)
    return cells


def collect_evidence(runs: Mapping[str, Mapping[str, Any]], cells: Sequence[dict[str, Any]]) -> DensityEvidence:
    """Pair every SynFlow cell with the IRP round of a matching source run (run id → its store
    attributes) at the same density.

    Several runs or seeds of one architecture at one density are averaged (IMP and SynFlow alike).
    """
    pairs: dict[str, dict[float, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for run_id, attrs in runs.items():
        arch = source_label(attrs, run_id)
        densities, accuracies = attrs.get("densities", []), attrs.get("accuracies", [])
        for cell in cells:
            if not _matches(cell, attrs):
                continue
            d = float(cell["density"])
            rounds = [r for r, rd in enumerate(densities) if abs(float(rd) - d) <= _DENSITY_TOL * d]
            imp = accuracies[rounds[0]] if rounds and rounds[0] < len(accuracies) else None
            if imp is not None and imp == imp:  # a round without a recorded accuracy is no evidence
                pairs[arch][d].append((float(imp), float(cell["test_accuracy"])))
    points = {
        arch: [
            Point(d, sum(i for i, _ in v) / len(v), sum(s for _, s in v) / len(v))
            for d, v in sorted(by_density.items())
        ]
        for arch, by_density in pairs.items()
    }
    return DensityEvidence(points)


def source_kinds(runs: Mapping[str, Mapping[str, Any]]) -> dict[str, bool]:
    """Every source architecture's kind — plain, or with skip connections — from its model, rebuilt
    from the run's recorded spec (the density guard compares a target with sources of its kind)."""
    kinds: dict[str, bool] = {}
    for run_id, attrs in runs.items():
        arch = source_label(attrs, run_id)
        if arch in kinds:
            continue
        shape = tuple(attrs["input_shape"])
        model = build_model(
            str(attrs["model"]), shape, int(attrs["num_classes"]), seed=0, **attrs.get("model_kwargs", {})
        )
        try:
            kinds[arch] = residual_kind(model, shape)
        except ProbeError as exc:
            raise ConfigError(
                f"cannot tell whether source {arch} ({run_id}) has skip connections: {exc}; its recorded spec "
                "(model, model_kwargs, input_shape) no longer builds a working model — check the model zoo's "
                "options against `autosparse store info`"
            ) from exc
    return kinds


@changes_scorer_in_place
def add_evidence(scorer: str | Path, store: str | Path, folders: Sequence[str | Path]) -> Card:
    """Record the density evidence of an existing scorer's training runs on its card, in place
    (weights untouched). Folders are bench output folders whose SynFlow cells trained the source
    shapes with the sources' recipes."""
    directory = local_scorer(scorer)
    card, tensors = load_checkpoint(directory)
    train_ids = list(card.training.get("train_runs", []))
    reader = StoreReader(str(store))
    missing = sorted(set(train_ids) - set(reader.run_ids))
    if missing:
        raise StoreError(
            f"{store} lacks {len(missing)} of the scorer's training runs (e.g. {missing[0]}); pass the store it was "
            "trained on"
        )
    runs = {run_id: reader.attrs(run_id) for run_id in train_ids}
    evidence = collect_evidence(runs, read_cells(folders))
    evidence.residual = source_kinds(runs)
    if not evidence.points:
        raise ConfigError(
            f"no SynFlow cell in {', '.join(map(str, folders))} matches a training run of {directory} (same net, "
            "seed, data subset and recipe as the run's IRP rounds); bench the source shapes with the sources' recipe, "
            f"e.g. `autosparse bench --config {SOURCE_CONFIG}`"
        )
    evidence.provenance = [str(f) for f in folders]
    card.evidence = evidence.to_card()
    folders_arg = " ".join(str(f) for f in folders)
    card.training["evidence_command"] = (
        f"autosparse train-scorer --add-evidence {folders_arg} --store {store} --out {scorer}"
    )
    save_checkpoint(directory, tensors, card)
    return card


def evidence_table(card: Card) -> str:
    """The card's evidence as text: one line per source architecture and density."""
    lines = [f"{'source':32s} {'density':>9s} {'IMP':>6s} {'SynFlow':>8s} {'gap':>6s}"]
    evidence = DensityEvidence.from_card(card.evidence)
    if evidence is None:
        return lines[0]
    for arch, pts in evidence.points.items():
        for p in pts:
            flag = "  SynFlow" if p.gap > evidence.margin else ""
            lines.append(f"{arch:32s} {p.density:9.4%} {p.imp:6.1%} {p.synflow:8.1%} {p.gap:+6.1%}{flag}")
    return "\n".join(lines)
