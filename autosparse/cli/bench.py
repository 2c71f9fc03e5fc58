"""``autosparse bench``: accuracy-vs-sparsity grids next to baselines, and the time-to-mask benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from autosparse.core.errors import ConfigError
from autosparse.core.executors import EXECUTORS

KINDS = ("accuracy", "speed", "train_speed")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark pruning methods: accuracy vs sparsity, or time to mask",
        description="Run a bench grid (models × datasets × methods × densities × seeds, plus IMP as the reference) "
        "and write report.md, results.csv/json and plots to --out; finished cells are never recomputed, so "
        "rerunning after a kill or after adding a method only computes what is missing. A config with "
        "`kind: speed` (or `autosparse bench speed`) measures time to mask and peak memory instead, "
        "`kind: train_speed` an epoch of masked against dense training. "
        "Example: autosparse bench --config configs/bench/fmnist_lenet.yaml --executor process --workers 2",
    )
    p.add_argument(
        "kind",
        nargs="?",
        choices=KINDS,
        default=None,
        help="accuracy (default), speed or train_speed; taken from the config's `kind` when omitted",
    )
    p.add_argument("--config", required=True, metavar="YAML", help="bench config (see configs/bench/)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/bench/<config name>)")
    p.add_argument("--executor", choices=EXECUTORS, default="local", help="where cells run (default: local)")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray), e.g. auto")
    p.add_argument("--workers", type=int, default=0, help="processes for --executor process (default: cores)")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from the cells on disk")
    p.add_argument(
        "--methods",
        metavar="A,B,…",
        default=None,
        help="run only these method labels of the config (the report still lists every row)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autosparse.bench.config import config_kind

    kind = config_kind(args.config)
    if args.kind is not None and args.kind != kind:
        raise ConfigError(f"{args.config} is a {kind} bench (its `kind`), but `autosparse bench {args.kind}` was asked")
    out = Path(args.out) if args.out else Path("runs") / "bench" / Path(args.config).stem
    if kind == "speed":
        return _speed(args, out)
    if kind == "train_speed":
        return _train_speed(args, out)
    return _accuracy(args, out)


def _accuracy(args: argparse.Namespace, out: Path) -> int:
    from autosparse.bench.config import BenchConfig
    from autosparse.bench.report import write_report
    from autosparse.bench.runner import run_bench

    cfg = BenchConfig.from_yaml(args.config)
    if args.report_only:
        cfg.validate()
        report = write_report(cfg, out)
        print(report.tables)
        print(f"\n{len(report.records)} cells on disk, {len(report.missing)} missing; report: {report.path}")
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    result = run_bench(cfg, out, executor=args.executor, address=args.address, workers=args.workers, methods=methods)
    report = result.report
    assert report is not None
    print(report.tables)
    print(
        f"\n{result.cells_total} cells: {result.cells_done_before} were done, {result.jobs_run} jobs ran now, "
        f"{len(result.failures)} failed; report: {report.path}"
    )
    for f in result.failures:
        print(f"FAILED {f.key}: {(f.error.splitlines() or [''])[0]}")
    return 1 if result.failures else 0


def _speed(args: argparse.Namespace, out: Path) -> int:
    from autosparse.bench.speed import SpeedConfig, run_speed

    if args.executor != "local" or args.report_only or args.methods:
        raise ConfigError(
            "the speed bench measures one method at a time on this machine; "
            "drop --executor, --report-only and --methods"
        )
    result = run_speed(SpeedConfig.from_yaml(args.config), out)
    print(result.tables)
    failed = [r for r in result.rows if not r.get("ok")]
    print(f"\n{len(result.rows)} measurements, {len(failed)} failed; report: {result.path}")
    return 1 if failed else 0


def _train_speed(args: argparse.Namespace, out: Path) -> int:
    from autosparse.bench.train_speed import REPORT_FILE, TrainSpeedConfig, run_train_speed

    if args.executor != "local" or args.report_only or args.methods:
        raise ConfigError(
            "the training-speed bench times one training at a time; drop --executor, --report-only and --methods"
        )
    run_train_speed(TrainSpeedConfig.from_yaml(args.config), out)
    print((out / REPORT_FILE).read_text())
    return 0
