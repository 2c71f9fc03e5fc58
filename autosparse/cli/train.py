"""``autosparse train``: train a (masked) model and report test accuracy."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autosparse.cli.arguments import add_task_arguments, check_out_is_no_store_or_scorer, resolve_task
from autosparse.core.config import add_config_argument
from autosparse.core.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from autosparse.core.masks import Masks
    from autosparse.task import Task
    from autosparse.training.trainer import TrainConfig

log = logging.getLogger(__name__)
METRICS, WEIGHTS = "metrics.json", "model.safetensors"
WEIGHTS_FORMAT = "autosparse-train-v1"  # the weights file's own metadata: saved by `autosparse train`


@dataclass
class TrainJob:
    masks: str | None = None  # train under these masks: a directory or .safetensors written by `autosparse prune`
    out: str | None = None  # folder for metrics.json and the weights; a killed run resumes there (none: print only)
    init_seed: int | None = None  # seed of the initial weights (unset: the one the masks were made on, else 0)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model, optionally under saved masks",
        description="Train a model on a dataset (optionally under masks from `autosparse prune`) and "
        "print its test accuracy. Example: autosparse train --model lenet_300_100 --dataset fashion-mnist --epochs 5",
        arguments=add_options,
    )
    p.set_defaults(func=run, resumes=False)


def add_options(p: argparse.ArgumentParser) -> None:
    from autosparse.training.trainer import TrainConfig

    add_config_argument(p)
    add_task_arguments(p, TrainJob, TrainConfig)


def _init_seed(job: TrainJob, masks: Masks | None) -> int:
    """The seed to build the model with: the masks were made on one initialisation, so default to it.

    Why not always the flag's default: a mask is a choice among *these* initial weights (and
    `autos` rescales some of them), so training it on another draw is a different experiment —
    allowed when asked for (a re-initialisation control), warned about, never silent.
    """
    made_on = masks.meta.get("init_seed") if masks is not None else None
    if job.init_seed is None:
        if masks is not None and made_on is None:
            log.warning(
                "the masks do not record the seed of the weights they were pruned from (saved from Python, or a "
                "mask file without its folder's report.json); "
                "training them on --init-seed 0 — pass --init-seed if they were pruned from another draw"
            )
        return int(made_on) if made_on is not None else 0
    if made_on is not None and int(made_on) != job.init_seed:
        if masks is not None and masks.init is not None and masks.init.factors:
            raise ConfigError(
                f"these masks were made on --init-seed {made_on} and carry {masks.meta.get('method', 'the method')}'s "
                f"rescaling of those weights; drop --init-seed (or pass --init-seed {made_on}) to train them as made"
            )
        log.warning(
            "the masks were made on --init-seed %s; training them on --init-seed %s re-initialises the weights "
            "(a control experiment); drop --init-seed to use the masks' own",
            made_on,
            job.init_seed,
        )
    return job.init_seed


def _task_of_masks(args: argparse.Namespace, task: Task, masks: Masks) -> Task:
    """The model and dataset the masks were made for, where the flags and ``--config`` name none.

    Why: a mask fits one model at one width and input shape, and ``autosparse prune`` records
    which; ``train --masks DIR`` after ``prune --model conv4 --model-kwargs …`` should train that
    conv4, not fail on the default model and send the user back to prune.
    """
    from autosparse.core.config import given, read_config
    from autosparse.task import DataSpec, ModelSpec, Task

    named = set(read_config(args)) | set(given(args, ModelSpec)) | set(given(args, DataSpec))
    model, data = task.model, task.data
    made_for = masks.meta.get("model")
    if not made_for and "model" not in named:
        # building the default model would only end in "made for another model" after the data loaded
        raise ConfigError(
            "these masks do not record which model they were pruned from (saved from Python, or a mask file "
            "without its folder's report.json): pass --model "
            "(with --model-kwargs and --dataset as needed) naming the network they fit, or train them in Python "
            "with masks.apply(model)"
        )
    if made_for and "model" not in named:
        # --model-kwargs alone is about the masks' model (its width), not the default one's: a masks'
        # mlp given {"widths": …} was refused as lenet_300_100 "has no option 'widths'"
        kwargs = task.model.model_kwargs if "model_kwargs" in named else dict(masks.meta.get("model_kwargs") or {})
        model = dataclasses.replace(model, model=str(made_for), model_kwargs=dict(kwargs))
    made_on = masks.meta.get("dataset")
    if made_on and "dataset" not in named:
        data = dataclasses.replace(data, dataset=str(made_on), **_subset_of_masks(masks, str(made_on), named))
    if (model, data) != (task.model, task.data):
        kwargs = f" {json.dumps(model.model_kwargs)}" if model.model_kwargs else ""
        taken = [w for w, changed in (("model", model != task.model), ("dataset", data != task.data)) if changed]
        own = " (its options from --model-kwargs)" if "model_kwargs" in named and "model" in taken else ""
        sizes = [f"{k} {getattr(data, k)}" for k in ("n_train", "n_test") if getattr(data, k) is not None]
        log.info(
            "training %s%s on %s: the %s as the masks were made%s (--%s choose%s otherwise)",
            model.model,
            kwargs,
            f"{data.dataset} ({', '.join(sizes)}, data seed {data.data_seed})" if sizes else data.dataset,
            " and ".join(taken),
            own,
            " / --".join([*taken, *(["n-train / --n-test / --data-seed"] if sizes and "dataset" in taken else [])]),
            "s" if len(taken) == 1 and not sizes else "",
        )
    return Task(model, data)


def _subset_of_masks(masks: Masks, dataset: str, named: set[str]) -> dict[str, Any]:
    """The data subset ``prune`` recorded with the masks (``meta["data"]``), where no flag names it.

    Why: ``train --masks`` took the masks' dataset but not its subset, so masks pruned with
    ``--n-train 2000`` trained on all 60,000 images (minutes where seconds were planned; helper).
    A recorded data folder is taken only where it exists here (masks move between machines).
    """
    recorded = masks.meta.get("data")
    if not isinstance(recorded, Mapping) or recorded.get("dataset") != dataset:
        return {}
    # imp's record is the draw of its --seed, the subset it trained on: the masks were made on that one
    out = {k: recorded[k] for k in ("n_train", "n_test", "data_seed") if k in recorded and k not in named}
    root = recorded.get("data_root")
    if root and "data_root" not in named and Path(str(root)).is_dir():
        out["data_root"] = str(root)
    return out


def _check_init(masks: Masks, model: nn.Module, init_seed: int, model_kwargs: dict) -> None:
    """Masks that rescale θ0 fit only the draw they were made on; say which flag rebuilds it."""
    from autosparse.core.errors import MaskError

    if masks.init is None:
        return
    try:
        masks.init.check_weights(model)
    except MaskError:
        pruned_with = masks.meta.get("model_kwargs")
        if isinstance(pruned_with, dict) and pruned_with != model_kwargs:
            # the same shapes from other model options (an init scheme): the seed was not what differed (helper)
            raise ConfigError(
                f"the model built with --model-kwargs '{json.dumps(model_kwargs)}' does not hold the weights these "
                f"masks were pruned from, so their θ0 rescaling cannot be applied: pass the options they were pruned "
                f"with, --model-kwargs '{json.dumps(pruned_with)}'"
            ) from None
        raise ConfigError(
            f"the model built with --init-seed {init_seed} does not hold the weights these masks were pruned from, "
            f"so their θ0 rescaling cannot be applied: pass the --init-seed they were pruned with. Masks pruned in "
            "Python fit --init-seed N only when the model came from autosparse.build_model(..., seed=N); for any other "
            "model (a torchvision constructor, seed=None) train in Python with masks.apply(model), or save "
            "masks.without_init() to train them here without the rescaling"
        ) from None


def _finished(out: Path, fingerprint: str, *, per_epoch: bool) -> dict | None:
    """The metrics of the same training, finished earlier into ``out`` (None: train it). A run that asks
    for the per-epoch test curve is not answered by one that did not ask for it; one that asked and was
    resumed from epochs trained without it (their points cannot be measured again) answers it, or each
    rerun would train it anew."""
    metrics = _recorded(out)
    if metrics is None or metrics.get("fingerprint") != fingerprint or not (out / WEIGHTS).is_file():
        return None
    # cut short or overwritten: "already trained" was answered for unreadable weights (hunt)
    if _ours(out / WEIGHTS) is None:
        log.warning("%s is damaged (no safetensors file can be read from it); training it again", out / WEIGHTS)
        return None
    asked = (metrics.get("train") or {}).get("eval_every_epoch") is True
    curve = not per_epoch or asked or all("test_accuracy" in h for h in metrics.get("history") or [{}])
    return metrics if curve else None


def _recorded(out: Path) -> dict | None:
    """``out``'s metrics.json, or None where there is none (or it is no JSON object)."""
    try:
        metrics = json.loads((out / METRICS).read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


def _ours(weights: Path) -> bool | None:
    """Whether ``autosparse train`` saved these weights: its files say so in their own metadata (the
    lock file said it first, but a refused run leaves that too, so a rerun took a stranger's weights
    for ours; review). None: no safetensors file can be read there (damaged, or another format)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), "pt") as f:
            return (f.metadata() or {}).get("format") == WEIGHTS_FORMAT
    except Exception:  # not a safetensors file at all: nobody's we know
        return None


def _check_out_holds_nothing_else(out: Path, fingerprint: str, described: dict) -> None:
    """Refuse an ``--out`` whose finished result this training would replace: another training's, or
    weights no training of ours saved there.

    Why: a rerun with another recipe (or two trainings started into one folder) replaced the first
    result without a word (helper). A result of the *same* training without the per-epoch curve now
    asked for is replaced: that is the same run, measured more often.
    """
    from autosparse.core import json_text
    from autosparse.training.resume import STATE_FILE

    described = json.loads(json_text.dumps(described))  # as the record reads back: lists, not tuples
    metrics = _recorded(out)
    if metrics is not None and "fingerprint" not in metrics:
        # an older autosparse's result: it cannot be matched to this training, which may well be the same (helper)
        raise ConfigError(
            f"--out {out} holds the result of a training by an older autosparse, which recorded no fingerprint to "
            f"tell whether it is this one; delete {out / METRICS} to train this one there, or give another --out"
        )
    if metrics is not None and metrics.get("fingerprint") != fingerprint:
        old = metrics.get("described") if isinstance(metrics.get("described"), dict) else None
        changed = sorted(k for k in {*old, *described} if old.get(k) != described.get(k)) if old else []
        what = f"it differs in {', '.join(changed)}" if changed else "another model, recipe, data or masks"
        acc = metrics.get("test_accuracy")
        score = f", test accuracy {100 * acc:.2f}%" if isinstance(acc, (int, float)) else ""
        raise ConfigError(
            f"--out {out} holds the finished result of another training ({what}{score}); give another --out, "
            f"or delete {out / METRICS} to train this one there"
        )
    if metrics is None and (out / METRICS).exists():  # "that no training wrote" for one cut short (hunt)
        raise ConfigError(
            f"--out {out} holds a {METRICS} that is no training's record (damaged, or another program's); delete it to "
            "train there, or give another --out"
        )
    if metrics is None and (out / WEIGHTS).exists() and not (out / STATE_FILE).exists() and not _ours(out / WEIGHTS):
        raise ConfigError(
            f"--out {out} holds {WEIGHTS} without the mark `autosparse train` saves its weights with (another "
            "program's, or autosparse's from before 2026-12-05); give another --out, or delete it to train there"
        )


def _check_out_masks(out: Path, masks: Any) -> None:
    """Refuse an ``--out`` holding masks (a prune's folder) other than the ones this training runs under.

    Why: the trained weights were saved beside another method's masks, and the folder then read as
    "these weights, trained under these masks" (demo hunt). Training into the folder of its own
    ``--masks`` is fine.
    """
    import torch

    from autosparse.core.masks import MASKS_FILE, Masks

    if not (out / MASKS_FILE).is_file():
        return
    there = Masks.load(out)
    if masks is None or set(there) != set(masks) or not all(torch.equal(there[n], masks[n]) for n in masks):
        raise ConfigError(
            f"--out {out} holds masks ({MASKS_FILE}, a prune's folder) "
            + ("and this training runs dense" if masks is None else "other than the --masks this training runs under")
            + f": its weights would sit beside masks they were not trained under; give another --out (or --masks {out})"
        )


def run(args: argparse.Namespace) -> int:
    from autosparse.core.config_record import to_dict
    from autosparse.core.folders import check_output_path
    from autosparse.core.masks import Masks
    from autosparse.training.trainer import TrainConfig, resolve_device

    task, (job, cfg) = resolve_task(args, TrainJob, TrainConfig)
    # a YAML's `out: ~/run` is a folder in the home, not one named ~ (the shell expands only flags)
    job = dataclasses.replace(job, **{k: str(Path(v).expanduser()) for k in ("out", "masks") if (v := getattr(job, k))})

    resolve_device(cfg.device)  # before the data loads
    if job.out:
        check_output_path(job.out)  # before the training, not when saving its result
        check_out_is_no_store_or_scorer(Path(job.out), writer="this training")
    masks = Masks.load(job.masks) if job.masks else None
    if job.out:
        _check_out_masks(Path(job.out), masks)
    if masks is not None:
        task = _task_of_masks(args, task, masks)
    init_seed = _init_seed(job, masks)
    dataset = task.load_data()
    model = task.build_model(dataset, seed=init_seed)
    if masks is not None:
        masks.validate(model, task.model.model)
        _check_init(masks, model, init_seed, dict(task.model.model_kwargs or {}))
    # what the weights do not show: model options (a ViT's heads), the data subsets and their seeds, the init seed
    known = {"model": to_dict(task.model), "data": to_dict(task.data), "init_seed": init_seed}
    if not job.out:
        _train(task, job, cfg, model, dataset, masks, known, None)
        return 0
    from autosparse.core.claims import claim, holder, is_held
    from autosparse.scorer.checkpoint import LOCK_FILE as SCORER_LOCK
    from autosparse.training.resume import LOCK_FILE

    out = Path(job.out)
    args.resumes = True  # each finished epoch is kept there
    with claim(out / LOCK_FILE) as mine:  # two trainings into one folder: the later replaced the first (helper)
        if not mine:
            raise ConfigError(
                f"--out {out} is being trained into by another process ({holder(out / LOCK_FILE)}); wait for it to "
                "finish (rerun then to return its result at once), or choose another --out"
            )
        if is_held(out / SCORER_LOCK):  # its save would replace this model's files, or the reverse (review)
            raise ConfigError(
                f"--out {out} is being written by a scorer training ({holder(out / SCORER_LOCK)}); choose another --out"
            )
        _train(task, job, cfg, model, dataset, masks, known, out)
    return 0


def _train(
    task: Task,
    job: TrainJob,
    cfg: TrainConfig,
    model: nn.Module,
    dataset: object,
    masks: Masks | None,
    known: dict,
    out: Path | None,
) -> None:
    """Train, print the result and, with ``out``, keep it there (each finished epoch while it runs)."""
    from autosparse.core import json_text
    from autosparse.core.config_record import to_dict
    from autosparse.core.folders import make_output_dir, write_text
    from autosparse.training.resume import STATE_FILE
    from autosparse.training.trainer import describe_training, train, train_fingerprint

    fp, state = "", None
    if out is not None:
        fp = train_fingerprint(model, masks, cfg, dataset, known)
        done = _finished(out, fp, per_epoch=cfg.eval_every_epoch)
        if done is not None:  # open_lth's rule: a job that finds its result done returns at once
            diverged = f"; it diverged ({done['diverged']})" if done.get("diverged") else ""
            print(
                f"{task.model.model} on {task.data.dataset}: already trained into {out} (test accuracy "
                f"{100 * done['test_accuracy']:.2f}%{diverged}); delete {out / METRICS} to train it again"
            )
            return
        _check_out_holds_nothing_else(out, fp, describe_training(cfg, known))
        state = make_output_dir(out) / STATE_FILE
    # the checkpoint is removed below, once the result is written: a kill before that keeps every epoch
    result = train(
        model,
        dataset,
        cfg,
        masks=masks,
        desc=f"train {task.model.model}",
        checkpoint=state,
        task=known,
        keep_checkpoint=True,
    )
    from autosparse.core.text import count_of

    # kept weights as well: one kept weight of 300k read "density 0.0000" (demo hunt)
    density = f", density {masks.density:.4g} ({masks.kept:,} weights kept)" if masks else ""
    print(
        f"{task.model.model} on {task.data.dataset}: test accuracy {100 * result.test_accuracy:.2f}% "
        f"after {count_of(cfg.epochs, 'epoch')} in {result.seconds:.{2 if result.seconds < 10 else 0}f}s{density}"
    )
    if out is None:
        return
    out = make_output_dir(out)
    from autosparse.core.tensor_files import save_tensors

    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_tensors(weights, str(out / WEIGHTS), metadata={"format": WEIGHTS_FORMAT})  # what a rerun tells ours by
    metrics = {
        "model": task.model.model,
        "model_kwargs": task.model.model_kwargs,
        "dataset": task.data.dataset,
        "n_train": len(dataset.y_train),  # type: ignore[attr-defined]
        "n_test": len(dataset.y_test),  # type: ignore[attr-defined]
        "init_seed": known["init_seed"],
        "fingerprint": fp,  # what a rerun into this folder compares with, to return at once
        "described": describe_training(cfg, known),  # what a rerun of another training is told differs
        "data": to_dict(task.data),  # the subset's seed and folder as well as its sizes
        "train": to_dict(cfg),  # the recipe and its seed: two seeds' runs wrote the same file but the numbers
        "masks": job.masks,
        "test_accuracy": result.test_accuracy,
        "diverged": result.diverged,  # what said so (None: it did not); a rerun that returns at once repeats it
        "seconds": result.seconds,
        "history": result.history,
        "density": masks.density if masks else 1.0,
    }
    scales = masks.init.branch_scale if masks is not None and masks.init else {}
    if scales:  # forward hooks, not in a state dict: the weights compute nothing right without them
        metrics["branch_scale"] = scales
        print(
            f"{len(scales)} residual branch(es) of this model are scaled by the masks (robust); a state dict does "
            f"not hold that: after loading model.safetensors call Masks.load({job.masks!r}).without_init()"
            ".prepare(model)"
        )
    write_text(out / METRICS, json_text.dumps(metrics, indent=2))
    if state is not None:
        state.unlink(missing_ok=True)
