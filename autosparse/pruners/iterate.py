"""Make any score function iterative.

SynFlow, iterative SNIP, NTK-SAP and ProsPr's rounds all prune in rounds: score, remove a little,
re-score the thinned network. They differ only in the score, so the rounds live here once:
densities follow an exponential (d_r = d^(r/R), SynFlow's schedule) or linear schedule, weights
pruned in an earlier round stay pruned, and each round keeps exactly ``round(d_r * total)``
weights; ties at the threshold are spread evenly over the flat order (not to its start).

Why the rounds cost what their scores cost: the caller's model is copied (and converted, e.g. to
SynFlow's float64) once, not every round; each round's mask is applied to that copy in place
(a pruned weight stays pruned, so zeroing is cumulative and nothing needs restoring); and the
global selection ranks only the weights still alive, by one exact linear-time selection over
them. Pruned weights would score ``-inf`` and can never be chosen again, so this gives the masks
the full allocation over every weight gives, bit for bit, at a fraction of the cost once most
weights are gone (SynFlow at 1% density spends most rounds below 20% alive).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from autosparse.core.allocation import (
    Scope,
    allocate,
    check_ranks_something,
    select_top,
    target_count,
    warn_position_fill,
)
from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks
from autosparse.pruners.workspace import working_copy

Schedule = Literal["exp", "linear"]
ScoreFn = Callable[[nn.Module, Masks | None], dict[str, torch.Tensor]]
Prepare = Callable[[nn.Module], nn.Module]


def check_schedule(rounds: int, schedule: str) -> None:
    """Reject a bad ``rounds``/``schedule`` when a config is built, not rounds into a pruning run."""
    if int(rounds) != rounds or rounds < 1:
        raise ConfigError(f"rounds must be a positive integer, got {rounds}")
    if schedule not in ("exp", "linear"):
        raise ConfigError(f"unknown schedule {schedule!r}; use 'exp' or 'linear'")


def schedule_densities(density: float, rounds: int, schedule: Schedule = "exp") -> list[float]:
    """Target density after each round; the last one is exactly ``density``."""
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    if schedule == "exp":
        out = [density ** ((r + 1) / rounds) for r in range(rounds)]
    elif schedule == "linear":
        out = [1.0 - (1.0 - density) * (r + 1) / rounds for r in range(rounds)]
    else:
        raise ConfigError(f"unknown schedule {schedule!r}; use 'exp' or 'linear'")
    out[-1] = density
    return out


@contextmanager
def masked_weights(model: nn.Module, masks: Masks | None):
    """Temporarily zero pruned weights in place (restored on exit).

    Zeroing rather than attaching torch pruning hooks keeps the score functions simple: they
    see an ordinary model whose pruned weights are exactly zero, as in the reference code.
    """
    if masks is None:
        yield model
        return
    saved = {}
    with torch.no_grad():
        for layer in prunable_layers(model):
            p = layer.parameter
            saved[layer.name] = p.detach().clone()
            p.mul_(masks[layer.name].to(device=p.device, dtype=p.dtype))
    try:
        yield model
    finally:
        with torch.no_grad():
            for layer in prunable_layers(model):
                layer.parameter.copy_(saved[layer.name])


class Thinning:
    """The weights of a private working copy still alive, and their removal in place.

    Per layer it keeps the boolean mask and the ascending flat indices of the survivors, so a
    round touches the survivors only, and it snapshots the copy's buffers and train/eval modes
    so every round starts from the state the copy was prepared in (a score function may run
    batch-norm in train mode or reset its statistics; it must not change parameters).
    """

    def __init__(self, work: nn.Module, *, keep_original: bool = False) -> None:
        layers = prunable_layers(work)
        self.work = work
        self.names = [layer.name for layer in layers]
        self.params = [layer.parameter for layer in layers]
        self.masks = [torch.ones(p.shape, dtype=torch.bool) for p in self.params]
        self.alive = [torch.arange(p.numel(), dtype=torch.int32) for p in self.params]  # half the memory of int64
        self.total = sum(p.numel() for p in self.params)
        self.buffers = [(b, b.detach().clone()) for b in work.buffers()]
        self.modes = [(m, m.training) for m in work.modules()]
        # Only a per-layer allocation can bring a weight back (its count may round up by one in a later
        # round); the weight then scores with its initial value again, as when every round masked θ0.
        self.original = [p.detach().clone() for p in self.params] if keep_original else None
        self.told_ties = False  # the position-fill warning, said once per pruning

    def restore_state(self) -> None:
        """Buffers and modes as the copy was prepared (parameters are the caller's business)."""
        with torch.no_grad():
            for b, saved in self.buffers:
                b.copy_(saved)
        for m, training in self.modes:
            m.training = training

    def current(self) -> Masks:
        """The masks so far, as a snapshot the score function may keep."""
        return Masks({n: m.clone() for n, m in zip(self.names, self.masks, strict=True)})

    def keep_global(self, scores: dict[str, torch.Tensor], k: int, *, first: bool = False, last: bool = False) -> None:
        """Keep the ``k`` best-scored survivors over all layers; exact, ties spread over the flat order.

        The survivors' scores in flat order are what :func:`topk_mask` sees of the whole
        concatenation once every pruned weight scores ``-inf``: its k-th largest value is a
        survivor's whenever at least ``k`` survivors have a score (not NaN, not ``-inf``), and then
        it keeps the same weights. With fewer (a diverging score), pruned weights stay pruned and
        the NaN survivors fill the count by index, with a warning; if every survivor is NaN the
        round is a :class:`~autosparse.core.errors.ScoreError`.
        """
        if k > sum(a.numel() for a in self.alive):
            raise AssertionError("a pruning schedule must not grow the kept count")
        values = []
        for n, m, idx in zip(self.names, self.masks, self.alive, strict=True):
            s = scores[n].detach()
            if s.numel() != m.numel():
                raise ValueError(f"score of {n} has {s.numel()} values for a weight of {m.numel()}")
            values.append(s.reshape(-1).cpu().index_select(0, idx).to(torch.float64))
        flat = torch.cat(values)
        if first:  # the first round sees every weight: a flat signal is no ranking
            check_ranks_something(flat, k)
        # ties spread over the flat order, not to its start: a score of exactly 0 shared by many weights
        # (NTK-SAP's dead units) kept the first layers' and pruned the last layers', round after round,
        # until a lenet5 at 20% had its two classifier layers empty
        keep, short, n_tied, threshold = select_top(flat, k, "spread")
        # the mask returned (earlier rounds' ties, zero flow into a 1x1 map's edge taps, go later), or a round
        # that had nothing to rank by at all: what it kept by position, later rounds can only thin (review)
        if not self.told_ties and (last or (short >= k and n_tied > short)):
            self.told_ties = warn_position_fill(k, short, n_tied, threshold, "spread", stacklevel=2)
        offset = 0
        for i, idx in enumerate(self.alive):
            kept = keep[offset : offset + idx.numel()]
            offset += idx.numel()
            dead = idx[~kept]
            if dead.numel():
                self.masks[i].view(-1)[dead] = False
                self.alive[i] = idx[kept]
                self.zero(i, dead)

    def zero(self, i: int, dead: torch.Tensor) -> None:
        """Zero layer ``i``'s newly pruned weights by multiplying them by 0 (as masking θ0 does:
        the sign of zero is kept), touching only those weights."""
        p = self.params[i]
        with torch.no_grad():
            if not p.is_contiguous():
                p.mul_(self.masks[i].to(p.device))
                return
            flat = p.view(-1)
            dead = dead.to(device=p.device, dtype=torch.int64)
            flat.index_copy_(0, dead, flat.index_select(0, dead) * 0)

    def keep_allocated(self, masks: Masks) -> None:
        """Adopt the masks of a per-layer allocation (``uniform``/``erk``)."""
        with torch.no_grad():
            for i, n in enumerate(self.names):
                new = masks[n]
                revived = new & ~self.masks[i]
                p = self.params[i]
                if self.original is not None and bool(revived.any()):
                    p.copy_(torch.where(revived.to(p.device), self.original[i], p))
                self.masks[i] = new.clone()
                self.alive[i] = torch.nonzero(new.reshape(-1)).squeeze(1).to(torch.int32)
                p.mul_(new.to(p.device))

    def scores_with_pruned_lowest(self, scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            n: torch.where(m, scores[n].detach().cpu().to(torch.float64), -torch.inf)
            for n, m in zip(self.names, self.masks, strict=True)
        }


def iterate(
    score_fn: ScoreFn,
    model: nn.Module,
    density: float,
    rounds: int,
    *,
    schedule: Schedule = "exp",
    scope: Scope = "global",
    desc: str = "pruning rounds",
    prepare: Prepare = working_copy,
) -> Masks:
    """Prune in ``rounds`` steps: ``score_fn(work, masks)`` scores the thinned network each round.

    ``work = prepare(model)`` is made once (a deep copy by default; SynFlow passes its float64,
    absolute-valued copy) and its pruned weights are zeroed in place as the rounds go, so
    ``score_fn`` sees an ordinary model whose pruned weights are exactly zero, with ``masks`` the
    masks so far (``None`` in the first round). ``score_fn`` must not copy or change ``work``'s
    parameters; its buffers and modes are restored after every round. ``model`` is not modified.
    """
    work = prepare(model)
    state = Thinning(work, keep_original=scope != "global")
    masks: Masks | None = None
    densities = schedule_densities(density, rounds, schedule)
    for i, d in enumerate(tqdm(densities, desc=desc, leave=False, disable=None)):
        scores = score_fn(work, masks)
        state.restore_state()
        if scope == "global":
            state.keep_global(scores, target_count(state.total, d), first=masks is None, last=i == len(densities) - 1)
        else:
            # ties said once, of the mask returned: every round's warning was printed (19 a SynFlow run)
            last = i == len(densities) - 1
            state.keep_allocated(allocate(state.scores_with_pruned_lowest(scores), d, scope=scope, warn_ties=last))
        masks = state.current()
    assert masks is not None
    return Masks(masks.to_dict(), meta={"scope": scope, "density": d})
