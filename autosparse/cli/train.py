"""``autosparse train``: train a (masked) model and report test accuracy."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from autosparse.cli.arguments import add_task_arguments, resolve_task
from autosparse.core.config import add_config_argument

log = logging.getLogger(__name__)


@dataclass
class TrainJob:
    masks: str | None = None  # train under these masks: a directory or .safetensors written by `autosparse prune`
    out: str | None = None  # directory for metrics.json and the trained weights (none: print the accuracy only)
    init_seed: int = 0  # seed of the model's initial weights (the one the masks were made on)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model, optionally under saved masks",
        description="Train a model on a dataset (optionally under masks from `autosparse prune`) and "
        "print its test accuracy. Example: autosparse train --model lenet_300_100 --dataset fashion-mnist --epochs 5",
        arguments=add_options,
    )
    p.set_defaults(func=run)


def add_options(p: argparse.ArgumentParser) -> None:
    from autosparse.training.trainer import TrainConfig

    add_config_argument(p)
    add_task_arguments(p, TrainJob, TrainConfig)


def run(args: argparse.Namespace) -> int:
    from autosparse.core.masks import Masks
    from autosparse.training.trainer import TrainConfig, train

    task, (job, cfg) = resolve_task(args, TrainJob, TrainConfig)

    dataset = task.load_data()
    model = task.build_model(dataset, seed=job.init_seed)
    masks = Masks.load(job.masks).validate(model) if job.masks else None
    result = train(model, dataset, cfg, masks=masks, desc=f"train {task.model.model}")
    density = f", density {masks.density:.4f}" if masks else ""
    print(
        f"{task.model.model} on {task.data.dataset}: test accuracy {100 * result.test_accuracy:.2f}% "
        f"after {cfg.epochs:g} epochs in {result.seconds:.1f}s{density}"
    )
    if job.out:
        out = Path(job.out)
        out.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file

        save_file(
            {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(out / "model.safetensors")
        )
        metrics = {
            "test_accuracy": result.test_accuracy,
            "seconds": result.seconds,
            "history": result.history,
            "density": masks.density if masks else 1.0,
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return 0
