"""Which model, with which options: the one spec of a model that every job builds from.

A model spec is also a run's readable label (``mlp-widths500x150``), which is how stores and
bench results name what they hold and how ``--holdout`` filters select runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelSpec:
    model: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""  # short label for run ids; defaults to the model name plus its options

    def label(self) -> str:
        if self.name:
            return self.name
        if not self.model_kwargs:
            return self.model
        opts = "_".join(
            f"{k}{'x'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
            for k, v in sorted(self.model_kwargs.items())
        )
        return f"{self.model}-{opts}"
