"""``autosparse train-scorer``: learn a scorer from an IRP feature store."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from autosparse.core.config import add_arguments, add_config_argument, resolve


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-scorer",
        help="train the learned scorer (MLP or GNN) on a feature store",
        description="Train a ranker (which weights) and an allocator (how many per layer) on the store's IRP runs, "
        "validating on held-out architectures. Example: autosparse train-scorer --store runs/fmnist_mlps.zarr "
        "--holdout model_label=mlp-widths400x100 --out trained_scorers/my_scorer",
        arguments=add_options,
    )
    p.set_defaults(func=run, resumes=False)


def add_options(p: argparse.ArgumentParser) -> None:
    from autosparse.scorer.config import ScorerConfig

    add_config_argument(
        p,
        help="YAML file of the recipe options (the ones after --keep-student-points, without the --; see "
        "configs/scorer/); --store, --holdout, --out and the other flags above stay on the command line; flags "
        "override the YAML",
    )
    p.add_argument(
        "--store",
        default=None,
        metavar="PATH",
        help="zarr feature store written by `autosparse gen` (needed for everything but --add-student-evidence)",
    )
    p.add_argument(
        "--holdout",
        default=None,
        metavar="FILTER",
        help="runs to validate on, never trained on: key=value[,value…] or key!=value, several joined by ';', "
        "values read in the stored type, e.g. 'seed=2' or 'model_label!=mlp-widths300' (keys: `autosparse store info`)",
    )
    p.add_argument(
        "--train-on",
        default=None,
        metavar="FILTER",
        help="train only on runs matching this filter (same syntax as --holdout), e.g. dataset=fashion-mnist",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory for model.safetensors + card.json")
    p.add_argument(
        "--name", default=None, metavar="TEXT", help="scorer name on its card (default: the out directory's name)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished scorer already in --out (its card's evidence goes with it); without this flag "
        "such an --out is refused before training",
    )
    p.add_argument(
        "--add-unit-head",
        action="store_true",
        help="only train the unit head (alive units per layer) of the existing scorer in --out, on its own "
        "training runs, and add it in place; ranker and allocator stay bit-identical",
    )
    p.add_argument(
        "--replace-allocator",
        action="store_true",
        help="only retrain the allocator of the existing scorer in --out, as --alloc-members networks averaged, on its "
        "own training runs, in place; ranker and unit head stay bit-identical, held-out metrics are measured again and "
        "the student evidence (about the old allocator's masks) is dropped",
    )
    p.add_argument(
        "--allocator-from",
        default=None,
        metavar="SCORER",
        help="only copy the allocator of SCORER (a shipped name or a folder, trained on the same runs with the same layer "
        "descriptors) into the existing scorer in --out, in place: the two then differ in their rankers only; ranker and "
        "unit head stay bit-identical, held-out metrics are measured again on --store and the student evidence is dropped",
    )
    p.add_argument(
        "--add-coverage",
        action="store_true",
        help="only record, on the existing scorer in --out, where its allocator was trained (the layer descriptors "
        "of its training runs, read from --store), so `autos` can tell when it extrapolates; weights stay identical",
    )
    p.add_argument(
        "--add-evidence",
        nargs="+",
        default=None,
        metavar="BENCH_DIR",
        help="only record, on the existing scorer in --out, where its teacher was worth imitating: SynFlow's cells "
        "from these bench folders (its source shapes, trained with the sources' recipe, e.g. "
        "configs/bench/fmnist_source_evidence.yaml) against IMP's accuracies in --store; `autos` then hands the "
        "network to SynFlow's mask at densities where SynFlow beat IMP on the nearest sources of the net's kind (plain or "
        "residual); weights stay identical",
    )
    p.add_argument(
        "--add-student-evidence",
        nargs="+",
        default=None,
        metavar="BENCH_DIR",
        help="only record, on the existing scorer in --out, where its own learned masks were worth using: its `autos` "
        "cells with density_guard, student_guard and collapse off against SynFlow's cells in these bench folders "
        "(validation nets in no store, e.g. configs/bench/fmnist_student_evidence.yaml); `autos` then hands a network to "
        "SynFlow's mask where SynFlow beat the learned masks on validation nets of its kind (plain-conv, plain, "
        "residual) at nearby densities; weights stay identical",
    )
    p.add_argument(
        "--keep-student-points",
        action="store_true",
        help="with --add-student-evidence: replace only the card's points for the nets and densities these bench "
        "folders measure, keeping the rest (evidence re-measured after a change that altered some masks)",
    )
    add_arguments(p, ScorerConfig)


#: the options each change-in-place mode reads besides --out (the rest of its recipe is the card's)
_MODE_READS: dict[str, frozenset[str]] = {
    "--add-student-evidence": frozenset({"keep_student_points"}),
    "--add-coverage": frozenset({"store"}),
    "--add-evidence": frozenset({"store"}),
    "--replace-allocator": frozenset({"store", "alloc_members"}),
    "--allocator-from": frozenset({"store"}),  # a copy: how many members it has is the source's
    "--add-unit-head": frozenset({"store", "unit_scale"}),
}


def _check_one_change(args: argparse.Namespace) -> None:
    """One change to the scorer in --out per call, and no option it would ignore.

    Why: the modes ran as an if-chain, so ``--add-coverage --add-unit-head`` added the coverage only,
    and ``--add-unit-head --holdout seed=1 --steps 5`` exited 0 with both options unused.
    """
    from autosparse.core.config import given, read_config
    from autosparse.core.errors import ConfigError
    from autosparse.scorer.config import ScorerConfig

    chosen = [
        mode
        for mode, on in (
            ("--add-student-evidence", bool(args.add_student_evidence)),
            ("--add-coverage", args.add_coverage),
            ("--add-evidence", bool(args.add_evidence)),
            ("--replace-allocator", bool(args.replace_allocator and not args.allocator_from)),
            ("--allocator-from", bool(args.allocator_from)),
            ("--add-unit-head", args.add_unit_head),
        )
        if on
    ]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)} each change the scorer in --out: run them one call at a time")
    if not chosen:
        return
    reads = _MODE_READS[chosen[0]]
    options = {**read_config(args), **given(args, ScorerConfig)}
    named = {"store": args.store, "holdout": args.holdout, "train_on": args.train_on, "name": args.name}
    options.update({k: v for k, v in named.items() if v is not None})
    if args.overwrite:
        options["overwrite"] = True
    idle = sorted(k for k in options if k not in reads)
    if idle:
        flags = ", ".join("--" + k.replace("_", "-") for k in idle)
        raise ConfigError(
            f"{chosen[0]} changes the scorer in --out with the recipe on its card, so {flags} would do nothing; "
            "drop them (to train a new scorer with them, leave out " + chosen[0] + ")"
        )


def run(args: argparse.Namespace) -> int:
    from autosparse.core.errors import ConfigError
    from autosparse.scorer.config import ScorerConfig
    from autosparse.scorer.metrics import heldout_table
    from autosparse.scorer.training import train_scorer

    (cfg,) = resolve(args, ScorerConfig)
    _check_one_change(args)
    if args.keep_student_points and not args.add_student_evidence:
        raise ConfigError(
            "--keep-student-points only goes with --add-student-evidence BENCH_DIR …; add that, or drop it"
        )
    if args.add_student_evidence:
        from autosparse.bench.student_evidence import add_student_evidence, student_table

        card = add_student_evidence(args.out, args.add_student_evidence, keep_other_points=args.keep_student_points)
        print(
            f"student evidence added to {args.out} (SynFlow beat the learned masks by more than "
            f"{100 * card.student['margin']:.0f} points on a kind's validation nets: SynFlow's mask there):"
        )
        print(student_table(card))
        return 0
    if args.store is None:
        raise ConfigError("train-scorer needs --store PATH (the feature store written by `autosparse gen`)")
    if args.add_coverage:
        from autosparse.scorer.training import add_coverage

        card = add_coverage(args.out, args.store)
        cov = card.coverage
        print(
            f"coverage added to {args.out}: {len(cov['points'])} source layers of {len(cov['sources'])} architectures, "
            f"threshold {cov['threshold']:.2f}"
        )
        return 0
    if args.add_evidence:
        from autosparse.bench.evidence import add_evidence, evidence_table

        card = add_evidence(args.out, args.store, args.add_evidence)
        print(
            f"density evidence added to {args.out} (SynFlow beat IMP by more than {100 * card.evidence['margin']:.0f} points: "
            "SynFlow's mask at that density):"
        )
        print(evidence_table(card))
        return 0
    if args.replace_allocator or args.allocator_from:
        from autosparse.scorer.training import replace_allocator

        card = replace_allocator(args.out, args.store, members=cfg.alloc_members, source=args.allocator_from)
        how = f"copied from {args.allocator_from}" if args.allocator_from else "retrained"
        print(f"allocator of {args.out} {how}: the mean of {card.allocator.get('members', 1)} network(s)")
        return 0
    if args.add_unit_head:
        from autosparse.scorer.training import add_unit_head

        card = add_unit_head(args.out, args.store, scale=cfg.unit_scale)
        print(f"unit head added to {args.out}: held-out {json.dumps(card.units.get('heldout', {}))}")
        return 0
    command = "autosparse " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    trained = train_scorer(
        args.store,
        holdout=args.holdout,
        out=args.out,
        config=cfg,
        name=args.name,
        command=command,
        train_on=args.train_on,
        overwrite=args.overwrite,
    )
    print(f"scorer written to {args.out} ({cfg.arch}; {len(trained.card.training['train_runs'])} training runs)")
    if trained.card.units:
        # 0.5 was chosen for the shipped scorers on their held-out source; a store where IMP keeps every unit
        # then has autos keep half of them, which said nothing (helper)
        print(
            f"unit head: autos keeps {trained.card.units.get('scale', 1.0):g} x the alive units IMP keeps in each hidden "
            "layer (the shipped scorers' scale, chosen on their held-out source: docs/SCORER.md); choose yours with "
            f"`autosparse train-scorer --add-unit-head --unit-scale S --store {args.store} --out {args.out}`, or "
            "prune with units=off"
        )
    for run_id, per in trained.card.metrics.items():
        rounds = per.get("rounds", {})
        deep = [r for r in rounds.values() if r["density"] <= 0.011]
        if deep:
            r = deep[0]
            base = {k[10:]: round(v, 3) for k, v in r.items() if k.startswith("precision_")}
            print(
                f"held-out {run_id}: spearman {per['spearman']:.3f}; at density {r['density']:.4f} precision "
                f"{r['precision']:.3f} (random {r['random_precision']:.3f}, baselines {json.dumps(base)}), "
                f"alloc log-error {r['alloc_log_error']:.3f}, mask overlap with IMP {r['mask_overlap']:.3f}"
            )
    if trained.card.metrics:
        table = heldout_table(trained.card.metrics)
        # runs pruned too little for a deep density have only Spearman's rank correlation
        if "prec. @" in table:
            explain = " (precision: share of IMP's survivors among the top-scored weights)"
        else:
            lowest = min(r["density"] for per in trained.card.metrics.values() for r in per.get("rounds", {}).values())
            # the rounds measured are those the scorer learned from: min_round_accuracy drops the collapsed
            # last rounds, so "these runs end at 0.2" read wrong for runs whose store went to 0.1 (helper)
            explain = (
                f" (Spearman only: precision is shown for rounds at <= 5% density; the deepest round measured is at "
                f"{lowest:.3g}, rounds below min_round_accuracy x the dense accuracy are left out)"
            )
        # the same runs chose the training step kept (early stopping), so they flatter it a little (review)
        print(
            f"\nheld-out ranking quality{explain}; the held-out runs also chose the step kept, so read it as optimistic:"
        )
        print(table)
    else:
        why = "--holdout matched none" if getattr(args, "holdout", None) else "no --holdout given"
        print(f"no held-out runs ({why}), so no held-out metrics")
    return 0
