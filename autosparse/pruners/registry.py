"""The pruner interface and its registry.

A pruner answers one question — which weights matter — as scores (higher = keep) keyed by
parameter name. How many weights each layer keeps is :mod:`autosparse.core.allocation`'s job, and
making a one-shot score iterative is :mod:`autosparse.pruners.iterate`'s, so each method is a
small class: a typed hyperparameter dataclass (whose defaults follow the method's paper or
reference code) and a ``scores`` method. Methods that are not "score then top-k" (NPB's
integer program, DPaI's optimisation, IMP) override ``masks`` instead.

Pruners never modify the caller's model: they work on a deep copy.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from autosparse.core.allocation import SCOPES, Scope, allocate
from autosparse.core.errors import ConfigError, UnknownNameError, check_density
from autosparse.core.layers import prunable_layers, safe_deepcopy
from autosparse.core.masks import Masks
from autosparse.data.pruning_data import PruningData

Scores = dict[str, torch.Tensor]


@dataclass
class PrunerConfig:
    """Hyperparameters every pruner shares. Subclasses add their own fields."""

    scope: str = "global"  # how many per layer: global | uniform | erk


class Pruner:
    """Base class. Subclasses set ``name``, ``Config`` and implement :meth:`scores`."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[PrunerConfig]] = PrunerConfig
    data_dependent: ClassVar[bool] = True
    description: ClassVar[str] = ""

    def __init__(self, config: PrunerConfig | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else self.Config()
        if overrides:
            known = {f.name for f in dataclasses.fields(cfg)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise ConfigError(
                    f"{self.name} has no hyperparameter {', '.join(unknown)}; its hyperparameters are: "
                    f"{', '.join(sorted(known))}"
                )
            cfg = dataclasses.replace(cfg, **overrides)
        if cfg.scope not in SCOPES:
            raise UnknownNameError("allocation scope", cfg.scope, SCOPES)
        self.config = cfg

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        """Saliency of every prunable weight (same shape as the weight, higher = keep)."""
        raise NotImplementedError

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        """Default: one-shot scores, then the configured allocation."""
        return allocate(self.scores(model, data, seed=seed), density, scope=self.config.scope)  # type: ignore[arg-type]


_REGISTRY: dict[str, type[Pruner]] = {}
P = TypeVar("P", bound=type[Pruner])


def register(name: str) -> Callable[[P], P]:
    """Class decorator: make a pruner discoverable by the API, CLI, configs and bench."""

    def deco(cls: P) -> P:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"pruner {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


#: Methods defined outside this package register through this entry-point group: ``autos`` (which
#: sits above the pruners, with the scorer it applies) and any third-party method, e.g.
#: ``[project.entry-points."autosparse.methods"] mine = "my_package.my_pruner"``.
ENTRY_POINTS = "autosparse.methods"
_plugins_loaded = False


def _load_plugins() -> None:
    """Import every method module declared under :data:`ENTRY_POINTS` (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINTS):
        entry.load()


def available() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)


def get_pruner(name: str) -> type[Pruner]:
    if name not in _REGISTRY:
        _load_plugins()
    if name not in _REGISTRY:
        raise UnknownNameError("pruning method", name, _REGISTRY, hint="list them with `autosparse methods`")
    return _REGISTRY[name]


def make_pruner(name: str, config: PrunerConfig | Mapping[str, Any] | None = None, **overrides: Any) -> Pruner:
    cls = get_pruner(name)
    if isinstance(config, Mapping):
        overrides = {**config, **overrides}
        config = None
    return cls(config, **overrides)


@dataclass
class PruneResult:
    masks: Masks
    seconds: float
    method: str
    config: dict[str, Any] = field(default_factory=dict)


def prune(
    model: nn.Module,
    method: str,
    *,
    density: float | None = None,
    sparsity: float | None = None,
    data: Any = None,
    seed: int = 0,
    apply: bool = False,
    config: PrunerConfig | Mapping[str, Any] | None = None,
    **hparams: Any,
) -> Masks:
    """Prune ``model`` at initialisation with a registered ``method``.

    Returns masks keeping exactly ``round(density * total)`` weights. With ``apply=True`` the
    masks are also attached to ``model`` (torch ``weight_orig``/``weight_mask``); otherwise
    the model is left untouched.
    """
    return prune_timed(
        model, method, density=density, sparsity=sparsity, data=data, seed=seed, apply=apply, config=config, **hparams
    ).masks


def prune_timed(
    model: nn.Module,
    method: str,
    *,
    density: float | None = None,
    sparsity: float | None = None,
    data: Any = None,
    seed: int = 0,
    apply: bool = False,
    config: PrunerConfig | Mapping[str, Any] | None = None,
    **hparams: Any,
) -> PruneResult:
    """:func:`prune` that also reports the wall time spent computing the mask."""
    d = check_density(density, sparsity)
    pruner = make_pruner(method, config, **hparams)
    prunable_layers(model)  # fail early and clearly on a model with nothing to prune
    pdata = PruningData.coerce(data)
    if pruner.data_dependent and pdata is None:
        raise ConfigError(
            f"{method} needs data: pass data=(inputs, targets) or a DataLoader "
            "(autosparse.data.pruning_batch(dataset) gives the standard one)"
        )
    work = safe_deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        start = time.perf_counter()
        masks = pruner.masks(work, pdata, d, seed=seed)
        seconds = time.perf_counter() - start
    masks = Masks(masks.to_dict(), meta={**masks.meta, "method": method, "density": d, "seed": seed})
    masks.validate(model)
    if apply:
        masks.apply(model)
    return PruneResult(masks, seconds, method, dataclasses.asdict(pruner.config))


def scope_of(pruner: Pruner) -> Scope:
    return pruner.config.scope  # type: ignore[return-value]


def named_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(layer.name, layer.parameter) for layer in prunable_layers(model)]


def zero_grads(params: Sequence[torch.Tensor]) -> None:
    for p in params:
        p.grad = None
