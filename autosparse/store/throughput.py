"""Throughput of the feature store (``python -m data_gen.throughput store``) and synthetic runs to measure it on.

Chunk size and compression are a trade-off between write speed (IRP workers must not wait on
zstd), read speed (the scorer's data loader must keep up with training) and disk size. These
helpers measure all three on synthetic runs whose columns behave like the real schema's
(continuous per-weight statistics, within-layer ranks, layer-constant and neuron-constant
columns), because random normal data would make every compressor look equally useless.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autosparse.store.layout import StorageOptions
from autosparse.store.reader import StoreReader
from autosparse.store.writer import FeatureStore


def synthetic_run(
    n_weights: int, n_features: int, *, n_layers: int = 4, rounds: int = 10, seed: int = 0
) -> dict[str, Any]:
    """``write_run`` keyword arguments for a fake run shaped like a real one (not learnable data)."""
    if n_layers < 1 or n_weights < n_layers:
        raise ValueError("need n_layers >= 1 and n_weights >= n_layers")
    rng = np.random.default_rng(seed)
    bounds = np.linspace(0, n_weights, n_layers + 1).astype(np.int64)
    sizes = np.diff(bounds)
    table = []
    for i, size in enumerate(sizes):
        fan_in = max(1, int(np.sqrt(size)))
        table.append({"name": f"layer{i}.weight", "shape": [int(size)], "kind": "linear", "fan_in": fan_in})
    feats = np.empty((n_weights, n_features), dtype=np.float32)
    kinds = ("continuous", "rank", "layer", "neuron", "heavy")
    for j in range(n_features):
        kind = kinds[j % len(kinds)]
        col = feats[:, j]
        for (a, b), entry in zip(itertools.pairwise(bounds), table, strict=True):
            m = int(b - a)
            if kind == "continuous":  # theta, gradient, z-scores
                col[a:b] = rng.standard_normal(m, dtype=np.float32) * rng.uniform(0.01, 1.0)
            elif kind == "heavy":  # SNIP / SynFlow magnitudes: log-normal, many tiny values
                col[a:b] = rng.lognormal(-6.0, 2.0, m).astype(np.float32)
            elif kind == "rank":  # within-layer percentile ranks
                col[a:b] = (rng.permutation(m).astype(np.float32) + 0.5) / m
            elif kind == "layer":  # log fan-in, relative depth, ... repeated per weight
                col[a:b] = np.float32(rng.standard_normal())
            else:  # neuron-level: one value per output neuron, repeated over its fan-in
                fan_in = entry["fan_in"]
                per_neuron = rng.standard_normal(-(-m // fan_in), dtype=np.float32)
                col[a:b] = np.repeat(per_neuron, fan_in)[:m]
    label = rng.integers(0, rounds + 1, size=n_weights, dtype=np.int8)
    attrs = {
        "config": {"model": "synthetic", "dataset": "synthetic", "seed": seed},
        "rounds": rounds,
        "accuracies": [0.0] * rounds,
        "densities": [0.8 ** (r + 1) for r in range(rounds)],
    }
    return {"features": feats, "label": label, "layers_table": table, "attrs": attrs}


def write_synthetic_run(
    path: str | os.PathLike[str],
    run_id: str,
    *,
    n_weights: int,
    n_features: int,
    seed: int = 0,
    schema_version: int = 1,
    storage: StorageOptions | None = None,
    durable: bool = True,
    model: str = "synthetic",
) -> str:
    """Create/open a store and write one synthetic run; a picklable entry point for worker processes."""
    names = [f"f{i}" for i in range(n_features)]
    store = FeatureStore(path, schema_version=schema_version, feature_names=names, storage=storage, durable=durable)
    kwargs = synthetic_run(n_weights, n_features, seed=seed)
    kwargs["attrs"]["config"]["model"] = model
    store.write_run(run_id, **kwargs)
    return run_id


def measure_write_read(
    path: str | os.PathLike[str] | None,
    n_weights: int,
    n_features: int,
    *,
    storage: StorageOptions | None = None,
    batch_size: int = 65536,
    n_runs: int = 2,
    durable: bool = False,
    repeats: int = 1,
    seed: int = 0,
    keep: bool = False,
) -> dict[str, Any]:
    """MB/s for writing runs and for reading them back as shuffled (and sequential) torch batches.

    ``path`` must be new or an empty directory (None = a temp dir); it is deleted afterwards
    unless ``keep``. MB are uncompressed bytes of features+label+layer (10^6 bytes). With
    ``repeats`` > 1 the best time is reported, which is what the hardware can do, not the noise
    of a shared machine.
    """
    storage = storage or StorageOptions()
    own_tmp = path is None
    root = Path(tempfile.mkdtemp(prefix="autosparse-bench-")) if own_tmp else Path(path)  # type: ignore[arg-type]
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"bench path {root} is not empty; pass a new or empty directory (it gets deleted)")
    store_path = root / "bench.zarr"
    per_run = -(-n_weights // n_runs)
    runs = [synthetic_run(per_run, n_features, seed=seed + i) for i in range(n_runs)]
    raw = sum(r["features"].nbytes + r["label"].nbytes + 2 * len(r["label"]) for r in runs)
    names = [f"f{i}" for i in range(n_features)]
    # Wall time is what a user waits; CPU time (all threads of this process) is what the codecs
    # cost, and stays meaningful on a machine shared with other jobs.
    write_s, shuffled_s, seq_s, write_cpu, shuffled_cpu = [], [], [], [], []
    try:
        for rep in range(repeats):
            shutil.rmtree(store_path, ignore_errors=True)
            store = FeatureStore(store_path, schema_version=1, feature_names=names, storage=storage, durable=durable)
            t, c = time.perf_counter(), time.process_time()
            for i, r in enumerate(runs):
                store.write_run(f"run{i}", **r)
            write_s.append(time.perf_counter() - t)
            write_cpu.append(time.process_time() - c)
            reader = StoreReader(store_path)
            for shuffle, times in ((True, shuffled_s), (False, seq_s)):
                t, c = time.perf_counter(), time.process_time()
                rows = 0
                for batch in reader.iter_batches(batch_size, shuffle=shuffle, seed=rep):
                    rows += len(batch.label)
                times.append(time.perf_counter() - t)
                if shuffle:
                    shuffled_cpu.append(time.process_time() - c)
                assert rows == reader.n_weights
        disk = sum(f.stat().st_size for f in (store_path / "runs").rglob("*") if f.is_file())
        rows_per_chunk = storage.rows_per_chunk(4 * n_features)
    finally:
        if not keep:
            shutil.rmtree(store_path, ignore_errors=True)
            if own_tmp:
                shutil.rmtree(root, ignore_errors=True)
    mb = raw / 1e6
    return {
        "n_weights": per_run * n_runs,
        "n_features": n_features,
        "n_runs": n_runs,
        "raw_mb": round(mb, 2),
        "disk_mb": round(disk / 1e6, 2),
        "compression_ratio": round(raw / disk, 3) if disk else None,
        "write_mb_s": round(mb / min(write_s), 1),
        "read_shuffled_mb_s": round(mb / min(shuffled_s), 1),
        "read_sequential_mb_s": round(mb / min(seq_s), 1),
        "write_cpu_mb_s": round(mb / max(min(write_cpu), 1e-9), 1),
        "read_shuffled_cpu_mb_s": round(mb / max(min(shuffled_cpu), 1e-9), 1),
        "rows_per_chunk": rows_per_chunk,
        "batch_size": batch_size,
        "durable": durable,
        **{f"storage.{k}": v for k, v in storage.as_dict().items()},
        "path": str(store_path) if keep else None,
    }


#: Settings worth comparing: the zstd levels, lz4 as the speed bound, chunk sizes, no transpose.
DEFAULT_SWEEP: tuple[StorageOptions, ...] = (
    StorageOptions(clevel=1),
    StorageOptions(clevel=3),
    StorageOptions(clevel=5),
    StorageOptions(cname="lz4", clevel=5),
    StorageOptions(clevel=1, transpose=False),
    StorageOptions(clevel=1, chunk_bytes=1 * 2**20),
    StorageOptions(clevel=1, chunk_bytes=16 * 2**20),
)


def sweep(
    n_weights: int,
    n_features: int,
    settings: Sequence[StorageOptions] = DEFAULT_SWEEP,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """``measure_write_read`` for several storage settings (each in its own temp dir)."""
    return [measure_write_read(None, n_weights, n_features, storage=s, **kwargs) for s in settings]


def format_results(results: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table of ``measure_write_read`` results, for the CLI and reports."""
    header = (
        f"{'codec':<16} {'chunk':>7} {'transp':>6} {'write MB/s':>10} {'(cpu)':>6} {'read shuf':>9} {'(cpu)':>6} "
        f"{'read seq':>8} {'ratio':>6}"
    )
    lines = [header]
    for r in results:
        codec = f"{r['storage.cname']}-{r['storage.clevel']}-{r['storage.shuffle'][:4]}"
        lines.append(
            f"{codec:<16} {r['storage.chunk_bytes'] / 2**20:>5.1f}Mi {('yes' if r['storage.transpose'] else 'no'):>6} "
            f"{r['write_mb_s']:>10.0f} {r['write_cpu_mb_s']:>6.0f} {r['read_shuffled_mb_s']:>9.0f} "
            f"{r['read_shuffled_cpu_mb_s']:>6.0f} {r['read_sequential_mb_s']:>8.0f} "
            f"{r['compression_ratio'] or 0:>6.2f}"
        )
    return "\n".join(lines)


__all__ = ["DEFAULT_SWEEP", "format_results", "measure_write_read", "sweep", "synthetic_run", "write_synthetic_run"]
