"""``autosparse gen``: run a grid of IRP source runs into a zarr feature store."""

from __future__ import annotations

import argparse

from autosparse.core.config import add_arguments, add_config_argument, resolve


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gen",
        help="generate IRP labels and init features into a zarr store",
        description="Run iterative rewind pruning on every (model, dataset, seed) of a grid and write "
        "features at init plus the round each weight was pruned in to a zarr store. The grid is the config's "
        "fields, from --config and then flags (e.g. --seeds 0 --train.epochs 2). Complete runs are skipped; "
        "a killed run resumes at its last finished round. Example: "
        "autosparse gen --config configs/gen/fmnist_mlps.yaml --store runs/fmnist.zarr",
        arguments=add_options,
    )
    p.set_defaults(func=run)


def add_options(p: argparse.ArgumentParser) -> None:
    from autosparse.core.executors import ExecutorConfig
    from data_gen.grid import GenConfig

    p.add_argument("--store", required=True, metavar="PATH", help="zarr store to create or extend")
    add_config_argument(p, help="generation grid (see configs/gen/): a YAML of the options below; flags override it")
    add_arguments(p.add_argument_group("the grid"), GenConfig)
    add_arguments(p.add_argument_group("where the runs execute"), ExecutorConfig)


def run(args: argparse.Namespace) -> int:
    from autosparse.core.executors import ExecutorConfig
    from data_gen.grid import GenConfig, expand_grid, generate

    cfg, where = resolve(args, GenConfig, ExecutorConfig)
    outcomes = generate(cfg, args.store, **where.options())
    total = len(expand_grid(cfg))
    failed = [o for o in outcomes if not o.ok]
    ran = [o for o in outcomes if o.ok and not (o.value or {}).get("skipped")]
    print(
        f"{total} runs in the grid: {len(ran)} generated now, {total - len(outcomes)} already complete, {len(failed)} failed"
    )
    for o in failed:
        print(f"FAILED {o.key}: {o.error.splitlines()[0] if o.error else ''}")
    print(f"store: {args.store}  (inspect with `autosparse store info {args.store}`)")
    return 1 if failed else 0
