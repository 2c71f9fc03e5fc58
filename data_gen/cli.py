"""``autosparse gen``: run a grid of IRP source runs into a zarr feature store."""

from __future__ import annotations

import argparse

from autosparse.core.executors import EXECUTORS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gen",
        help="generate IRP labels and init features into a zarr store",
        description="Run iterative rewind pruning on every (model, dataset, seed) of a config grid and write "
        "features at init plus the round each weight was pruned in to a zarr store. Complete runs are skipped; "
        "a killed run resumes at its last finished round. Example: "
        "autosparse gen --config configs/gen/fmnist_mlps.yaml --store runs/fmnist.zarr",
    )
    p.add_argument("--config", required=True, metavar="YAML", help="generation grid (see configs/gen/)")
    p.add_argument("--store", required=True, metavar="PATH", help="zarr store to create or extend")
    p.add_argument("--executor", choices=EXECUTORS, default="local", help="where runs execute (default: local)")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray), e.g. auto")
    p.add_argument("--workers", type=int, default=0, help="processes for --executor process (default: cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from data_gen.grid import GenConfig, expand_grid, generate

    cfg = GenConfig.from_yaml(args.config)
    outcomes = generate(cfg, args.store, executor=args.executor, address=args.address, workers=args.workers)
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
