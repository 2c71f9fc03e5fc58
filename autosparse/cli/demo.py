"""``autosparse demo``: the main job end to end on an embedded default (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

from autosparse.cli.common import add_arguments, add_config_argument, resolve
from autosparse.core.executors import EXECUTORS


def register(sub: argparse._SubParsersAction) -> None:
    from autosparse.demo import DemoConfig

    p = sub.add_parser(
        "demo",
        help="IRP store -> learned scorer -> autos vs baselines on a held-out model (minutes)",
        description="Generate a small IRP store on source MLPs, train the scorer, prune the held-out "
        "LeNet-300-100 with autos and the baselines, train every mask and print the table with IMP as the "
        "reference. Reruns reuse every finished step.",
    )
    add_config_argument(p)
    add_arguments(p, DemoConfig, exclude=("source_models",))
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autosparse.demo import DemoConfig, run_demo

    (cfg,) = resolve(args, DemoConfig)
    print(run_demo(cfg, executor=args.executor))
    return 0
