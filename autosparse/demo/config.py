"""The demo's options and the two calibrated settings they default to.

Why one setting per dataset: a budget that shows pruning at work on Fashion-MNIST (LeNet-300-100
at 98-99.5% sparsity, 4 epochs) leaves a few hundred weights of a tiny net on MNIST-1D and
trains everything to chance. Each dataset gets sources, a held-out model, densities and a recipe
measured to give a dense net and IMP far above chance within minutes on two cores
(docs/RESULTS.md §6); a field of :class:`DemoConfig` left at ``None`` takes its dataset's value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from autosparse.demo.data import MNIST1D
from autosparse.scorer.autos import DEFAULT_SCORER
from autosparse.task import ModelSpec


@dataclass(frozen=True)
class Setting:
    """One dataset's sizes: every step's budget, as measured in docs/RESULTS.md §6."""

    n_train: int | None  # training examples per run (None: all)
    n_test: int | None  # test examples per run (None: all)
    densities: tuple[float, ...]  # densities the held-out model is pruned to
    source_models: tuple[ModelSpec, ...]  # models whose IRP runs the demo's scorer learns from
    heldout_model: str  # the architecture the scorer never sees
    heldout_kwargs: dict[str, Any]  # its options
    irp_rounds: int  # IRP rounds per source run
    irp_prune_fraction: float  # of the surviving weights, per IRP round
    gen_epochs: float  # training epochs per IRP round of the source runs
    bench_epochs: float  # training epochs of every pruned held-out model (and of IMP's rounds)
    seeds: tuple[int, ...]  # bench seeds (initial weights, pruning batch, training order)
    scorer_steps: int  # ranker training steps of the demo's scorer
    num_threads: int  # torch threads per training (0: OMP_NUM_THREADS where set, else every core)

    def heldout(self) -> ModelSpec:
        return ModelSpec(self.heldout_model, dict(self.heldout_kwargs))


FASHION_MNIST_SETTING = Setting(
    n_train=12000,
    n_test=5000,
    densities=(0.02, 0.01, 0.005),
    source_models=(
        ModelSpec("mlp", {"widths": [500, 150]}),
        ModelSpec("mlp", {"widths": [200, 200, 200]}),
        ModelSpec("mlp", {"widths": [1000]}),
        ModelSpec("mlp", {"widths": [600, 300, 100]}),
    ),
    heldout_model="lenet_300_100",
    heldout_kwargs={},
    irp_rounds=8,  # 50% pruned each: last density 0.4%
    irp_prune_fraction=0.5,
    gen_epochs=2,
    bench_epochs=4,
    seeds=(0,),
    scorer_steps=1500,
    num_threads=1,  # see the note above MNIST1D_SETTING
)

# MNIST-1D: 4000 train / 1000 test signals of 40 samples. MLPs top out at 60-70% there, so the
# held-out model is the 1-D CNN, at a width none of the sources has; its three conv layers and
# classifier hold ~8k weights, so the densities stop at 5% (~400 weights), where IMP is still far
# above chance (measured, 3 seeds: dense 85%, IMP 82 / 77 / 66% at 20 / 10 / 5%; docs/RESULTS.md §6).
#
# One torch thread per training in both settings: on a machine whose cores are busy, a second
# intra-op thread spin-waits for the first (the tiny Fashion-MNIST demo of tests/test_demo.py took
# 483 s with two threads on two shared cores, 21 s with one), while on an idle two-core
# machine a second thread can at best halve a training.
MNIST1D_SETTING = Setting(
    n_train=None,
    n_test=None,
    densities=(0.2, 0.1, 0.05),
    source_models=(
        ModelSpec("mlp", {"widths": [100, 100]}),
        ModelSpec("mlp", {"widths": [256, 128]}),
        ModelSpec("cnn1d", {"channels": 16}),
        ModelSpec("cnn1d", {"channels": 24}),
    ),
    heldout_model="cnn1d",
    heldout_kwargs={"channels": 32},
    irp_rounds=5,  # 50% pruned each: last density 3.1%, past the sparsest bench column
    irp_prune_fraction=0.5,
    gen_epochs=15,
    bench_epochs=10,
    seeds=(0, 1, 2),  # one seed's SNIP swings by ±8 points here; three make the comparison mean something
    scorer_steps=1500,
    num_threads=1,
)


def setting_for(dataset: str) -> Setting:
    """MNIST-1D's own setting; every image dataset gets the Fashion-MNIST one."""
    return MNIST1D_SETTING if dataset == MNIST1D else FASHION_MNIST_SETTING


@dataclass
class DemoConfig:
    """The demo's options (``autosparse demo --help`` lists them); a size left empty takes the dataset's setting."""

    out: str = "demo_out"  # folder for the stores, scorers and benches, one subfolder per dataset (reruns reuse them)
    dataset: str = "auto"  # auto = Fashion-MNIST if this machine has or can get it, else mnist1d (generated locally)
    data_root: str | None = None  # folder holding Fashion-MNIST's four IDX files, looked in first
    fetch: bool = True  # when Fashion-MNIST is missing: apt-get install it (as root) or download it (network)
    baselines: tuple[str, ...] = ("random", "snip", "synflow")  # classic methods compared with autos and IMP
    shipped_scorer: str = DEFAULT_SCORER
    """also prune with this shipped scorer ("" = skip), next to the demo's own small scorer: what a user
    gets without generating anything; the default is autos' own default scorer"""
    n_train: int | None = None  # training examples per run (unset: the dataset's setting; MNIST-1D uses all 4000)
    n_test: int | None = None  # test examples per run (unset: the dataset's setting)
    densities: tuple[float, ...] | None = None  # held-out model's densities (unset: the dataset's setting)
    source_models: list[ModelSpec] | None = None
    """models whose IRP runs the demo's scorer learns from: names or JSON, as the models of a gen config
    (unset: the dataset's setting)"""
    heldout_model: str | None = None
    """the architecture the scorer never sees (unset: lenet_300_100, or cnn1d on MNIST-1D)"""
    heldout_kwargs: dict[str, Any] | None = None
    """options of the held-out model, JSON (unset: the setting's, or the defaults of another --heldout-model)"""
    irp_rounds: int | None = None  # IRP rounds per source run (unset: the dataset's setting)
    irp_prune_fraction: float | None = None  # of the surviving weights, per IRP round (unset: the dataset's setting)
    gen_epochs: float | None = None  # training epochs per IRP round of the source runs (unset: the dataset's setting)
    bench_epochs: float | None = None  # training epochs of every pruned held-out model (unset: the dataset's setting)
    seeds: tuple[int, ...] | None = None  # bench seeds: initial weights, pruning batch, order (unset: the setting's)
    scorer_steps: int | None = None  # ranker training steps of the demo's scorer (unset: the dataset's setting)
    num_threads: int | None = None  # torch threads per training, 0 = OMP_NUM_THREADS or every core (unset: setting's)

    def setting(self, dataset: str) -> Setting:
        """The dataset's calibrated setting with every size this config gives in its place."""
        base = setting_for(dataset)
        given = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(Setting) if getattr(self, f.name) is not None
        }
        if "heldout_kwargs" not in given and given.get("heldout_model", base.heldout_model) != base.heldout_model:
            given["heldout_kwargs"] = {}  # the setting's options belong to the setting's model
        if "source_models" in given:
            given["source_models"] = tuple(given["source_models"])
        for name in ("densities", "seeds"):
            if name in given:
                given[name] = tuple(given[name])
        return dataclasses.replace(base, **given)
