"""``autos``' options: one typed dataclass that is the Python keyword set, the CLI's ``--hparams`` and
the bench config's ``hparams`` at once, validated when it is built (one error naming the fix)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from autosparse.core.errors import ConfigError
from autosparse.pruners.registry import PrunerConfig
from autosparse.scorer.checkpoint import (
    load_checkpoint,
    scorer_card_sha256,
    scorer_evidence_sha256,
    scorer_student_sha256,
    scorer_weights_sha256,
)

DEFAULT_SCORER = "autos_mlp"
GUARDS = ("erk", "synflow", "off")
DENSITY_GUARDS = ("synflow", "off")
STUDENT_GUARDS = ("synflow", "off")
COLLAPSE_RULES = ("synflow", "guard", "off")
UNIT_MODES = ("learned", "all", "off")
ALLOCATIONS = ("learned", "synflow", "global", "uniform", "erk")
FLOW_PRIORS = ("learned", "magnitude")


@dataclass
class AutosConfig(PrunerConfig):
    scope: str = "global"  # autos has no scope: its per-layer counts are `allocation` (inherited; only global)
    scorer: str = DEFAULT_SCORER  # a shipped scorer's name or a scorer directory
    allocation: str = "learned"  # learned | synflow (SynFlow's per-layer shares) | global | uniform | erk
    rounds: int = 1  # > 1: re-score the surviving weights on an exponential schedule down to the density
    units: str = "learned"  # learned allocation only: learned (hidden linears' alive units) | all: convs too | off
    unit_scale: float = 0.0  # > 0 overrides the scorer card's unit scale (for validation sweeps)
    repair: int = 3  # connectivity-repair iterations (0 = off), see autosparse.topology.connectivity
    rehome: bool = True  # the repair gives dead weights its in-layer steps cannot place to layers with room
    input_shape: tuple[
        int, ...
    ] = ()  # one example's shape, where no pruning data gives it (the diagnostics read it too)
    rescale: bool = True  # keep extreme masks trainable at depth: rescale kept weights at θ0 (docs/SCORER.md)
    guard: str = "erk"  # out-of-range layers get this allocation: erk | synflow | off (no other guard acts either)
    collapse: str = "synflow"  # no input→output path left: synflow (SynFlow's mask) | guard (guard's allocation) | off
    synflow_mix: float = 0.0  # weight of SynFlow's within-layer percentile in the ranking (0 = learned only)
    erk_floor: float = 0.0  # raise each layer's learned density to this x ERK's, then renormalise (0 = off)
    density_guard: str = "synflow"  # SynFlow's mask where it beat IMP on the nearest sources of its kind | off
    student_guard: str = "synflow"  # SynFlow's mask where it beat the learned one on validation nets of its kind | off
    flow_rounds: int = 0  # > 0: re-choose each layer's kept weights by prior-weighted path flow over this many rounds
    flow_prior: str = "learned"  # the flow's edge values: learned (within-layer percentile) | magnitude (|θ|)

    def __post_init__(self) -> None:
        if isinstance(self.scorer, os.PathLike):
            self.scorer = os.fspath(self.scorer)  # a Path names a folder as its string does
        if not isinstance(self.scorer, str):  # a loaded Scorer failed in Path() with a TypeError (helper)
            raise ConfigError(
                f"autos' scorer is a shipped scorer's name or a scorer folder, got a {type(self.scorer).__name__}: "
                "pass the name or the path you loaded it from (e.g. scorer='autos_mlp')"
            )
        if self.scope != "global":  # inherited from every pruner's config; autos' counts come from `allocation`
            raise ConfigError(
                f"autos has no scope (got {self.scope!r}): its per-layer counts are `allocation` "
                f"({', '.join(ALLOCATIONS)})"
                + (f"; pass allocation={self.scope!r} for that classic allocation" if self.scope in ALLOCATIONS else "")
            )
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(f"unknown autos allocation {self.allocation!r}; use {', '.join(ALLOCATIONS)}")
        if self.units not in UNIT_MODES:
            raise ConfigError(f"unknown autos units {self.units!r}; use {', '.join(UNIT_MODES)}")
        if not 0.0 <= self.unit_scale <= 1.0:
            raise ConfigError(f"autos unit_scale must be in (0, 1] (0 = the scorer card's), got {self.unit_scale}")
        if self.rounds < 1:
            raise ConfigError("autos rounds must be >= 1")
        if self.flow_rounds < 0:
            raise ConfigError("autos flow_rounds must be >= 0 (0 = off; SynFlow iterates 100 rounds)")
        if self.flow_prior not in FLOW_PRIORS:
            raise ConfigError(f"unknown autos flow_prior {self.flow_prior!r}; use {', '.join(FLOW_PRIORS)}")
        if self.repair < 0:
            raise ConfigError("autos repair must be >= 0 iterations")
        if not 0.0 <= self.synflow_mix <= 1.0:
            raise ConfigError(
                f"autos synflow_mix must be in [0, 1] (0 = the learned ranking alone), got {self.synflow_mix}"
            )
        if not 0.0 <= self.erk_floor <= 1.0:
            raise ConfigError(f"autos erk_floor must be in [0, 1] (0 = off), got {self.erk_floor}")
        if self.erk_floor > 0 and self.allocation not in ("learned", "synflow"):
            raise ConfigError(
                f"autos erk_floor acts on the learned or synflow allocation, not allocation={self.allocation!r}; "
                "drop erk_floor or use allocation=learned"
            )
        if self.collapse not in COLLAPSE_RULES:
            raise ConfigError(f"unknown autos collapse rule {self.collapse!r}; use {', '.join(COLLAPSE_RULES)}")
        if self.guard not in GUARDS:
            raise ConfigError(f"unknown autos guard {self.guard!r}; use {', '.join(GUARDS)}")
        if self.density_guard not in DENSITY_GUARDS:
            raise ConfigError(f"unknown autos density_guard {self.density_guard!r}; use {', '.join(DENSITY_GUARDS)}")
        if self.student_guard not in STUDENT_GUARDS:
            raise ConfigError(f"unknown autos student_guard {self.student_guard!r}; use {', '.join(STUDENT_GUARDS)}")

    @property
    def guarded(self) -> bool:
        """Whether the checks that can replace the learned mask (density, collapse) may act: only on
        the learned allocation (a chosen classic one is the user's ablation) and with the guard on."""
        return self.allocation == "learned" and self.guard != "off"

    def preflight(self) -> None:
        """The scorer resolves, and its card, weights (against their hash) and feature schema check out."""
        load_checkpoint(self.scorer)

    def identity(self) -> dict[str, Any]:
        """The scorer's weights and the rest of its card that shapes masks, and what the density and student
        guards read from it when they can act: evidence (and the coverage it votes through) changes masks
        without changing weights."""
        out = {
            "scorer_sha256": scorer_weights_sha256(self.scorer),
            "card_sha256": scorer_card_sha256(self.scorer, coverage=self.guarded),
        }
        if self.density_guard != "off" and self.guarded:
            evidence = scorer_evidence_sha256(self.scorer)
            if evidence:
                out["evidence_sha256"] = evidence
        if self.student_guard != "off" and self.guarded:
            student = scorer_student_sha256(self.scorer)
            if student:
                out["student_sha256"] = student
        return out
