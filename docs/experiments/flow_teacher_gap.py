"""Where does a student of the flow teacher lose: in how many weights each layer keeps, or in which?

The experiment of docs/SCORER.md, "Where the student-teacher gap lives" (2026-12-04). Not product
code: a one-off measurement kept so its numbers can be reproduced. On a validation net of
``configs/bench/fmnist_flow_teacher_validation.yaml``, with that config's recipe (stratified 10k /
5k Fashion-MNIST subset, data seed 0; 6 epochs SGD one-cycle lr 0.05; one thread), it trains masks
that mix three sources:

- ``T``, the flow teacher: the labels of the bench's ``imp-flow`` IRP checkpoint (run that bench
  first; its ``work/`` folder is read, not rerun). Its ranking is the round a weight was pruned in.
- ``S``, a student: ``autos`` with ``--scorer``, every guard and the repair off, no θ0 rescale.
- ``Y``, SynFlow (its mask; its ranking is its one-shot score at θ0).

Variants (``--variants``, comma-separated):

- ``T``, ``S``, ``Y``: each method's own mask.
- ``R@C``: R's within-layer ranking under C's per-layer counts (R, C in T, S, Y). The teacher's
  ranking breaks its ties by the student's score.
- ``xF@C``: C's counts, each layer's weights chosen over 100 rounds of path flow whose edges carry
  x: ``S`` the student's within-layer percentile, ``Y`` |θ0| (SynFlow's own iteration), ``P`` |θ0|
  × percentile², ``U`` |θ0| restricted to the teacher's alive units (``autosparse.scorer.autos.flow``).
- ``X``: the teacher's mask of the *other* seed (1 for 0, 0 for 1) on this seed's θ0: does its
  choice depend on the initial weights, or is it a pattern any init trains as well?
- ``W<steps>``: SynFlow's mask of the dense net after ``steps`` optimiser steps of the recipe
  (beyond its 474 steps: the trained net), trained from θ0.
- ``--autos NAME='{"scorer": …}'`` (repeatable): ``autos`` with these hyperparameters and every
  guard off, as a bench row makes and trains it (repair and θ0 rescale at their defaults).

Every other mask trains from θ0 without rescaling. One JSON line per cell goes to ``--out``; a cell
already there is skipped, so a killed run resumes::

    python docs/experiments/flow_teacher_gap.py --net vgg11-w0.125 --seed 0 \\
        --variants T,S,Y,S@T,T@S,T@Y,SF@S,PF@S --scorer runs/scorers/flow_plain
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import autosparse.api as api
from autosparse.core.allocation import masks_from_counts
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks
from autosparse.core.ranking import pct_rank
from autosparse.data import pruning_batch
from autosparse.pruners.registry import make_pruner
from autosparse.scorer.autos.flow import flow_refine
from autosparse.task import DataSpec, ModelSpec
from autosparse.topology.paths import PathNetwork
from autosparse.training.irp import _load_checkpoint
from autosparse.training.trainer import TrainConfig, train

NETS = {
    "vgg11-w0.125": ("vgg11", 0.125),
    "vgg13-w0.125": ("vgg13", 0.125),
    "conv4-w0.375": ("conv4", 0.375),
    "resnet20-w0.75": ("resnet20", 0.75),
}
DENSITIES = (0.01, 0.005)
OFF = {"density_guard": "off", "student_guard": "off", "collapse": "off", "repair": 0, "rescale": False}


class _Stop(Exception):
    pass


def teacher_labels(bench: Path, net: str, seed: int) -> tuple[dict[str, torch.Tensor], list[float]]:
    """The flow teacher's labels (round pruned in) and its round densities, from the bench's IRP
    checkpoint, read by IRP's own loader (the checkpoint's one format)."""
    found = sorted((bench / "work").glob(f"{net}__fashion-mnist__imp-flow__s{seed}__*"))
    state = _load_checkpoint(found[0]) if found else None
    if state is None:
        raise SystemExit(f"no imp-flow checkpoint for {net} seed {seed} under {bench}/work: run that bench first")
    return {n: lab.long() for n, lab in state["labels"].items()}, state["densities"]


def counts(masks: Masks) -> dict[str, int]:
    return {layer.name: layer.kept for layer in masks.layers()}


def warmed(fresh: Callable[[], torch.nn.Module], data, cfg: TrainConfig, steps: int) -> torch.nn.Module:
    """The dense net after ``steps`` optimiser steps of the recipe (its schedule as for the whole run)."""
    model = fresh()
    seen = [0]

    def stop(*_: object) -> None:
        seen[0] += 1
        if seen[0] >= steps:
            raise _Stop

    hook = register_optimizer_step_post_hook(stop)
    try:
        train(model, data, cfg, desc=f"warm {steps}")
    except _Stop:
        pass
    finally:
        hook.remove()
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", choices=sorted(NETS), required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--variants", default="")
    ap.add_argument("--autos", action="append", default=[], metavar="NAME=JSON")
    ap.add_argument("--scorer", default="runs/scorers/flow_plain")
    ap.add_argument("--bench", type=Path, default=Path("runs/bench/fmnist_flow_teacher_validation"))
    ap.add_argument("--out", type=Path, default=Path("runs/analysis/flow_teacher_gap.jsonl"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    net, seed = args.net, args.seed
    done = set()
    if args.out.exists():
        done = {
            (r["net"], r["seed"], r["variant"], r["density"], r.get("scorer")) for r in map(json.loads, args.out.open())
        }
    data = DataSpec("fashion-mnist", n_train=10000, n_test=5000).load()
    spec = ModelSpec(NETS[net][0], {"width": NETS[net][1]})

    def fresh() -> torch.nn.Module:
        return spec.build(data, seed)

    cfg = TrainConfig(epochs=6, lr=0.05, num_threads=1, seed=seed)
    batch = pruning_batch(data, samples_per_class=10, seed=seed)
    labels, round_densities = teacher_labels(args.bench, net, seed)
    other, other_densities = (
        teacher_labels(args.bench, net, 1 - seed) if "X" in args.variants.split(",") else (labels, [])
    )
    assert not other_densities or len(other_densities) == len(round_densities)
    student = make_pruner("autos", scorer=args.scorer, **OFF)
    s_scores = student.scores(fresh(), batch, seed=seed)
    y_scores = make_pruner("synflow").scores(fresh(), batch, seed=seed)
    pct = {n: pct_rank(s).reshape(s.shape).to(torch.float64) for n, s in s_scores.items()}
    theta0 = fresh()
    mag = {layer.name: layer.weight.detach().abs().to(torch.float64) for layer in prunable_layers(theta0)}
    paths = PathNetwork(theta0, batch.input_shape)
    t_key = {n: labels[n].float() + 0.5 * torch.sigmoid(s_scores[n].float()) for n in labels}
    rankings = {"S": s_scores, "Y": y_scores, "T": t_key}
    priors = {"S": pct, "Y": mag, "P": {n: mag[n] * pct[n] ** 2 for n in pct}}
    variants = [v for v in args.variants.split(",") if v]
    autos = dict(a.split("=", 1) for a in args.autos)
    warm = {v: warmed(fresh, data, cfg, int(v[1:])) for v in variants if v.startswith("W")}

    for d in DENSITIES:
        r = min(range(len(round_densities)), key=lambda i: abs(round_densities[i] - d))
        own = {
            "T": Masks({n: lab >= r for n, lab in labels.items()}),
            "X": Masks({n: lab >= r for n, lab in other.items()}),
            "S": api.prune(fresh(), "autos", density=d, data=batch, seed=seed, scorer=args.scorer, **OFF),
            "Y": api.prune(fresh(), "synflow", density=d, data=batch, seed=seed),
        }
        n_of = {k: counts(m) for k, m in own.items()}
        for v in [*variants, *autos]:
            scorer = json.loads(autos[v]).get("scorer", args.scorer) if v in autos else args.scorer
            if (net, seed, v, d, scorer) in done:
                continue
            model = fresh()
            if v in autos:
                hp = {k: OFF[k] for k in ("density_guard", "student_guard", "collapse")} | json.loads(autos[v])
                mask = api.prune(model, "autos", density=d, data=batch, seed=seed, **hp)
            elif v in own:
                mask = own[v]
            elif v.startswith("W"):
                mask = api.prune(warm[v], "synflow", density=d, data=batch, seed=seed)
            elif v[1:].startswith("F@"):
                prior, c = v[0], v[3:]
                allowed = None
                if prior == "U":  # the teacher's alive output and input units
                    allowed = {}
                    for n, t in own["T"].items():
                        t2 = t.reshape(t.shape[0], t.shape[1], -1).any(2)
                        both = t2.any(1)[:, None] & t2.any(0)[None, :]
                        allowed[n] = both.reshape(*both.shape, *([1] * (t.dim() - 2))).expand_as(t)
                with_counts = Masks({n: _first(t, n_of[c][n]) for n, t in own["T"].items()})
                mask = flow_refine(paths, with_counts, mag if prior == "U" else priors[prior], 100, allowed)
            else:
                ranking, c = v.split("@")
                mask = masks_from_counts(rankings[ranking], n_of[c])
            acc = train(model, data, cfg, masks=mask, desc=v).test_accuracy
            row = {"net": net, "seed": seed, "variant": v, "density": d, "scorer": scorer, "acc": acc}
            row |= {"counts": counts(mask), "time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(net, seed, d, v, f"{acc:.4f}", flush=True)


def _first(like: torch.Tensor, k: int) -> torch.Tensor:
    """A mask of ``like``'s shape keeping ``k`` positions: ``flow_refine`` only reads its count."""
    return (torch.arange(like.numel()) < k).reshape(like.shape)


if __name__ == "__main__":
    main()
