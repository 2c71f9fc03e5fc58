"""How much data generation costs beyond the training it cannot avoid, and how fast the store is.

IRP with R rounds of E epochs trains (R + 1) × E epochs; that part is irreducible. Everything
else — masking (pruned weights zeroed once, their gradients masked each step), a deep copy and rewind per round, one test
evaluation per round (the IMP curve), the magnitude top-k, a checkpoint per round — is
overhead, and the target is to keep it within 10% of plain training of the same epochs.
:func:`irp_overhead` measures exactly that ratio, in one process, alternating the two so a
shared machine's load hits both alike; it also reports CPU time, which is less sensitive to
other jobs than wall time. :func:`store_throughput` sizes the store benchmark
(:mod:`autosparse.store.throughput`) like real runs of a given model and feature schema.

Run as a script (``python -m data_gen.throughput irp|store --help``); docs/DATA_GEN.md records
numbers measured with it.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autosparse.core.config_record import to_dict
from autosparse.core.layers import prunable_layers
from autosparse.data import Dataset, DatasetInfo
from autosparse.features import FEATURE_NAMES
from autosparse.store.throughput import measure_write_read
from autosparse.task import DataSpec, ModelSpec
from autosparse.training.irp import IRPConfig, run_irp
from autosparse.training.trainer import TrainConfig, evaluate, set_threads, train

log = logging.getLogger(__name__)


def _load(
    model: str | nn.Module,
    dataset: str | Dataset,
    *,
    model_kwargs: dict[str, Any] | None,
    n_train: int | None,
    n_test: int | None,
    seed: int,
) -> tuple[nn.Module, Dataset]:
    """Accept names (built like ``autosparse gen`` builds them: the subset follows the seed) or ready objects."""
    if isinstance(dataset, str):
        dataset = DataSpec(dataset, n_train, n_test, data_seed=seed).load()
    if isinstance(model, str):
        model = ModelSpec(model, dict(model_kwargs or {})).build(dataset, seed)
    return model, dataset


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def irp_overhead(
    model: str | nn.Module,
    dataset: str | Dataset,
    *,
    model_kwargs: dict[str, Any] | None = None,
    irp: IRPConfig | None = None,
    train_cfg: TrainConfig | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    repeats: int = 1,
    checkpoints: bool = True,
) -> dict[str, Any]:
    """IRP wall/CPU time against plain dense training of the same total epochs, same process.

    ``model``/``dataset`` are names (built as data generation builds them) or objects. With
    ``checkpoints`` the IRP run writes its per-round checkpoints to a temp workdir, as
    ``autosparse gen`` does. Each of the ``repeats`` alternates IRP and plain training; the
    fastest of each is compared (the least disturbed by other load), and every time is kept.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    irp = irp or IRPConfig(rounds=2)
    train_cfg = train_cfg or TrainConfig(epochs=1, num_threads=1)
    net, ds = _load(model, dataset, model_kwargs=model_kwargs, n_train=n_train, n_test=n_test, seed=seed)
    set_threads(train_cfg.num_threads)
    trainings = irp.rounds + 1
    plain_cfg = replace(train_cfg, epochs=train_cfg.epochs * trainings)
    # Warm-up: the first optimiser, pruning hook and checkpoint of a process pay one-off lazy
    # imports (torch._dynamo alone takes seconds); a generation worker pays them once, not per run.
    with tempfile.TemporaryDirectory(prefix="irp-bench-") as tmp:
        run_irp(net, ds, IRPConfig(rounds=1), replace(train_cfg, epochs=1e-9), seed=seed, workdir=Path(tmp) / "w")
    runs: list[dict[str, float]] = []

    def plain() -> tuple[Any, float, float]:
        return _timed(lambda: train(copy.deepcopy(net), ds, plain_cfg, desc="plain"))

    for rep in range(repeats):
        # Alternate which goes first, so a load that drifts during a pair does not favour one side.
        if rep % 2:
            _, plain_wall, plain_cpu = plain()
        with tempfile.TemporaryDirectory(prefix="irp-bench-") as tmp:
            workdir = Path(tmp) / "run" if checkpoints else None
            result, irp_wall, irp_cpu = _timed(
                lambda wd=workdir: run_irp(net, ds, irp, train_cfg, seed=seed, workdir=wd)
            )
        if not rep % 2:
            _, plain_wall, plain_cpu = plain()
        runs.append(
            {
                "irp_wall_s": irp_wall,
                "irp_cpu_s": irp_cpu,
                "irp_train_s": result.seconds_train,
                "plain_wall_s": plain_wall,
                "plain_cpu_s": plain_cpu,
            }
        )
        log.info("repeat %d: IRP %.2fs, plain %.2fs", rep, irp_wall, plain_wall)
    # One test-set evaluation, the per-round cost of recording the IMP curve.
    _, eval_wall, _ = _timed(lambda: evaluate(net, ds.x_test, ds.y_test, train_cfg.eval_batch_size))
    best = {k: min(r[k] for r in runs) for k in runs[0]}
    n_weights = sum(layer.parameter.numel() for layer in prunable_layers(net))
    return {
        "model": model if isinstance(model, str) else type(model).__name__,
        "model_kwargs": dict(model_kwargs or {}),
        "dataset": getattr(ds, "name", "?"),
        "n_train": int(ds.n_train),
        "n_test": int(ds.n_test),
        "n_weights": n_weights,
        "rounds": irp.rounds,
        "epochs_per_round": train_cfg.epochs,
        "total_epochs": plain_cfg.epochs,
        "threads": torch.get_num_threads(),
        "checkpoints": checkpoints,
        "repeats": repeats,
        **{k: round(v, 3) for k, v in best.items()},
        # wall: what a user waits; cpu: what the work costs, robust to other jobs on the machine
        "overhead_wall": round(best["irp_wall_s"] / best["plain_wall_s"] - 1.0, 4),
        "overhead_cpu": round(best["irp_cpu_s"] / best["plain_cpu_s"] - 1.0, 4),
        # the same ratio per (IRP, plain) pair, median over repeats: less sensitive to one lucky run
        "overhead_wall_paired_median": round(
            statistics.median(r["irp_wall_s"] / r["plain_wall_s"] - 1 for r in runs), 4
        ),
        "overhead_cpu_paired_median": round(statistics.median(r["irp_cpu_s"] / r["plain_cpu_s"] - 1 for r in runs), 4),
        # IRP time outside train() calls: pruning steps, deep copies, rewinds, checkpoints
        "irp_outside_train_s": round(best["irp_wall_s"] - best["irp_train_s"], 3),
        "eval_s": round(eval_wall, 3),
        "irp_config": to_dict(irp),
        "train_config": to_dict(train_cfg),
        "all_repeats": [{k: round(v, 3) for k, v in r.items()} for r in runs],
    }


def store_throughput(
    model: str | nn.Module = "lenet_300_100",
    input_shape: Sequence[int] = (1, 28, 28),
    num_classes: int = 10,
    *,
    model_kwargs: dict[str, Any] | None = None,
    n_runs: int = 4,
    n_features: int | None = None,
    repeats: int = 2,
    batch_size: int = 65536,
    durable: bool = True,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """Write and shuffled-read MB/s of the store for ``n_runs`` runs the size of ``model``.

    The runs are synthetic but shaped like the real schema's columns (see
    :func:`autosparse.store.throughput.synthetic_run`), ``n_features`` defaults to the current feature
    schema's width, and ``durable`` (fsync before the commit flag) matches ``autosparse gen``.
    """
    if isinstance(model, str):
        shape = DatasetInfo("synthetic", tuple(input_shape), num_classes, "")
        model = ModelSpec(model, dict(model_kwargs or {})).build(shape, seed=0)
    per_run = sum(layer.parameter.numel() for layer in prunable_layers(model))
    n_features = n_features or len(FEATURE_NAMES)
    result = measure_write_read(
        path, per_run * n_runs, n_features, n_runs=n_runs, repeats=repeats, batch_size=batch_size, durable=durable
    )
    return {"weights_per_run": per_run, **result}


# ------------------------------------------------------------------------------------ script


def _parse_kwargs(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--model-kwargs must be a JSON object, e.g. '{\"widths\": [32, 16]}'")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_gen.throughput", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p_irp = sub.add_parser("irp", help="IRP wall time vs plain training of the same total epochs")
    p_irp.add_argument("--model", default="lenet_300_100")
    p_irp.add_argument("--model-kwargs", type=_parse_kwargs, default={})
    p_irp.add_argument("--dataset", default="fashion-mnist")
    p_irp.add_argument("--n-train", type=int, default=None)
    p_irp.add_argument("--n-test", type=int, default=None)
    p_irp.add_argument("--rounds", type=int, default=2)
    p_irp.add_argument("--epochs", type=float, default=1.0, help="epochs per IRP round")
    p_irp.add_argument("--threads", type=int, default=1)
    p_irp.add_argument("--repeats", type=int, default=2)
    p_irp.add_argument("--no-checkpoints", action="store_true", help="run IRP without a workdir")
    p_st = sub.add_parser("store", help="write / shuffled-read MB/s for runs the size of a model")
    p_st.add_argument("--model", default="lenet_300_100")
    p_st.add_argument("--model-kwargs", type=_parse_kwargs, default={})
    p_st.add_argument("--input-shape", default="1,28,28")
    p_st.add_argument("--runs", type=int, default=4)
    p_st.add_argument("--repeats", type=int, default=2)
    p_st.add_argument("--not-durable", action="store_true", help="skip the fsync before each commit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.what == "irp":
        res = irp_overhead(
            args.model,
            args.dataset,
            model_kwargs=args.model_kwargs,
            irp=IRPConfig(rounds=args.rounds),
            train_cfg=TrainConfig(epochs=args.epochs, num_threads=args.threads),
            n_train=args.n_train,
            n_test=args.n_test,
            repeats=args.repeats,
            checkpoints=not args.no_checkpoints,
        )
        summary = (
            f"IRP {res['rounds']} rounds x {res['epochs_per_round']} epochs of {res['model']} on {res['dataset']}: "
            f"{res['irp_wall_s']:.2f}s vs plain {res['total_epochs']} epochs {res['plain_wall_s']:.2f}s -> "
            f"overhead {100 * res['overhead_wall']:+.1f}% wall, {100 * res['overhead_cpu']:+.1f}% CPU (best of "
            f"{res['repeats']}); paired median {100 * res['overhead_wall_paired_median']:+.1f}% wall, "
            f"{100 * res['overhead_cpu_paired_median']:+.1f}% CPU"
        )
    else:
        shape = tuple(int(s) for s in args.input_shape.split(","))
        res = store_throughput(
            args.model,
            shape,
            model_kwargs=args.model_kwargs,
            n_runs=args.runs,
            repeats=args.repeats,
            durable=not args.not_durable,
        )
        summary = (
            f"store, {res['n_runs']} runs x {res['weights_per_run']:,} weights x {res['n_features']} features "
            f"({res['raw_mb']} MB raw, ratio {res['compression_ratio']}): write {res['write_mb_s']} MB/s, "
            f"shuffled read {res['read_shuffled_mb_s']} MB/s, sequential read {res['read_sequential_mb_s']} MB/s"
        )
    print(json.dumps(res))
    print(summary)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
