"""Put the student evidence on a scorer's card: its own learned masks against SynFlow's, from bench
cells on validation nets (see :mod:`autosparse.scorer.student` for how ``autos`` uses it).

Why here: both sides are bench cells and the card is the scorer's; this is the one place that sees
both. A learned cell counts only if it is ``autos`` with this scorer's current weights and every
check that can put SynFlow's mask in the learned one's place off (``density_guard``,
``student_guard`` and ``collapse``): the evidence is about the scorer's own mask. A collapse rescued
by SynFlow's mask would record SynFlow's accuracy as the student's and hide a density where the
learned allocation fails (it did at 1% on the validation VGG-11, while VGG-16's learned masks,
connected but funnelled, trailed SynFlow there; docs/SCORER.md). Each learned cell is paired with
the SynFlow cell of the same net, seed, density, data and recipe.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autosparse.bench.evidence import read_cells, training_recipe
from autosparse.core.errors import ConfigError
from autosparse.data.registry import dataset_info
from autosparse.models import build_model
from autosparse.scorer.checkpoint import Card, changes_scorer_in_place, load_checkpoint, local_scorer, save_checkpoint
from autosparse.scorer.student import StudentEvidence, StudentPoint
from autosparse.topology.merges import ProbeError, network_kind

#: the hparams a learned cell may carry: the scorer, and every check that can hand over to SynFlow off
_LEARNED_OFF = {"density_guard": "off", "student_guard": "off", "collapse": "off"}
#: the bench whose cells the student evidence reads
STUDENT_CONFIG = "configs/bench/fmnist_student_evidence.yaml"


def _is_learned(cell: dict[str, Any], weights_sha256: str) -> bool:
    """An ``autos`` cell of these weights (whatever folder or name they were loaded from) with only
    the checks that can hand over to SynFlow switched off."""
    hp = dict(cell.get("hparams") or {})
    scorer = hp.pop("scorer", None)
    if cell.get("method") != "autos" or scorer is None or hp != _LEARNED_OFF:
        return False
    recorded = (cell.get("method_identity") or {}).get("scorer_sha256")
    return recorded == weights_sha256  # cells of other weights say nothing about these


def _pair_key(cell: dict[str, Any]) -> tuple[Any, ...]:
    spec = cell.get("spec") or {}
    data = spec.get("data") or {}
    train = training_recipe(spec.get("train") or {})  # the same recipe as the density evidence means it
    return (
        cell.get("model"),
        cell.get("dataset"),
        int(cell.get("seed", -1)),
        round(float(cell.get("density", 0.0)), 9),
        repr(sorted(data.items())),
        repr(sorted(train.items())),
    )


def _kind(cell: dict[str, Any]) -> str:
    info = dataset_info(str(cell["dataset"]))
    shape = tuple(info.input_shape)
    model = build_model(str(cell["model_name"]), shape, info.num_classes, seed=0, **(cell.get("model_kwargs") or {}))
    try:
        return network_kind(model, shape)
    except ProbeError as exc:
        raise ConfigError(
            f"cannot tell the kind of bench net {cell['model']}: {exc}; its cells' model and kwargs no longer "
            "build a working model"
        ) from exc


def collect_student_evidence(cells: Sequence[dict[str, Any]], weights_sha256: str) -> StudentEvidence:
    """Pair each learned cell of this scorer with its SynFlow cell; average each net's pairs over
    seeds per density, and group the nets by kind."""
    synflow = {_pair_key(c): c for c in cells if c.get("method") == "synflow" and not c.get("hparams")}
    pairs: dict[tuple[str, float], list[tuple[float, float]]] = defaultdict(list)
    kinds: dict[str, str] = {}
    for cell in cells:
        if not _is_learned(cell, weights_sha256):
            continue
        ref = synflow.get(_pair_key(cell))
        if ref is None:
            continue
        net = str(cell["model"])
        if net not in kinds:
            kinds[net] = _kind(cell)
        pairs[(net, float(cell["density"]))].append((float(cell["test_accuracy"]), float(ref["test_accuracy"])))
    points: dict[str, list[StudentPoint]] = defaultdict(list)
    for (net, density), v in sorted(pairs.items()):
        learned = sum(a for a, _ in v) / len(v)
        reference = sum(b for _, b in v) / len(v)
        points[kinds[net]].append(StudentPoint(net, density, learned, reference, len(v)))
    return StudentEvidence(dict(points))


@changes_scorer_in_place
def add_student_evidence(scorer: str | Path, folders: Sequence[str | Path], *, keep_other_points: bool = False) -> Card:
    """Record the student evidence from bench output folders on an existing scorer's card, in place
    (weights untouched). Replaces any student evidence the card had — or, with ``keep_other_points``,
    only its points for the (net, density) pairs the folders measure.

    Why the second way: a code change that alters some of the learned masks (the repair of
    2026-12-03 changed 12 of 42 cells) needs only those cells measured again; the other points stay
    what they were, and the provenance lists both sources.
    """
    directory = local_scorer(scorer)
    card, tensors = load_checkpoint(directory)
    evidence = collect_student_evidence(read_cells(folders, config=STUDENT_CONFIG), card.weights_sha256)
    old = StudentEvidence.from_card(card.student) if keep_other_points else None
    if old is not None and evidence.points:
        evidence = _merged(old, evidence)
    if not evidence.points:
        raise ConfigError(
            f"no cell in {', '.join(map(str, folders))} pairs the learned mask of {directory} (autos with its current "
            "weights, density_guard, student_guard and collapse off) with SynFlow's on the same "
            "net, seed, density and recipe; bench the validation shapes first, e.g. "
            f"`autosparse bench --config {STUDENT_CONFIG}`"
        )
    flag = " --keep-student-points" if old is not None else ""
    evidence.provenance = [*(old.provenance if old is not None else []), *(str(f) for f in folders)]
    card.student = evidence.to_card()
    command = f"autosparse train-scorer --add-student-evidence {' '.join(str(f) for f in folders)}{flag} --out {scorer}"
    if old is not None and card.training.get("student_command"):
        command = f"{card.training['student_command']}; then {command}"
    card.training["student_command"] = command
    save_checkpoint(directory, tensors, card)
    return card


def _merged(old: StudentEvidence, new: StudentEvidence) -> StudentEvidence:
    """``old``'s points, those of a (net, density) that ``new`` measured replaced by ``new``'s; old's margin and reach."""
    measured = {(p.net, p.density) for pts in new.points.values() for p in pts}
    points: dict[str, list[StudentPoint]] = defaultdict(list)
    for kind, pts in old.points.items():
        points[kind].extend(p for p in pts if (p.net, p.density) not in measured)
    for kind, pts in new.points.items():
        points[kind].extend(pts)
    return StudentEvidence(dict(points), margin=old.margin, reach=old.reach)


def student_table(card: Card) -> str:
    """The card's student evidence as text: one line per validation net and density, and per kind
    the verdict ``autos`` would reach at each measured density."""
    lines = [f"{'kind':11s} {'net':18s} {'density':>9s} {'learned':>8s} {'SynFlow':>8s} {'gap':>6s} {'seeds':>5s}"]
    evidence = StudentEvidence.from_card(card.student)
    if evidence is None:
        return lines[0]
    for kind, pts in evidence.points.items():
        for p in pts:
            lines.append(
                f"{kind:11s} {p.net:18s} {p.density:9.2%} {p.learned:8.1%} {p.synflow:8.1%} {p.gap:+6.1%} {p.seeds:5d}"
            )
        for density in sorted({p.density for p in pts}, reverse=True):
            v = evidence.verdict(kind, density)
            use = "SynFlow's mask" if v.prefer_synflow else "the learned mask"
            lines.append(f"  -> {kind} at {density:.2%}: mean gap {100 * (v.gap or 0.0):+.1f} points: {use}")
    return "\n".join(lines)
