"""``autosparse demo``: the main job end to end on an embedded default (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

from autosparse.core.config import add_arguments, add_config_argument, resolve


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="IRP store -> learned scorer -> autos vs baselines on a held-out model (minutes)",
        description="Generate a small IRP store on source models, train the scorer, prune a held-out model "
        "with autos and the baselines, train every mask and print the table with IMP as the reference. "
        "Fashion-MNIST (LeNet-300-100 held out) when this machine has or can get it — --data-root, the Debian "
        "package, an earlier download, apt-get as root, torchvision's download — else MNIST-1D (a wider "
        "1-D CNN held out), each with its own calibrated sizes. Reruns reuse every finished step.",
        arguments=add_options,
    )
    p.set_defaults(func=run)


def add_options(p: argparse.ArgumentParser) -> None:
    from autosparse.core.executors import ExecutorConfig
    from autosparse.demo import DemoConfig

    add_config_argument(p)
    add_arguments(p, DemoConfig)
    add_arguments(p.add_argument_group("where the bench jobs run"), ExecutorConfig)


def run(args: argparse.Namespace) -> int:
    from autosparse.core.executors import ExecutorConfig
    from autosparse.demo import DemoConfig, run_demo

    cfg, where = resolve(args, DemoConfig, ExecutorConfig)
    result = run_demo(cfg, executor=where)  # prints its progress, the table and the total time
    return 1 if result.failed_jobs else 0  # a script must not read a table with failed cells as success
