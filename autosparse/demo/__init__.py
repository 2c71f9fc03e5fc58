"""The main job on an embedded default, end to end in minutes on two cores (``make demo``).

:mod:`~autosparse.demo.data` finds real Fashion-MNIST or falls back to MNIST-1D,
:mod:`~autosparse.demo.config` holds the options and each dataset's calibrated setting,
:mod:`~autosparse.demo.run` runs the three resumable steps (IRP source runs, the demo's scorer,
the bench on a held-out model) and :mod:`~autosparse.demo.summary` states what the table is.
"""

from __future__ import annotations

from autosparse.demo.config import FASHION_MNIST_SETTING, MNIST1D_SETTING, DemoConfig, Setting, setting_for
from autosparse.demo.data import DataChoice, choose_dataset
from autosparse.demo.run import DemoResult, bench_config, run_demo, source_specs

__all__ = [
    "FASHION_MNIST_SETTING",
    "MNIST1D_SETTING",
    "DataChoice",
    "DemoConfig",
    "DemoResult",
    "Setting",
    "bench_config",
    "choose_dataset",
    "run_demo",
    "setting_for",
    "source_specs",
]
