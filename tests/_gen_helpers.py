"""Shared pieces of the data-generation tests: tiny grids, store snapshots, picklable jobs.

Kept out of the test modules so that process/Ray workers can import the job functions by a
stable module name, and so the "same store" comparison is written once for every executor.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autosparse.store import StoreReader

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).parent / "autosparse"
#: The installed console script when there is one (what a user runs), else the same entry point.
CLI = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "import sys; from autosparse.cli import main; sys.exit(main())"]
)

#: A grid small enough for a 2-core machine under load: two 784-32-16-10 MLPs (25,760 weights),
#: 2,000 Fashion-MNIST training images, one epoch per round, three rounds.
TINY: dict[str, Any] = {
    "models": [{"model": "mlp", "model_kwargs": {"widths": [32, 16]}}],
    "datasets": ["fashion-mnist"],
    "seeds": [0],
    "n_train": 2000,
    "n_test": 500,
    "irp": {"rounds": 3, "prune_fraction": 0.5},
    "train": {"epochs": 1, "batch_size": 128, "num_threads": 1},
    "samples_per_class": 4,
}


def write_config(path: Path, **overrides: Any) -> Path:
    """A YAML generation config: ``TINY`` with top-level keys replaced (nested dicts merged)."""
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The real ``autosparse`` command line in a fresh interpreter (what a user runs)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run(
        [*CLI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def snapshot(store: Path) -> dict[str, dict[str, Any]]:
    """Everything a run's result consists of (arrays + curves), minus timings and timestamps."""
    reader = StoreReader(store)
    out = {}
    for run_id in reader.run_ids:
        data = reader.load_run(run_id)
        out[run_id] = {
            "features": np.asarray(data.features),
            "label": np.asarray(data.label),
            "layer": np.asarray(data.layer),
            "layers": data.layers,
            "accuracies": data.attrs["accuracies"],
            "densities": data.attrs["densities"],
            "layer_densities": data.attrs["layer_densities"],
            "rounds": data.attrs["rounds"],
            "spec": data.attrs["spec"],
        }
    return out


def assert_same_store(a: Path, b: Path) -> None:
    """Two stores hold the same runs with bit-identical labels, features and accuracy curves."""
    sa, sb = snapshot(a), snapshot(b)
    assert sorted(sa) == sorted(sb), f"different runs: {sorted(sa)} vs {sorted(sb)}"
    assert sa, "no complete run to compare"
    for run_id in sa:
        ra, rb = sa[run_id], sb[run_id]
        for key in ("features", "label", "layer"):
            assert ra[key].dtype == rb[key].dtype, (run_id, key)
            np.testing.assert_array_equal(ra[key], rb[key], err_msg=f"{run_id}: {key} differs")
        for key in ("layers", "accuracies", "densities", "layer_densities", "rounds", "spec"):
            assert ra[key] == rb[key], f"{run_id}: {key} differs: {ra[key]} vs {rb[key]}"


# ---------------------------------------------------------------- picklable jobs for the executors


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def die_on_three(x: int) -> int:
    """A worker killed mid-job (OOM killer, kill -9): the process vanishes without an exception."""
    if x == 3:
        os._exit(1)
    return x * x
