"""``autosparse bench``: accuracy-vs-sparsity grids next to baselines, and the time-to-mask benchmark."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from autosparse.core.config import add_arguments, add_config_argument, from_dict, given, merge, read_config, resolve
from autosparse.core.config_record import respelled
from autosparse.core.errors import ConfigError, failure_lines

KINDS = ("accuracy", "speed", "train_speed")

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark pruning methods: accuracy vs sparsity, or time to mask",
        description="Run a bench grid (models × datasets × methods × densities × seeds; IMP, the reference, is the method `imp`) "
        "and write report.md, results.csv/json and plots to --out; finished cells are never recomputed, so "
        "rerunning after a kill or after adding a method only computes what is missing. The grid is the "
        "config's fields, from --config and then flags (e.g. --seeds 0,1 --densities 0.01). A config with "
        "`kind: speed` (or `autosparse bench speed`) measures time to mask and peak memory instead, "
        "`kind: train_speed` an epoch of masked against dense training. "
        "Example: autosparse bench --config configs/bench/fmnist_lenet.yaml --executor process --workers 2",
        arguments=add_options,
    )
    p.set_defaults(func=run)


def add_options(p: argparse.ArgumentParser) -> None:
    from autosparse.bench.config import BenchConfig
    from autosparse.bench.speed import SpeedConfig
    from autosparse.core.executors import ExecutorConfig

    p.add_argument(
        "asked_kind",  # not `kind`: that is a field of the configs, and a given flag would override it
        metavar="{accuracy,speed,train_speed}",
        nargs="?",  # no `choices`: the value of a mistyped flag (`--epochs 1`) lands here, and the flag's
        default=None,  # own did-you-mean error must win over "invalid choice: '1'" (checked in run)
        help="accuracy (default), speed or train_speed; taken from the config's `kind` when omitted",
    )
    add_config_argument(p, help="bench config (see configs/bench/): a YAML of the options below; flags override it")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: runs/bench/<the --config file's name>; without --config, runs/bench/<kind>)",
    )
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from the cells on disk")
    p.add_argument(
        "--check",
        action="store_true",
        help="validate the config (names, hyperparameters, device, every row's scorer, each dataset's files), say "
        "how many cells --out already holds and how many a run would compute, and exit without writing anything",
    )
    # --train.seed is refused (each cell's seed comes from --seeds): parsed to say so, not offered
    add_arguments(p.add_argument_group("the grid"), BenchConfig, exclude=("kind",), hide=("train.seed",))
    accuracy = [f.name for f in dataclasses.fields(BenchConfig)]
    add_arguments(p.add_argument_group("speed bench only (kind: speed)"), SpeedConfig, exclude=accuracy)
    add_arguments(p.add_argument_group("where the jobs run (accuracy bench)"), ExecutorConfig)


def run(args: argparse.Namespace) -> int:
    from autosparse.bench.config import config_kind
    from autosparse.bench.outputs import check_record_whole
    from autosparse.bench.runner import CONFIG_FILE
    from autosparse.bench.speed import SpeedConfig

    if args.asked_kind is not None and args.asked_kind not in KINDS:
        raise ConfigError(f"unknown bench kind {args.asked_kind!r}; use one of {', '.join(KINDS)} (or none: accuracy)")
    if not args.config and args.out and (Path(args.out) / CONFIG_FILE).exists():
        # `bench --out DIR [--report-only]`: the grid that folder holds, not the default one
        check_record_whole(Path(args.out) / CONFIG_FILE)
        args.config = str(Path(args.out) / CONFIG_FILE)
        args.config_is_record = True  # one written before the head mark too
        log.info("reading the bench config %s", args.config)
    elif not args.config and args.out and args.asked_kind is None and not _grid_flags(args):
        _refuse_a_timing_folder(Path(args.out))  # the folder's own bench was asked for, and it has no bench.yaml
    if not args.config and args.report_only and not _grid_flags(args):
        # the default grid's report of a folder made with another grid: every row "–", the old report gone
        folder = Path(args.out) if args.out else Path("runs") / "bench" / "accuracy"
        raise ConfigError(
            f"--report-only needs the grid to report: {folder / CONFIG_FILE} is missing, so pass --config with the "
            "bench's YAML (or the grid as flags: --models, --methods, --densities, …)"
        )
    if args.asked_kind == "train_speed" or (args.config and config_kind(args.config) == "train_speed"):
        if args.asked_kind not in (None, "train_speed"):
            raise ConfigError(
                f"{args.config} is a train_speed bench (its `kind`), but `autosparse bench {args.asked_kind}` was asked"
            )
        return _train_speed(args)
    cfg, where = resolve_bench(args)
    out = Path(args.out) if args.out else Path("runs") / "bench" / (Path(args.config).stem if args.config else cfg.kind)
    if args.check:
        if args.report_only:
            raise ConfigError("--check and --report-only: give one of them")
        return _check(cfg, where, out, args.config)
    if isinstance(cfg, SpeedConfig):
        return _speed(cfg, where, args.report_only, out)
    return _accuracy(cfg, where, args.report_only, out)


def _refuse_a_timing_folder(out: Path) -> None:
    """``bench --out DIR [--report-only]`` on a speed or train_speed bench's folder: the way that works.

    Why: the messages sent the user in a loop — "bench.yaml is missing, so pass --config", then "drop
    --report-only", then "--out holds a speed bench" — while the way to the report is a rerun with the
    bench's own YAML (a speed bench reuses every finished measurement).
    """
    from autosparse.bench.outputs import CONFIG_FILE, folder_kind

    found = folder_kind(out)
    if found is None or found[0] not in ("speed", "train_speed"):
        return
    kind, mark = found
    again = (
        "every finished measurement is reused, only failed ones are taken again, and the report is rewritten"
        if kind == "speed"
        else "it times every variant again: a train_speed bench has no --report-only"
    )
    raise ConfigError(
        f"--out {out} holds a {kind} bench ({mark}), which has no {CONFIG_FILE} to report from: rerun it with the YAML it "
        f"was run with, `autosparse bench --config THAT.yaml --out {out}` ({again})"
    )


def _grid_flags(args: argparse.Namespace) -> bool:
    """Some part of the accuracy grid was given as a flag (a report of that grid is what was asked)."""
    from autosparse.bench.config import BenchConfig

    return bool(given(args, BenchConfig))


def _check(cfg: Any, where: Any, out: Path, config: str | None) -> int:
    """``bench --check``: every check a run makes before its first cell, then the plan; nothing written."""
    from autosparse.bench.outputs import check_folder_kind
    from autosparse.bench.runner import plan_bench, unloadable_rows
    from autosparse.bench.speed import (
        SpeedConfig,
        finished_measurement,
        measurement_path,
        plan_measurements,
        preflight_speed,
    )
    from autosparse.core.text import count_of

    name = config or "the bench config"
    if isinstance(cfg, SpeedConfig):
        _speed_runs_here(where, report_only=False)
        cfg.validate()
        check_folder_kind(out, "speed")
        preflight_speed(cfg, out)
        cases = plan_measurements(cfg)
        done = sum(1 for c in cases if finished_measurement(measurement_path(out, c)) is not None)
        print(
            f"{name}: valid; every row still to measure loads. {count_of(len(cases), 'measurement')}; {done} already "
            f"in {out}, {len(cases) - done} to take."
        )
        return 0
    plan = plan_bench(cfg, out, executor=where.executor, workers=where.workers)
    todo = plan.cells_total - plan.cells_done
    # rows whose cells are all done need no scorer to be reused, but "every row's scorer loads" would be
    # untrue of them: a relative scorer path run from another folder loaded nowhere (helper)
    running = {id(j) for j in plan.todo}
    unloadable = unloadable_rows([j for j in plan.jobs if id(j) not in running])
    loads = "every row's method and scorer loads" if not unloadable else "every row still to compute loads"
    print(
        f"{name}: valid; {loads}. {count_of(plan.cells_total, 'cell')} in "
        f"{count_of(len(plan.jobs), 'job')}; {plan.cells_done} already in {out}, {todo} to compute in "
        f"{count_of(len(plan.todo), 'job')}."
    )
    for label, error in unloadable.items():
        print(f"note: bench row {label!r} does not load here ({error}); its cells are done and are reused as they are")
    return 0


def resolve_bench(args: argparse.Namespace) -> tuple[Any, Any]:
    """The bench config (accuracy or speed, by the YAML's ``kind``) and the executor, from YAML < flags."""
    from autosparse.bench.config import BenchConfig, kind_of
    from autosparse.bench.outputs import is_record
    from autosparse.bench.speed import SpeedConfig
    from autosparse.core.executors import ExecutorConfig
    from autosparse.training.trainer import gpus_here

    data = read_config(args)
    asked = args.asked_kind
    kind = kind_of(data, args.config) if args.config else (asked or "accuracy")
    if asked is not None and asked != kind:
        raise ConfigError(f"{args.config} is {_a(kind)} bench (its `kind`), but `autosparse bench {asked}` was asked")
    cls, other = (SpeedConfig, BenchConfig) if kind == "speed" else (BenchConfig, SpeedConfig)
    own = {f.name for f in dataclasses.fields(cls)}
    stray = {k: v for k, v in given(args, other).items() if k not in own}
    if stray:
        flags = ", ".join("--" + k.replace("_", "-") + (".…" if isinstance(v, dict) else "") for k, v in stray.items())
        other_kind = "accuracy" if kind == "speed" else "speed"
        meant = _own_spelling(cls, [k for k, v in stray.items() if not isinstance(v, dict)])
        hint = f" (this bench's: {', '.join(meant)})" if meant else ""
        raise ConfigError(f"{flags}: only for the {other_kind} bench, and this is {_a(kind)} bench; drop them{hint}")
    pick_labelled_rows(args, cls, data)
    cfg, where = resolve(args, cls, ExecutorConfig, data=data)
    if cls is BenchConfig and args.config and (getattr(args, "config_is_record", False) or is_record(args.config)):
        # a folder's record: YAML's 8 is the int default a run that left the field out recorded, read as 8.0 it
        # named other cells than the folder's (a flag's value, given as a float, stays one; review)
        cfg = respelled(cfg, merge(data, given(args, cls)))
    if hasattr(cfg, "num_cpus"):  # the accuracy bench's jobs: the speed benches measure here, one at a time
        where.check_fits_here(cfg.num_cpus, cfg.num_gpus, gpus_here())
    return cfg, where


def _own_spelling(cls: type, names: list[str]) -> list[str]:
    """This bench kind's flags the other kind's ``names`` likely meant (``--seed`` → ``--seeds``,
    ``--device`` → ``--train.device``): a typo for one kind is often the other kind's option."""
    import difflib

    default, own = cls(), []
    for f in dataclasses.fields(cls):
        own.append(f.name)
        if dataclasses.is_dataclass(inner := getattr(default, f.name)):
            own += [f"{f.name}.{g.name}" for g in dataclasses.fields(inner)]
    out = []
    for name in names:
        match = difflib.get_close_matches(name, own, n=1, cutoff=0.6)
        if match:
            out.append(f"--{name.replace('_', '-')} → --{match[0].replace('_', '-')}")
    return out


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def pick_labelled_rows(args: argparse.Namespace, cls: type, data: dict[str, Any]) -> None:
    """``--methods``/``--models`` names that label rows of the YAML stand for those rows."""
    from autosparse.bench.config import MethodSpec, pick_rows
    from autosparse.task import ModelSpec

    base = from_dict(cls, {k: data[k] for k in ("methods", "models") if k in data})
    for key, label in (("methods", MethodSpec.title), ("models", ModelSpec.label)):
        if hasattr(args, key) and key in data:
            setattr(args, key, pick_rows(getattr(args, key), getattr(base, key), label))
    if hasattr(args, "methods") and "methods" in data:
        _check_method_names(args.methods, [m.title() for m in base.methods])


def _check_method_names(given: Any, labels: list[str]) -> None:
    """A ``--methods`` name that is neither a row of the YAML nor a method: one error listing the rows.

    Why: the method registry's own error lists only bare methods, while a mistyped row label
    (``imp_flow`` for ``imp-flow``) is the likelier slip on a config whose rows carry labels.
    """
    from autosparse.core.errors import closest_name
    from autosparse.pruners import available

    known = set(available())
    for name in given if isinstance(given, (list, tuple)) else ():
        if isinstance(name, str) and name not in known:
            close = closest_name(name, labels + sorted(known))
            raise ConfigError(
                f"--methods {name!r} is neither a row of this config nor a pruning method"
                + (f" (did you mean {close!r}?)" if close else "")
                + f"; the config's rows: {', '.join(labels)}; a method name (`autosparse methods`) adds a row "
                "with its default hyperparameters"
            )


def _accuracy(cfg: Any, where: Any, report_only: bool, out: Path) -> int:
    from autosparse.bench.outputs import check_folder_kind
    from autosparse.bench.report import write_report
    from autosparse.bench.runner import CONFIG_FILE, folder_config, run_bench, settings_unlike_record
    from autosparse.core.text import count_of

    if report_only:
        cfg.validate()
        check_folder_kind(out, "accuracy")
        unlike = settings_unlike_record(out, cfg)
        if unlike:
            raise ConfigError(
                f"--report-only: {out / CONFIG_FILE} records another bench (its {', '.join(unlike)} "
                f"{'differs' if len(unlike) == 1 else 'differ'} from this command's), and its report would replace "
                f"this folder's; `autosparse bench --out {out} --report-only` alone reports the folder's own grid, "
                "and a run without --report-only (with another --out) computes this one"
            )
        from autosparse.bench.cells import CELLS_DIR

        if not any((out / CELLS_DIR).glob("*.json")):  # a mistyped --out would get an empty "report" and exit 0
            raise ConfigError(
                f"--report-only: {out} holds no bench cells ({out / CELLS_DIR}/*.json); point --out at the folder a "
                "bench wrote, or run the bench without --report-only"
            )
        report = write_report(folder_config(out, cfg), out)  # the folder's whole grid, as a run reports it
        print(report.tables)
        print(
            f"\n{count_of(len(report.records), 'cell')} on disk, {len(report.missing)} missing; report: {report.path}"
        )
        return 0
    result = run_bench(cfg, out, **where.options())
    report = result.report
    assert report is not None
    print(report.tables)
    print(
        f"\n{result.cells_total} cells: {result.cells_done_before} were done, {result.jobs_run} jobs ran now, "
        + (f"{result.jobs_elsewhere} ran in another bench process, " if result.jobs_elsewhere else "")
        + (f"{result.jobs_same} were another row's computation (cells copied), " if result.jobs_same else "")
        + f"{len(result.failures)} failed; report: {report.path}"
    )
    for line in failure_lines((f.key, f.error) for f in result.failures):
        print(line)
    return 1 if result.failures else 0


def _speed(cfg: Any, where: Any, report_only: bool, out: Path) -> int:
    from autosparse.bench.speed import run_speed

    _speed_runs_here(where, report_only)
    result = run_speed(cfg, out)
    print(result.tables)
    failed = [r for r in result.rows if not r.get("ok")]
    print(f"\n{len(result.rows)} measurements, {len(failed)} failed; report: {result.path}")
    return 1 if failed else 0


def _speed_runs_here(where: Any, report_only: bool) -> None:
    """What a speed bench refuses, refused by ``--check`` too (it said "valid" to ``--executor process``)."""
    from autosparse.core.executors import ExecutorConfig

    if where != ExecutorConfig() or report_only:
        raise ConfigError(
            "the speed bench measures one method at a time on this machine; drop --executor/--address/--workers "
            "and --report-only"
        )


def _train_speed(args: argparse.Namespace) -> int:
    args.resumes = False  # it writes its measurements at the end: an interrupt keeps nothing
    from autosparse.bench.config import BenchConfig
    from autosparse.bench.outputs import check_folder_kind
    from autosparse.bench.speed import SpeedConfig
    from autosparse.bench.train_speed import REPORT_FILE, TrainSpeedConfig, run_train_speed
    from autosparse.core.executors import ExecutorConfig

    if not args.config:
        raise ConfigError(
            "the training-speed bench reads its models and variants from a YAML; "
            "pass --config configs/bench/speed_train.yaml"
        )
    stray = {**given(args, BenchConfig), **given(args, SpeedConfig), **given(args, ExecutorConfig)}
    out = Path(args.out) if args.out else Path("runs") / "bench" / Path(args.config).stem
    if args.check and not (stray or args.report_only):
        TrainSpeedConfig.from_yaml(args.config)
        check_folder_kind(out, "train_speed")
        print(f"{args.config}: valid (a training-speed bench writes its measurements at the end).")
        return 0
    if stray or args.report_only:
        flags = ", ".join("--" + k.replace("_", "-") for k in stray) or "--report-only"
        raise ConfigError(f"{flags}: the training-speed bench takes only --config and --out; drop them")
    run_train_speed(TrainSpeedConfig.from_yaml(args.config), out)
    print((out / REPORT_FILE).read_text())
    return 0
