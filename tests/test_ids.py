"""Store run ids and bench cell ids are names of results on disk: a refactor must never move them.

Every value here was computed from the shipped configs before the one-spec redesign (#16). A
changed id would make ``autosparse gen`` regenerate a finished store and ``autosparse bench``
recompute every finished cell, silently; a changed spec dict would change what the store and
the cell files record. If one of these fails, the change moved a hash: undo it, do not re-pin.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from autosparse.bench.cells import plan_jobs
from autosparse.bench.config import BenchConfig
from autosparse.bench.speed import SpeedConfig
from autosparse.core.config_record import to_dict
from autosparse.demo import DataChoice, DemoConfig, bench_config, source_specs
from data_gen.grid import GenConfig, expand_grid

REPO = Path(__file__).resolve().parents[1]


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=False).encode()).hexdigest()[:12]


# (config, runs, first run id, last run id, digest of every run id, digest of every spec dict as stored)
GEN = [
    (
        "fmnist_convs.yaml",
        24,
        "conv2-width0.25__fashion-mnist__s0__52dd47d6d6",
        "resnet20-width0.75__fashion-mnist__s1__49d879d2d8",
        "d35bef34e656",
        "a6a782a9ae6d",
    ),
    (
        "fmnist_mlps.yaml",
        15,
        "mlp-widths500x150__fashion-mnist__s0__0ff2cb9bab",
        "mlp-widths600x300x100__fashion-mnist__s2__2a22680aa3",
        "e486da5dbe1c",
        "f59fbeb03af3",
    ),
    (
        "fmnist_mlps_shapes.yaml",
        8,
        "mlp-widths300__fashion-mnist__s0__af769fe039",
        "mlp-widths150x300__fashion-mnist__s0__7ce1de504c",
        "2ea46bf87510",
        "60696863cf12",
    ),
    (
        "mnist1d.yaml",
        15,
        "mlp-widths100x100__mnist1d__s0__570e1e9db5",
        "cnn1d__mnist1d__s2__2d38786459",
        "2fbe66f5d8e5",
        "18e0869cf1f5",
    ),
]

# (config, cells, first job id, last cell id, digest of cell ids, of job ids, of every cell spec as recorded)
BENCH = [
    (
        "fmnist_conv.yaml",
        240,
        "conv2-w0.25__fashion-mnist__imp__s0__fe449fc183",
        "resnet20-w0.5__fashion-mnist__autos__d0.005__s1__0948d9abaf",
        "4e98ca2f0417",
        "5b009b49ca90",
        "19ac05aad94d",
    ),
    (
        "fmnist_lenet.yaml",
        315,
        "lenet_300_100__fashion-mnist__imp__s0__07d0ff55c5",
        "lenet_300_100__fashion-mnist__autos__d0.001__s2__e45676f99d",
        "0b45f22eb5d4",
        "c5241018b90d",
        "b325ed904a4a",
    ),
    (
        "fmnist_lenet_baselines.yaml",
        64,
        "lenet_300_100__fashion-mnist__imp__s0__726a17c863",
        "lenet_300_100__fashion-mnist__dpai_3000__d0.002__s0__66dcbb6a63",
        "7705809a4b5e",
        "8efc48f3865d",
        "12d221c8798e",
    ),
    (
        "fmnist_lenet_extreme.yaml",
        90,
        "lenet_300_100__fashion-mnist__imp__s0__9e6b518ae4",
        "lenet_300_100__fashion-mnist__random__d0.002__s2__1537246c45",
        "7c72eef564d4",
        "b5966b14c7c6",
        "82d36d1f052a",
    ),
    (
        "fmnist_unit_scale.yaml",
        60,
        "mlp-400x100__fashion-mnist__imp__s0__407b5a94fe",
        "mlp-400x100__fashion-mnist__gnn-scale-0.35__d0.002__s1__33bf61f462",
        "0fa4a7d7f9ca",
        "7392784b80e0",
        "9ae227a4d878",
    ),
    (
        "mnist1d.yaml",
        300,
        "mlp-100-100__mnist1d__imp__s0__f3355af886",
        "cnn1d__mnist1d__autos__d0.01__s2__d7edae603e",
        "351cab46237a",
        "d16d74226482",
        "7b1c72027525",
    ),
]

# speed.json records the config as its dict: its shape is part of the file format (2026-12-02: `rounds` added;
# a record without it reads as one round)
SPEED = [("speed.yaml", "b97288ff1aef"), ("speed_autos.yaml", "61c9a7d40b5a")]


@pytest.mark.parametrize(("name", "n", "first", "last", "ids", "specs"), GEN, ids=[g[0] for g in GEN])
def test_gen_run_ids_are_pinned(name: str, n: int, first: str, last: str, ids: str, specs: str) -> None:
    runs = expand_grid(GenConfig.from_yaml(REPO / "configs" / "gen" / name))
    assert (len(runs), runs[0].run_id, runs[-1].run_id) == (n, first, last)
    assert digest([r.run_id for r in runs]) == ids
    assert digest([to_dict(r) for r in runs]) == specs, "the spec recorded in the store's run attrs changed"


@pytest.mark.parametrize(
    ("name", "n", "first_job", "last_cell", "cells", "jobs", "specs"), BENCH, ids=[b[0] for b in BENCH]
)
def test_bench_cell_ids_are_pinned(
    name: str, n: int, first_job: str, last_cell: str, cells: str, jobs: str, specs: str
) -> None:
    planned = plan_jobs(BenchConfig.from_yaml(REPO / "configs" / "bench" / name), "/nowhere")
    cell_ids = [c for j in planned for c in j.cell_ids()]
    assert (len(cell_ids), planned[0].key, cell_ids[-1]) == (n, first_job, last_cell)
    assert digest(cell_ids) == cells
    assert digest([j.key for j in planned]) == jobs
    assert digest([to_dict(j.spec) for j in planned]) == specs, "the spec recorded in each cell file changed"


@pytest.mark.parametrize(("name", "config"), SPEED, ids=[s[0] for s in SPEED])
def test_speed_config_record_is_pinned(name: str, config: str) -> None:
    assert digest(to_dict(SpeedConfig.from_yaml(REPO / "configs" / "bench" / name))) == config


# the demo's default: (dataset, its source run ids, digest of their spec dicts, digest of its bench cell ids,
# first and last cell id, digest of its bench config as written to bench.yaml); scorer folder /demo_out/scorer.
# Moved once on 2026-12-05: the demo's epochs became floats (4 and 4.0 had named different runs and cells, so
# a folder's recorded grid, read back as 4.0, missed the demo's own cells); a demo_out from before recomputes once.
DEMO = [
    (
        "fashion-mnist",
        [
            "mlp-widths500x150__fashion-mnist__s0__84d9d373a2",
            "mlp-widths200x200x200__fashion-mnist__s0__3fd2ad0284",
            "mlp-widths1000__fashion-mnist__s0__721fd747a6",
            "mlp-widths600x300x100__fashion-mnist__s0__45969b56ce",
        ],
        "d08d2a027432",
        "872ebdd8ddcc",
        "lenet_300_100__fashion-mnist__imp__d0.02__s0__1efb8902c2",
        "lenet_300_100__fashion-mnist__synflow__d0.005__s0__a196d75151",
        "11fb2277302b",
    ),
    (
        "mnist1d",
        [
            "mlp-widths100x100__mnist1d__s0__f3b154613e",
            "mlp-widths256x128__mnist1d__s0__bdec3f9368",
            "cnn1d-channels16__mnist1d__s0__8a317371b7",
            "cnn1d-channels24__mnist1d__s0__6a75355b9f",
        ],
        "c2855d316eb3",
        "e1af1981053f",
        "cnn1d-channels32__mnist1d__imp__d0.2__s0__d11c04f0b2",
        "cnn1d-channels32__mnist1d__synflow__d0.05__s2__435b99c520",
        "8b177fd9fc73",
    ),
]


@pytest.mark.parametrize(
    ("dataset", "runs", "specs", "cells", "first", "last", "bench"), DEMO, ids=[d[0] for d in DEMO]
)
def test_demo_ids_are_pinned(
    dataset: str, runs: list[str], specs: str, cells: str, first: str, last: str, bench: str
) -> None:
    """A rerun of the demo after the redesign reuses the store, scorer and cells an earlier run made."""
    cfg = DemoConfig()
    setting = cfg.setting(dataset)
    sources = source_specs(setting, dataset, None)
    assert [s.run_id for s in sources] == runs
    assert digest([to_dict(s) for s in sources]) == specs
    grid = bench_config(cfg, setting, DataChoice(dataset, None, "pinned"), Path("/demo_out/scorer"))
    cell_ids = [c for j in plan_jobs(grid, "/nowhere") for c in j.cell_ids()]
    assert (digest(cell_ids), cell_ids[0], cell_ids[-1]) == (cells, first, last)
    assert digest(to_dict(grid)) == bench
