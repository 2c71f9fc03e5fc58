"""``autosparse prune``: make masks for a model at initialisation with any registered method."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from autosparse.cli.arguments import add_task_arguments, check_out_is_no_store_or_scorer, resolve_task
from autosparse.core.config import add_config_argument
from autosparse.core.errors import ConfigError


@dataclass
class PruneJob:
    method: str = "synflow"  # a registered pruning method (list them with `autosparse methods`)
    density: float | None = None  # fraction of the weights to keep, e.g. 0.01 (give this or --sparsity)
    sparsity: float | None = None  # fraction of the weights to remove, e.g. 0.99 (give this or --density)
    out: str | None = None  # folder for masks.safetensors + report.json (+ init_factors.safetensors: θ0's rescale)
    seed: int = 0  # seed of the pruner (random methods, batch choice)
    init_seed: int = 0  # seed of the model's initial weights
    samples_per_class: int = 10  # examples per class in the pruning batch of data-dependent methods
    hp: tuple[str, ...] = ()  # method hyperparameters KEY=VALUE, repeatable (see `autosparse methods`)


def parse_hparams(method: str, items: tuple[str, ...]) -> dict[str, object]:
    """``KEY=VALUE`` strings -> a dict typed by the method's Config dataclass."""
    from autosparse.core.config import from_dict
    from autosparse.pruners import get_pruner

    raw: dict[str, str] = {}
    last = ""
    config_cls = get_pruner(method).Config
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    for item in items:
        if "=" not in item:
            # the flag parser splits --hp values at commas and spaces, so `input_shape=1,28,28` came as three items
            kind = str(fields[last].type) if last in fields else ""
            listed = (
                f"; a list value is written in brackets, e.g. --hp {last}=[1,28,28] (commas split --hp values)"
                if "tuple" in kind or "list" in kind or (last and not kind)
                # a path with a space or a comma: the flag cannot carry it (it was told to write a list; hunt)
                else f"; --hp splits its values at spaces and commas, so a {last} holding one goes in a YAML "
                f"config: hp: {{{last}: 'the whole value, quoted'}}"
                if kind.startswith("str")
                else f"; {last} takes one value, and --hp splits its values at spaces and commas"
                + ("" if kind in ("int", "bool") else f" (a decimal is written with a point: {last}=0.5)")
                if last
                else ""
            )
            raise ConfigError(
                f"hyperparameter {item!r} must look like KEY=VALUE, e.g. --hp rounds=10 (in a YAML config: hp: "
                f"{{rounds: 10}}){listed}"
            )
        k, v = item.split("=", 1)
        last = k.strip()
        raw[last] = v.strip()
    empty = [k for k, v in raw.items() if not v and k.replace("-", "_") in fields]  # an unknown key: from_dict says so
    if empty:
        f = fields[empty[0].replace("-", "_")]
        k = f.name
        default = f" (its default: {f.default!r})" if f.default is not dataclasses.MISSING else ""
        raise ConfigError(
            f"hyperparameter {k} has no value: give --hp {k}=VALUE, or leave it out for the default{default}"
        )
    _refuse_yaml_booleans(config_cls, raw)
    cfg = from_dict(config_cls, raw, where=method)
    return {k: getattr(cfg, k) for k in raw if k.replace("-", "_") in fields}


def _refuse_yaml_booleans(config_cls: type, raw: dict[str, str]) -> None:
    """A text hyperparameter given ``False`` / ``True``: what a YAML ``hp: {guard: off}`` becomes (YAML 1.1
    reads an unquoted off as False), which the method then called an unknown 'False' (hunt). The bench's
    ``hparams:`` say so already; this says it for ``hp:``."""
    import typing

    hints = typing.get_type_hints(config_cls)
    for key, value in raw.items():
        if value in ("False", "True") and hints.get(key.replace("-", "_")) is str:
            word = "off, no or false" if value == "False" else "on, yes or true"
            raise ConfigError(
                f"hyperparameter {key} takes text, got {value}: a YAML config reads an unquoted {word} as {value}; "
                f"quote it (hp: {{{key}: '{'off' if value == 'False' else 'on'}'}})"
            )


def _path_summary(diag: dict[str, object]) -> str:
    """One line on the paths: effective params, log10 paths, and how far they can be trusted."""
    if diag["effective_params"] is None:
        return f"path diagnostics {diag['paths']}"
    text = f"effective params {diag['effective_params']}, log10 paths {diag['log10_paths']:.2f}"
    if diag["paths"] != "exact":
        text += f" (path counts {diag['paths']})"
    if diag["collapsed_layers"]:
        text += f"; {len(diag['collapsed_layers'])} collapsed layer(s), named in the warning above"  # type: ignore[arg-type]
    independent = diag.get("input_independent_layers") or []
    if independent:
        from autosparse.core.text import name_list

        # their kept weights count as effective nowhere: say why, or the gap reads as a collapse
        text += (
            f"; {len(independent)} layer(s) lie on no input-to-output path of the eval-mode forward even with every "  # type: ignore[arg-type]
            "weight kept (a positional projection of constants, a branch only training runs, a part run under "
            f"no_grad), so no mask could connect them: {name_list(independent)}"  # type: ignore[arg-type]
        )
    return text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="prune a model at initialisation and save the masks",
        description="Prune a freshly initialised model with a registered method and save its masks. "
        "Example: autosparse prune --model lenet_300_100 --dataset fashion-mnist --method snip --sparsity 0.99 --out m/",
        arguments=add_options,
    )
    # masks.save writes three files: one interrupted between them leaves a folder Masks.load refuses
    p.set_defaults(func=run, resumes=False, interrupted_save=" (or, if it was saving, a folder refused when read)")


def add_options(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    add_task_arguments(p, PruneJob)


def _flag_amount_wins(args: argparse.Namespace, job: PruneJob) -> PruneJob:
    """``--sparsity`` on the command line replaces the config's ``density`` (and the other way round):
    flags override the YAML, and the two are one setting spelled two ways."""
    from autosparse.core.config import given

    if job.density is None or job.sparsity is None:
        return job
    flags = given(args, PruneJob)
    if "density" in flags and "sparsity" not in flags:
        return dataclasses.replace(job, sparsity=None)
    if "sparsity" in flags and "density" not in flags:
        return dataclasses.replace(job, density=None)
    return job  # both from one place: check_density says to give one


def _check_imp_data_seed(args: argparse.Namespace, data_seed: int, job: PruneJob) -> None:
    """imp draws its training subset with the pruning seed, as a source run does: a --data-seed that
    says otherwise was ignored without a word (two data seeds, one mask)."""
    from autosparse.core.config import given
    from autosparse.task import DataSpec

    if data_seed != job.seed and ("data_seed" in given(args, DataSpec) or data_seed != 0):
        raise ConfigError(
            f"imp trains on the subset its seed draws (--seed {job.seed}), as a source run does, so --data-seed "
            f"{data_seed} would not change its mask: drop --data-seed, or give the subset's seed as --seed"
        )


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` holding what the masks would replace or clutter, read only and before pruning.

    Why: prune wrote its three files into a `train` result, a scorer, a feature store and over a
    user's own report.json without a word (helper); only its own earlier masks are replaced.
    """
    from autosparse.cli.train import METRICS, WEIGHTS
    from autosparse.core.folders import check_output_path
    from autosparse.core.masks import foreign_mask_files

    check_output_path(out)
    if out.suffix == ".safetensors" and not out.is_dir():  # Masks.save refuses it: said before the pruning (review)
        raise ConfigError(f"--out is the masks' folder, not one file: give a folder, e.g. --out {out.with_suffix('')}")
    check_out_is_no_store_or_scorer(out, writer="the masks")
    for name in (METRICS, WEIGHTS):
        if (out / name).exists():
            raise ConfigError(f"--out {out} holds a training's result ({name}); give another --out for the masks")
    foreign = foreign_mask_files(out)
    if foreign:
        raise ConfigError(
            f"--out {out} holds {', '.join(foreign)} that no `autosparse prune` wrote, which the masks would replace; "
            "give another --out (or move them away)"
        )


def run(args: argparse.Namespace) -> int:
    from autosparse.core.config_record import to_dict
    from autosparse.core.errors import check_density
    from autosparse.models import model_info

    task, (job,) = resolve_task(args, PruneJob)
    job = _flag_amount_wins(args, job)
    out = Path(job.out).expanduser() if job.out else None  # a YAML's `out: ~/masks` is no folder named ~
    if out is not None:
        _check_out(out)  # before the pruning, not when saving its result
    # the cheap checks before the dataset loads: a typo should not wait for the data
    check_density(job.density, job.sparsity)
    model_info(task.model.model)
    from autosparse.data import pruning_batch
    from autosparse.pruners import prune_timed
    from autosparse.topology.diagnostics import mask_diagnostics

    hparams = parse_hparams(job.method, job.hp)
    if job.method == "imp":  # imp trains on the task's data, subset and folder unless --hp says otherwise
        _check_imp_data_seed(args, task.data.data_seed, job)
        for key, value in (
            ("dataset", task.data.dataset),
            ("n_train", task.data.n_train),
            ("n_test", task.data.n_test),  # each round's accuracy was measured on the whole test set (helper)
            ("data_root", task.data.data_root),
        ):
            hparams.setdefault(key, value)
    dataset = task.load_data()
    model = task.build_model(dataset, seed=job.init_seed)
    pdata = pruning_batch(dataset, samples_per_class=job.samples_per_class, seed=job.seed)
    result = prune_timed(
        model, job.method, density=job.density, sparsity=job.sparsity, data=pdata, seed=job.seed, **hparams
    )
    masks = result.masks
    masks.meta.update(
        {
            "model": task.model.model,
            "dataset": task.data.dataset,
            "init_seed": job.init_seed,
            "model_kwargs": task.model.model_kwargs,
            "hparams": result.config,  # every hyperparameter the method ran with, given or default
            # the data the masks were made on: subset, its seed, the pruning batch (four runs differing only
            # here gave four masks with one report)
            # imp trains on the subset its --seed draws (ImpConfig.train_data), not --data-seed's
            "data": to_dict(dataclasses.replace(task.data, data_seed=job.seed) if job.method == "imp" else task.data),
            "samples_per_class": job.samples_per_class,
        }
    )
    diag = masks.meta.get("diagnostics") or mask_diagnostics(model, masks, tuple(dataset.input_shape), warn=False)
    masks.meta["diagnostics"] = diag  # prune() already warned, once, about collapsed layers
    print(masks.format_report())
    print(
        f"{job.method}: kept {masks.kept} of {masks.total} weights (density {masks.density:.4%}) "
        f"in {result.seconds:.2f}s; {_path_summary(diag)}"
    )
    if out is not None:
        path = masks.save(out)
        rescaled = " (with init_factors.safetensors: θ0's rescale, which `train --masks` applies)"
        print(f"masks written to {path}" + (rescaled if masks.init and masks.init.factors else ""))
    else:
        print(
            "masks not saved: rerun with --out DIR to save them (then `autosparse train --masks DIR` trains under them)"
        )
    return 0
