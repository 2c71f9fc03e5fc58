"""The one spec of "this model on this data", and the seams every job builds through."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from autosparse.bench.config import BenchConfig, CellData
from autosparse.cli.arguments import add_task_arguments, resolve_task
from autosparse.core.config import add_config_argument
from autosparse.core.errors import ConfigError
from autosparse.core.versions import package_versions
from autosparse.data import dataset_info, load_dataset
from autosparse.models import build_model
from autosparse.pruners.imp import ImpConfig
from autosparse.sources import RunSpec
from autosparse.task import DataSpec, ModelSpec, Task
from autosparse.training.irp import IRPConfig
from autosparse.training.trainer import TrainConfig


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_model_spec_builds_what_the_registry_builds() -> None:
    spec = ModelSpec("mlp", {"widths": [32, 16]})
    data = load_dataset("fake:fashion-mnist", n_train=40, n_test=20)
    model = spec.build(data, seed=3)
    assert _same_weights(model, build_model("mlp", (1, 28, 28), 10, seed=3, widths=[32, 16]))
    # the shape alone is enough: a DatasetInfo builds the same model without loading anything
    assert _same_weights(model, spec.build(dataset_info("fashion-mnist"), seed=3))
    assert not _same_weights(model, spec.build(data, seed=4))


def test_options_the_data_fixes_are_one_error_naming_the_fix() -> None:
    # `--model-kwargs '{"num_classes": 5}'` ended in a TypeError traceback from build_model's call
    with pytest.raises(ConfigError, match=r"num_classes is not a model option of tv:resnet18: .* drop it"):
        ModelSpec("tv:resnet18", {"num_classes": 5})
    with pytest.raises(ConfigError, match="input_shape, seed are not model options of mlp"):
        ModelSpec("mlp", {"seed": 1, "input_shape": (1, 4)})


def test_data_spec_loads_the_seeded_subset() -> None:
    spec = DataSpec("fake:cifar10", n_train=60, n_test=30, data_seed=5)
    ds = spec.load()
    ref = load_dataset("fake:cifar10", n_train=60, n_test=30, seed=5)
    assert torch.equal(ds.x_train, ref.x_train) and torch.equal(ds.y_test, ref.y_test)
    # frozen and hashable, so a worker can cache a loaded dataset by its spec
    assert {spec: 1}[DataSpec("fake:cifar10", 60, 30, data_seed=5)] == 1
    with pytest.raises(AttributeError):
        spec.n_train = 10  # type: ignore[misc]


def test_task_pairs_them() -> None:
    task = Task(ModelSpec("mlp", {"widths": [8]}), DataSpec("fake:mnist1d", n_train=40, n_test=20))
    ds = task.load_data()
    assert ds.input_shape == (1, 40)
    assert _same_weights(task.build_model(ds, seed=1), task.model.build(ds, seed=1))
    assert Task() == Task(ModelSpec("lenet_300_100"), DataSpec("fashion-mnist")), "the CLI's defaults"


def test_each_job_keeps_its_subset_seed_rule() -> None:
    """A source run's and IMP's subset follow their seed; a bench's follows data_seed, whatever the cell seed."""
    run = RunSpec(ModelSpec("mlp"), "fake:digits", 7, IRPConfig(), TrainConfig(), 100, 50, "/data")
    assert run.task.data == DataSpec("fake:digits", 100, 50, "/data", data_seed=7)
    assert run.task.model is run.model
    assert ImpConfig(dataset="mnist1d", n_train=300).train_data(4) == DataSpec("mnist1d", 300, None, None, 4)
    bench = BenchConfig(n_train=100, data_seed=2, samples_per_class=3)
    assert bench.cell_data("fake:digits") == CellData("fake:digits", 100, None, None, 2, False, 3)


def test_cli_task_from_yaml_and_flags(tmp_path: Path) -> None:
    @dataclass
    class Job:
        epochs: float = 1.0

    parser = argparse.ArgumentParser()
    add_config_argument(parser)
    add_task_arguments(parser, Job)
    yaml = tmp_path / "t.yaml"
    yaml.write_text("model: mlp\nmodel_kwargs: {widths: [8]}\ndataset: fake:digits\nn_train: 100\nepochs: 2\n")
    task, (job,) = resolve_task(parser.parse_args(["--config", str(yaml), "--n-train", "50", "--data-seed", "3"]), Job)
    assert task == Task(ModelSpec("mlp", {"widths": [8]}), DataSpec("fake:digits", n_train=50, data_seed=3))
    assert job.epochs == 2.0
    # `name` labels runs of a grid; it is no flag and no key of a single run
    with pytest.raises(SystemExit):
        parser.parse_args(["--name", "x"])
    yaml.write_text("name: x\n")
    with pytest.raises(ConfigError, match="unknown key name"):
        resolve_task(parser.parse_args(["--config", str(yaml)]), Job)


def test_package_versions_records_what_it_looked_for() -> None:
    got = package_versions(("torch", "surely-not-installed-pkg"))
    assert list(got) == ["python", "torch", "surely-not-installed-pkg"]
    assert got["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert got["surely-not-installed-pkg"] == "unknown"
    assert "surely-not-installed-pkg" not in package_versions(("surely-not-installed-pkg",), missing=None)
