"""Scorer training data, read from the feature store and split *by run*.

Validation is always on whole held-out runs (architectures the scorer never saw), never on
held-out weights of training runs: weights of one network are strongly correlated, and a
scorer that has seen LeNet's other weights would look better than it is on a new model.

Two views of each run:
- per (run, layer) groups of weights with their features and labels, for the within-layer
  ranking loss (sampled afresh each step);
- per (run, layer, round) rows of layer descriptors, log global density and the log ratio of
  the layer's IMP density to the global density, for the allocator.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from autosparse.core.errors import ConfigError, StoreError
from autosparse.core.text import count_of
from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION
from autosparse.sources import recipe_of
from autosparse.store import LABEL_KIND, StoreReader, parse_filter
from autosparse.store.filters import unknown_keys, unmatched_values

log = logging.getLogger(__name__)


@dataclass
class LayerGroup:
    run_id: str
    layer_name: str
    numel: int
    features: torch.Tensor  # (n, F) float32 — ranker features, possibly a subsample of the layer
    label: torch.Tensor  # (n,) int64
    rounds: int


@dataclass
class RunSamples:
    run_id: str
    attrs: dict[str, Any]
    groups: list[LayerGroup]
    layer_feats: torch.Tensor  # (L, F_alloc) allocator features, one row per layer
    layer_numel: torch.Tensor  # (L,)
    densities: list[float]  # global density trained in each round
    layer_densities: list[list[float]]  # [round][layer]
    full_label: torch.Tensor | None = None  # (n_weights,) labels of the whole run (validation)
    full_features: torch.Tensor | None = None  # (n_weights, F) (validation)
    extra_features: dict[str, torch.Tensor] = field(default_factory=dict)  # baseline rankers (validation)
    unit_fractions: list[list[float]] = field(default_factory=list)  # [round][layer] alive output units / units

    def layer_slice(self, i: int) -> slice:
        """Layer ``i``'s weights in the run's flat per-weight arrays (``full_label``, ``extra_features``…)."""
        off = int(self.layer_numel[:i].sum())
        return slice(off, off + int(self.layer_numel[i]))


def open_split(
    store: str, holdout: str | Mapping[str, Any] | None, train_on: str | Mapping[str, Any] | None = None
) -> tuple[StoreReader, StoreReader | None]:
    """Readers of the training runs and of the held-out runs (None without a holdout filter).

    ``train_on`` narrows the training runs further (e.g. ``dataset=fashion-mnist`` for a scorer
    that must never have seen the dataset it is tested on); held-out runs are never trained on.
    """
    kw = {"schema_version": SCHEMA_VERSION, "feature_names": list(FEATURE_NAMES), "label_kind": LABEL_KIND}
    hold = parse_filter(holdout)  # typed, several keys, `!=`: see autosparse.store.filters
    everything = StoreReader(store, **kw).runs()  # not just the training runs: --train-on may leave a key out
    missing, known = unknown_keys(hold, everything)
    if missing:  # before the readers below: each warned of it first, the error then said it a third time
        raise StoreError(
            f"no run in {store} records {', '.join(repr(k) for k in missing)}, so the holdout filter {holdout!r} "
            f"matches nothing; keys the runs record: {', '.join(known)}"
        )
    train = StoreReader(store, where=parse_filter(train_on), exclude=hold or None, **kw)
    val = StoreReader(store, where=hold, **kw) if hold else None
    if train.n_runs == 0:
        filters = ", ".join(f"{k} {v!r}" for k, v in (("holdout", holdout), ("train_on", train_on)) if v)
        raise StoreError(
            f"no complete training runs in {store}" + (f" ({filters})" if filters else "") + "; generate some "
            "with `autosparse gen`"
            + (" or widen the filters" if filters else "")
            + " (`autosparse store info` lists the runs)"
        )
    if val is not None and val.n_runs == 0:
        raise StoreError(
            f"the holdout filter {holdout!r} matches no complete run in {store}; check `autosparse store info`"
        )
    for option, where in (("--holdout", hold), ("--train-on", parse_filter(train_on))):
        if unmatched := unmatched_values(where, everything):
            log.warning(
                "%s: %s match%s no run of %s, so nothing of %s is %s (a typo, or runs not generated yet?); "
                "`autosparse store info` lists the runs",
                option,
                ", ".join(unmatched),
                "es" if len(unmatched) == 1 else "",
                store,
                "it" if len(unmatched) == 1 else "them",
                "held out" if option == "--holdout" else "trained on",
            )
    _warn_mixed_teachers(train)
    _warn_duplicate_runs(train)
    return train, val


def _warn_duplicate_runs(reader: StoreReader) -> None:
    """Say when training runs are one run under several ids: written with settings no result depends on
    (``--train.eval-batch-size``, threads) before ``gen`` found such runs, each was generated again, and
    the scorer weighs that run once per copy."""
    ids: dict[str, list[str]] = {}
    for run_id, attrs in reader.runs().items():
        if isinstance(attrs.get("spec"), dict):  # a run that records no spec: nothing to compare
            ids.setdefault(recipe_of(attrs["spec"]), []).append(run_id)
    copies = [sorted(group) for group in ids.values() if len(group) > 1]
    if copies:
        log.warning(
            "%s of the training runs %s the same run as another (the same model, data, seed and IRP; only threads "
            "or evaluation settings differ), so the scorer counts %s more than once: %s; `autosparse store "
            "delete-run STORE RUN` removes a copy",
            count_of(sum(len(g) - 1 for g in copies), "run"),
            "is" if sum(len(g) - 1 for g in copies) == 1 else "are",
            "it" if len(copies) == 1 else "them",
            "; ".join(" = ".join(g) for g in copies[:3]) + (" …" if len(copies) > 3 else ""),
        )


#: IRP settings that make a run another teacher (what the labels imitate), not another source
_TEACHER_KEYS = ("criterion", "scope", "rewind_step")


def _warn_mixed_teachers(reader: StoreReader) -> None:
    """Say when the training runs were labelled by different teachers (IRP by magnitude and by SNIP,
    global and per-layer): the scorer learns their average, which neither teacher is, and its card
    lists only run ids. Mixing can be meant; it should not be silent."""
    teachers: dict[tuple[Any, ...], int] = {}
    for attrs in reader.runs().values():
        irp = (attrs.get("spec") or {}).get("irp") or {}
        key = tuple((k, irp.get(k)) for k in _TEACHER_KEYS)
        teachers[key] = teachers.get(key, 0) + 1
    if len(teachers) > 1:
        described = "; ".join(
            f"{n} run(s) with " + ", ".join(f"{k} {v}" for k, v in key) for key, n in sorted(teachers.items(), key=str)
        )
        log.warning(
            "the training runs were labelled by %d different IRP teachers (%s): the scorer learns a blend of them; "
            "narrow them with --train-on (e.g. --train-on 'spec.irp.criterion=magnitude') if that is not meant",
            len(teachers),
            described,
        )


def check_features(reader: StoreReader, features: Sequence[str]) -> None:
    """Refuse features the store does not hold, naming those it does."""
    names = list(reader.feature_names)
    unknown = [f for f in features if f not in names]
    if unknown:
        raise ConfigError(
            f"feature(s) {', '.join(unknown)} are not in store {reader.path}; its features: {', '.join(names)}"
        )


def load_samples(
    reader: StoreReader,
    ranker_features: Sequence[str],
    allocator_features: Sequence[str],
    *,
    max_per_layer: int = 200_000,
    keep_full: bool = False,
    baseline_features: Sequence[str] = (),
    seed: int = 0,
    min_round_accuracy: float = 0.0,
    role: str = "training",
) -> list[RunSamples]:
    """Load every run of ``reader`` into per-layer groups (subsampling very large layers).

    ``min_round_accuracy`` keeps only the IRP rounds IMP survived: the rounds up to the last one
    whose test accuracy is at least that fraction of the dense (round-0) accuracy. Why: on deep
    conv sources, global magnitude IRP with rewinding to init collapses at the last rounds (a
    ResNet-20 keeps its shortcuts and empties its last stage, 82% -> 35%; a MobileNet falls to
    chance at 6% density) — masks that no one should imitate. Later rounds are dropped from the
    layer heads' targets and the ranker's labels are capped at the last healthy round.
    """
    names = list(reader.feature_names)
    check_features(reader, (*ranker_features, *allocator_features, *baseline_features))
    rcols = [names.index(f) for f in ranker_features]
    acols = [names.index(f) for f in allocator_features]
    bcols = {f: names.index(f) for f in baseline_features}
    rng = np.random.default_rng(seed)
    out = []
    cut_to_dense: list[str] = []  # runs the accuracy filter left with their dense round only
    for run_id in reader.run_ids:
        run = reader.load_run(run_id)
        feats = np.asarray(run.features, dtype=np.float32)
        label = np.asarray(run.label, dtype=np.int64)
        healthy = healthy_rounds(run.attrs.get("accuracies") or [], min_round_accuracy)
        n_rounds = len(run.attrs.get("densities") or [])
        if healthy is not None and healthy + 1 < n_rounds:
            n_rounds = healthy + 1
            label = np.minimum(label, healthy)
            if healthy == 0:
                cut_to_dense.append(run_id)
        rounds = min(int(run.attrs["rounds"]), n_rounds - 1) if n_rounds else int(run.attrs["rounds"])
        groups, lrows, numels, units = [], [], [], []
        for entry in run.layers:
            off, n = int(entry["offset"]), int(entry["numel"])
            units.append(alive_unit_fractions(label[off : off + n], entry.get("shape") or [n], n_rounds))
            idx = np.arange(off, off + n)
            if n > max_per_layer:
                idx = np.sort(rng.choice(idx, size=max_per_layer, replace=False))
            groups.append(
                LayerGroup(
                    run_id,
                    entry["name"],
                    n,
                    torch.from_numpy(feats[idx][:, rcols]),
                    torch.from_numpy(label[idx]),
                    rounds,
                )
            )
            lrows.append(feats[off, acols])
            numels.append(n)
        layer_names = [e["name"] for e in run.layers]
        ld = run.attrs.get("layer_densities") or []
        samples = RunSamples(
            run_id,
            dict(run.attrs),
            groups,
            torch.from_numpy(np.stack(lrows)),
            torch.tensor(numels),
            list(run.attrs.get("densities") or [])[:n_rounds],
            [[float(r[n]) for n in layer_names] for r in ld][:n_rounds],
            unit_fractions=[list(per_round) for per_round in zip(*units, strict=True)] if units else [],
        )
        if keep_full:
            samples.full_label = torch.from_numpy(label)
            samples.full_features = torch.from_numpy(feats[:, rcols])
            samples.extra_features = {f: torch.from_numpy(feats[:, c]) for f, c in bcols.items()}
        out.append(samples)
    if out and len(cut_to_dense) == len(out):
        # not "the store's runs carry no per-round layer densities", after the ranker had trained (review)
        other = "hold out other runs" if role == "held-out" else "train on other runs"
        raise ConfigError(
            f"min_round_accuracy {min_round_accuracy} keeps no pruning round of any of the {len(out)} {role} run(s) "
            f"of {reader.path} (every round 1 is below {min_round_accuracy} x its dense accuracy, e.g. "
            f"{cut_to_dense[0]}): lower --min-round-accuracy, or {other}"
        )
    if cut_to_dense and role == "held-out":
        # their only round left is the dense one, where every ranker's precision is 1: averaged into the
        # held-out precision, it inflated it, and their metrics table was all NaN (hunt)
        log.warning(
            "held-out run(s) %s keep no pruning round (round 1 is below %s x the dense accuracy): left out of "
            "early stopping and the held-out metrics",
            ", ".join(cut_to_dense),
            min_round_accuracy,
        )
        out = [r for r in out if r.run_id not in set(cut_to_dense)]
    return out


def healthy_rounds(accuracies: Sequence[float], min_fraction: float) -> int | None:
    """The last IRP round of the unbroken prefix whose accuracy is >= ``min_fraction`` x round 0's
    (None when there is nothing to cut: no accuracies recorded, or no threshold)."""
    if not accuracies or min_fraction <= 0:
        return None
    floor = min_fraction * float(accuracies[0])
    last = 0
    for r, acc in enumerate(accuracies):
        if float(acc) < floor:
            break
        last = r
    return last


def alive_unit_fractions(label: np.ndarray, shape: Sequence[int], n_rounds: int) -> list[float]:
    """Per round, the fraction of the layer's output units that IMP's mask keeps any weight of."""
    out = int(shape[0]) if len(shape) > 1 else 1
    per_unit = label.reshape(out, -1).max(axis=1)  # the last round each unit still had a weight
    return [float((per_unit >= r).mean()) for r in range(n_rounds)]


def _layer_rows(
    runs: Sequence[RunSamples], target: Callable[[RunSamples, int, int], float | None], empty: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) over (run, IRP round >= 1, layer): x = layer features + log global density,
    y = ``target(run, round, layer)`` (rows where it is None are skipped)."""
    xs, ys = [], []
    for run in runs:
        for r in range(1, len(run.densities)):
            log_d = torch.tensor([math.log(run.densities[r])])
            for li in range(len(run.groups)):
                y = target(run, r, li)
                if y is not None:
                    xs.append(torch.cat([run.layer_feats[li], log_d]))
                    ys.append(y)
    if not xs:
        raise StoreError(empty)
    return torch.stack(xs).float(), torch.tensor(ys, dtype=torch.float32)


def unit_rows(runs: Sequence[RunSamples]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): y = log(alive output units / units) under IMP's round mask."""

    def target(run: RunSamples, r: int, li: int) -> float | None:
        if r >= len(run.unit_fractions) or run.unit_fractions[r][li] <= 0:
            return None  # no labels for that round, or a layer IMP emptied: says nothing about units
        return math.log(run.unit_fractions[r][li])

    return _layer_rows(runs, target, "the store's runs carry no per-round labels to read unit structure from")


def allocator_rows(runs: Sequence[RunSamples]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y): y = log(layer density / global density) under IMP's round mask."""

    def target(run: RunSamples, r: int, li: int) -> float:
        d = run.densities[r]
        return math.log(max(run.layer_densities[r][li], 1.0 / float(run.layer_numel[li])) / d)

    return _layer_rows(
        runs, target, "the store's runs carry no per-round layer densities; regenerate them with `autosparse gen`"
    )
