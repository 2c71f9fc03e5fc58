"""The pruner interface and its registry.

Every method answers *which* weights to keep as a mask for a density (:meth:`Pruner.masks`).
Most do it in two steps that are worth keeping apart: a score per weight (higher = keep), then
an allocation that decides *how many* weights each layer keeps (:mod:`autosparse.core.allocation`)
— jaxpruner's split. Those methods are :class:`ScoringPruner`\\ s, and only they have ``scores``:
the feature extractor, ``robust``'s base criterion and the sanity transforms need a ranking
independent of the density. Methods that choose a mask directly for one density (IMP's
training rounds, NPB's integer programs, DPaI's optimisation) are plain :class:`Pruner`\\ s;
asking one of them for scores is an error raised here, in :func:`as_scoring`, and nowhere else.

Each method is a small class with a typed hyperparameter dataclass whose defaults follow the
method's paper or reference code. Making a score iterative is
:mod:`autosparse.pruners.iterate`'s job; running a method on a caller's model is
:mod:`autosparse.pruners.entry`'s. Pruners never modify the caller's model.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from torch import nn

from autosparse.core.allocation import SCOPES, allocate
from autosparse.core.config import typed_scalars
from autosparse.core.errors import ConfigError, UnknownNameError
from autosparse.core.init_transform import GRANULARITIES
from autosparse.core.masks import Masks
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.scores import Scores
from autosparse.topology.paths import PathStats


@dataclass
class PrunerConfig:
    """Hyperparameters every pruner shares. Subclasses add their own fields."""

    scope: str = "global"  # how many per layer: global | uniform | erk
    rescale: bool = False  # rescale kept weights so each unit keeps its input variance at θ0 (Hayou et al. 2021)
    rescale_granularity: str = "unit"  # unit: one factor per output unit | paper: per (output unit, kernel position)
    rescale_normalized: bool = False  # also rescale layers feeding a BatchNorm/LayerNorm (which undoes it; slows them)

    def identity(self) -> dict[str, Any]:
        """What decides this method's masks besides the hyperparameters as written — e.g. the
        weights a learned scorer's name points to. A bench cell records it and is recomputed when
        it changes, so a retrained scorer never reuses cells made with its old weights."""
        return {}

    def preflight(self) -> None:
        """Fail now, with the error naming the fix, on anything a run of this method would fail on
        that the hyperparameters do not show (e.g. a scorer directory without its weights): a bench
        calls it before its first cell trains, so the grid does not find out hours in."""


def _field_names(config_type: type) -> set[str]:
    return {f.name for f in dataclasses.fields(config_type)}


class Pruner(ABC):
    """A method that chooses a mask. Subclasses set ``name`` (by :func:`register`), ``Config`` and
    implement :meth:`masks`; a method with a density-free ranking subclasses :class:`ScoringPruner`."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[PrunerConfig]] = PrunerConfig
    data_dependent: ClassVar[bool] = True
    #: runs the model on float inputs of its own (all ones, noise, a traced path graph), which a
    #: model reading token ids through an ``nn.Embedding`` cannot take (checked by ``prune``)
    own_inputs: ClassVar[bool] = False
    description: ClassVar[str] = ""

    def __init__(self, config: PrunerConfig | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else self.Config()
        if not isinstance(cfg, self.Config) or _field_names(type(cfg)) != _field_names(self.Config):
            # another method's config failed deep inside (no 'train_mode'), or was recorded as this one's settings
            raise ConfigError(
                f"{self.name} takes a {self.Config.__name__}, got a {type(cfg).__name__}: pass its hyperparameters "
                f"as a dict or keywords, or start from make_pruner({self.name!r}).config"
            )
        if overrides:
            known = {f.name for f in dataclasses.fields(cfg)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise ConfigError(
                    f"{self.name} has no hyperparameter {', '.join(unknown)}; its hyperparameters are: "
                    f"{', '.join(sorted(known))}"
                )
            cfg = dataclasses.replace(cfg, **typed_scalars(type(cfg), overrides, where=self.name))
        if cfg.scope not in SCOPES:
            raise UnknownNameError("allocation scope", cfg.scope, SCOPES)
        if cfg.rescale_granularity not in GRANULARITIES:
            raise UnknownNameError("rescale granularity", cfg.rescale_granularity, GRANULARITIES)
        self.config = cfg

    @abstractmethod
    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        """A mask keeping exactly ``round(density * total)`` prunable weights of ``model``."""

    def measured_paths(self, masks: Masks) -> tuple[tuple[int, ...], PathStats] | None:
        """(input shape, path statistics) of ``masks`` when this pruner measured them while choosing
        them, so ``prune``'s diagnostics need not run the same float64 pass again; None otherwise."""
        return None

    def rescales(self, masks: Masks) -> bool:
        """Whether ``prune`` applies the θ0 rescaling to ``masks``: the config's ``rescale``, unless
        the method returned another method's mask as that method makes it (``autos``' hand-off
        to SynFlow's mask)."""
        return bool(getattr(self.config, "rescale", False))


class ScoringPruner(Pruner):
    """A method that ranks weights: :meth:`scores`, then the configured allocation.

    Iterative methods (SynFlow, iterative SNIP, NTK-SAP) override :meth:`masks` to re-score in
    rounds; their :meth:`scores` is the one-shot ranking a feature extractor records.
    """

    @abstractmethod
    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        """Saliency of every prunable weight (same shape as the weight, higher = keep)."""

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
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
    """Names of every registered pruning method, plugins included (``autosparse methods`` prints them
    with one line each)."""
    _load_plugins()
    return sorted(_REGISTRY)


def scoring_methods() -> list[str]:
    """The registered methods that have :meth:`ScoringPruner.scores`."""
    return [n for n in available() if issubclass(_REGISTRY[n], ScoringPruner)]


def get_pruner(name: str) -> type[Pruner]:
    if not isinstance(name, str):  # None or a class crashed in the did-you-mean lookup (helper)
        raise ConfigError(
            f"a pruning method is named by a string such as 'snip', got {name!r}; list them with `autosparse methods`"
        )
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


def as_scoring(pruner: Pruner) -> ScoringPruner:
    """``pruner`` as a scoring method, or the one error for a method that only chooses masks."""
    if not isinstance(pruner, ScoringPruner):
        raise ConfigError(
            f"{pruner.name} chooses a mask for one density directly and has no per-weight scores: "
            f"call prune(model, {pruner.name!r}, density=...) for its mask, or score with one of "
            f"{', '.join(scoring_methods())}"
        )
    return pruner


def make_scoring_pruner(
    name: str, config: PrunerConfig | Mapping[str, Any] | None = None, **overrides: Any
) -> ScoringPruner:
    """:func:`make_pruner` for a caller that needs :meth:`ScoringPruner.scores`."""
    return as_scoring(make_pruner(name, config, **overrides))
