"""Connectivity repair: spend every kept weight on an input→output path, keeping the exact count.

A one-shot ranker scores weights independently, so at extreme sparsity some kept weights end at
a unit nothing reads, or start at a unit nothing feeds: they cost budget and carry no signal.
On LeNet-300-100 at 0.5% density about a fifth of an unrepaired ``autos`` mask was such dead
weight, while IMP's masks have none. Repair moves exactly those weights, layer by layer, to the
best-scored pruned positions that *would* lie on a path (the path "potential" of
:mod:`autosparse.topology.paths`). These steps keep per-layer counts — the allocation.

One move can leave weights dead: the potential it read counted reach through dead weights it
then removed (a dead weight can carry the input halfway to a unit that reaches the output). So
when a move leaves weights dead, the next step measures the potential again without them, which
is exact: every weight it places lies on a path. On MobileNet-v3-small at 1% the old loop of
cheap moves never settled (8156, 2513, 1670 weights moved, 13% of the mask still dead after
three rounds and 12% after twelve).

Where a layer keeps dead weights with no on-path room because its neighbours are dead too (a
residual branch the shortcut bypasses), a chain step lays the branch again, in forward order
(:meth:`_Repair.revive`); so does a mask with no path left at all, where no layer's weights can move
alone (a ResNet-20 at 0.2% kept 22 layers' weights on no path, and the repair stopped). Where its
neighbours are live but open too few units (the grouped convs of a
RegNet), the last step gives the surplus to other layers with on-path room (:meth:`_Repair.rehome`);
only that step changes per-layer counts, and ``rehome=False`` turns it off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from autosparse.core.allocation import apportion, topk_mask
from autosparse.core.masks import Masks
from autosparse.topology.paths import PathFlow, PathNetwork


def repair_connectivity(
    model: nn.Module,
    masks: Masks,
    scores: Mapping[str, torch.Tensor],
    input_shape: Sequence[int],
    *,
    iterations: int = 3,
    prefer: Mapping[str, torch.Tensor] | None = None,
) -> tuple[Masks, list[int]]:
    """Return repaired masks and the number of weights moved in each step (the cheap moves, the
    exact move, the chain step and its stragglers' move, the rehome step, as far as each ran).

    ``scores`` (higher = better) choose among the candidate positions; ties go to the lower
    index, so the result is deterministic. ``prefer`` (per layer, a boolean tensor broadcastable
    to the weight) marks positions to fill first — e.g. the output units a unit budget chose, so
    the repair mends paths inside that structure instead of spreading weights over new units.
    """
    if iterations <= 0:
        return Masks({n: m.clone() for n, m in masks.items()}, meta=dict(masks.meta)), []
    net = PathNetwork(model, tuple(input_shape))  # built once: the copy and hooks are the costly part
    repaired, moved, _ = repair_with_flow(net, masks, scores, iterations=iterations, prefer=prefer, final_flow=False)
    return repaired, moved


def repair_with_flow(
    net: PathNetwork,
    masks: Masks,
    scores: Mapping[str, torch.Tensor],
    *,
    iterations: int = 3,
    prefer: Mapping[str, torch.Tensor] | None = None,
    final_flow: bool = True,
    chains: bool = True,
    rehome: bool = True,
) -> tuple[Masks, list[int], PathFlow | None]:
    """:func:`repair_connectivity` on a caller's :class:`PathNetwork`, also returning the path flow
    of the repaired masks (``final_flow``).

    Why: a caller that checks the result's paths afterwards (``autos``' collapse check, then
    ``prune``'s diagnostics) would otherwise build a second float64 copy of the model and run the
    pass the repair's last iteration already ran — a third of ``autos``' time on MobileNet-v3.
    The flow costs one extra pass only when the masks changed after the last pass. ``chains`` and
    ``rehome`` switch those steps off (ablations; ``autos rehome=false``).
    """
    r = _Repair(net, {n: m.clone() for n, m in masks.items()}, scores, prefer)
    flow: PathFlow | None = None
    clean = False  # a pass found every kept weight on a path
    for it in range(iterations):
        flow, eff, dead = r.measure()
        if not _any(dead):
            r.moved.append(0)
            clean = True
            break
        if it == 0 or not _any(eff):
            # the potential of this pass, dead weights and all: cheap, and exact where the dead carry no
            # reach; also the only move with a chance where no path is left to measure from
            r.moved.append(r.move_dead(eff, flow))
            if r.moved[-1] > 0:
                flow = None  # it measured the masks before the move
                continue
            # nothing could move one layer at a time: only a chain can help — also where no path is left at all
            # (it gave up there: a ResNet-20 at 0.2% kept 22 layers' weights on no path though a path fit, helper)
        flow = r.settle(flow, eff, dead, chains)
        break
    else:
        if iterations > 0:
            # the cheap moves took every iteration: the exact and chain steps still place what is dead, and
            # where no path exists yet the chain step lays one (review)
            flow, eff, dead = r.measure()
            if _any(dead):
                flow = r.settle(flow, eff, dead, chains)
    if rehome and iterations > 0 and not clean:
        flow = r.rehome(flow)
    if final_flow and flow is None:
        flow = net.flow(net.weights(r.current))  # the masks changed after the last pass
    return Masks(r.current, meta=dict(masks.meta)), r.moved, flow if final_flow else None


def _any(masks: Mapping[str, torch.Tensor]) -> bool:
    return any(bool(m.any()) for m in masks.values())


@dataclass
class _Repair:
    """One repair's state, shared by its steps: the masks being mended (``current``, changed in
    place), what chooses among positions (``scores``, ``prefer``) and how many weights each step
    moved (``moved``, the caller's report)."""

    net: PathNetwork
    current: dict[str, torch.Tensor]
    scores: Mapping[str, torch.Tensor]
    prefer: Mapping[str, torch.Tensor] | None
    moved: list[int] = field(default_factory=list)

    def measure(self) -> tuple[PathFlow, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One path pass over the masks: its flow, the kept weights on a path, and those on none."""
        flow = self.net.flow(self.net.weights(self.current))
        eff = flow.effective()
        return flow, eff, {n: m & ~eff[n] for n, m in self.current.items()}

    def settle(
        self, flow: PathFlow, eff: Mapping[str, torch.Tensor], dead: Mapping[str, torch.Tensor], chains: bool
    ) -> PathFlow | None:
        """The exact move, then the chain step; ``flow`` measured the masks with their dead weights.

        Still dead after a move: the potential it used counted reach through weights it then removed.
        Measured again without them it is exact, so every weight placed now lies on a path (the module
        doc has the case that needed it). Returns the flow of the result, or None where it changed.
        """
        if any(bool((~self.current[n] & flow.potential(n)).any()) for n, d in dead.items() if d.any()):
            self.moved.append(self.exact_move(eff, dead))
            out: PathFlow | None = None  # that pass measured the live weights, not the result
        else:
            self.moved.append(0)  # no layer with dead weights has room even now: nothing can move
            out = flow
        return self.revive(out) if chains else out

    def exact_move(self, eff: Mapping[str, torch.Tensor], dead: Mapping[str, torch.Tensor]) -> int:
        """Take the dead weights out, measure the potential of the live ones, place them there: every
        weight placed lies on a path. Returns how many moved."""
        live = {n: m & eff[n] for n, m in self.current.items()}
        flow = self.net.flow(self.net.weights(live))
        self.current.clear()
        self.current.update(live)
        return self.move_dead(eff, flow, dead=dead)

    def revive(self, flow: PathFlow | None) -> PathFlow | None:
        """Lay new paths through layers whose dead weights have no on-path room, in forward order.

        Why: a residual branch with every layer dead (an inverted-residual block of a mobile net; the
        shortcut carries the signal around it) has no position on a path in any one of its layers, so
        moving one layer's weights at a time can never revive it. timm's MobileNet-v3-small-050 at 1%
        kept half its weights off every path and 14 layers carrying no signal; torchvision's
        MobileNet-v3-small at 0.5% (32 px) 90%. So each such layer, in forward order, places its dead
        weights where they would lie on a path if the stuck layers after it were dense; the layers
        after it then see the input reach those weights made. One pass with the stuck layers dense
        gives each layer's reach to the output (with the layers before it dense too, an
        over-approximation: what it leaves dead is placed again below), and one forward sweep places
        them all. Weights a later layer did not continue are placed exactly once more at the end.
        Per-layer counts stay. Where the dense pass overflows float64 (a very deep residual net), the
        step is skipped. Returns the flow of the result, or None where the masks changed after the
        last pass.
        """
        flow = flow if flow is not None else self.net.flow(self.net.weights(self.current))
        eff = flow.effective()
        stuck = {n for n in _movable(self.net) if bool((self.current[n] & ~eff[n]).any())}
        if not stuck:
            return flow
        before = dict(self.current)  # chain() swaps in new tensors, so this is the undo
        try:
            moved = self.chain(eff, stuck)
        except OverflowError:  # the dense pass of a very deep net: no chain, the mask as it was
            self.current.update(before)
            return flow
        if not moved:
            return flow
        self.moved.append(moved)
        flow, eff, dead = self.measure()
        if _any(dead):  # a chain's stragglers: placed exactly
            self.moved.append(self.exact_move(eff, dead))
            return None
        return flow

    def chain(self, eff: Mapping[str, torch.Tensor], stuck: set[str]) -> int:
        """The two passes of :meth:`revive`; returns how many weights were placed."""
        net, current = self.net, self.current
        dead = {n: current[n] & ~eff[n] for n in stuck}
        dense = dict(current)
        for n in stuck:
            dense[n] = torch.ones_like(current[n])
        reach = net.flow(net.weights(dense), out_grads=stuck)
        # a layer with no free on-path position even with every stuck layer dense cannot be revived
        stuck = {n for n in stuck if n in reach.out_grads and bool((~current[n] & reach.potential(n)).any())}
        if not stuck:
            return 0
        weights = net.weights({n: m & ~dead[n] if n in stuck else m for n, m in current.items()})
        moved = 0

        def place(name: str, x: torch.Tensor) -> None:
            nonlocal moved
            if name not in stuck:
                return
            stuck.discard(name)  # decided once, at its first call
            potential = net.weight_potential(name, x, reach.out_grads[name])
            current[name] = current[name] & ~dead[name]
            moved += self.move_dead(eff, potential, dead={name: dead[name]})
            weights[name].copy_(current[name].reshape(weights[name].shape))

        net.sweep(weights, place)
        return moved

    def rehome(self, flow: PathFlow | None) -> PathFlow | None:
        """Give the dead weights no step could place in their own layer to layers with on-path room.

        Why: the steps above keep per-layer counts, so a layer whose neighbours open too few units
        keeps its surplus dead. On torchvision's RegNet-X-400MF at 1% (32 px) the learned allocation
        gave block 4's grouped 3x3 convs thousands of weights and the 1x1 convs around them a few
        hundred, all live: 64% of the kept weights lay on no path, a mask at a third of its density.
        Here those weights go to the layers with free on-path positions (measured without them, so
        each lands on a path), in proportion to the layers' live counts — the allocation's shape —
        and each layer takes its best-scored positions. What finds no room stays where it was. A
        layer with no live weight keeps its own (reported as collapsed, never emptied), and attention
        layers, whose path measure is approximate, neither give nor take. Returns the flow of the
        result, or None where the masks changed.
        """
        net, current, scores = self.net, self.current, self.scores
        flow = flow if flow is not None else net.flow(net.weights(current))
        eff = flow.effective()
        names = _movable(net)
        live = {n: current[n] & eff[n] for n in names}
        dead = {n: current[n] & ~eff[n] for n in names}
        givers = {n: d for n, d in dead.items() if bool(d.any()) and bool(live[n].any())}
        if not givers:
            return flow
        weights = net.weights({n: m & ~givers[n] if n in givers else m for n, m in current.items()})
        reach = net.flow(weights)  # the live weights alone, so a position it puts on a path is on one
        room: dict[str, torch.Tensor] = {}
        for n in names:
            free = ~current[n] & reach.potential(n)
            if self.prefer is not None and n in self.prefer:  # a unit budget's layer grows inside its units only
                free = free & self.prefer[n].expand_as(free)
            if bool(free.any()):
                room[n] = free
        pool = sum(int(d.sum()) for d in givers.values())
        # in proportion to live counts; a layer with room but nothing live counts as one
        gets = apportion(
            pool, {n: max(int(live[n].sum()), 1) for n in room}, {n: int(r.sum()) for n, r in room.items()}
        )
        placed = sum(gets.values())
        if placed == 0:
            return flow
        counts = {n: int(d.sum()) for n, d in givers.items()}
        stays = apportion(pool - placed, counts, counts)  # what found no room: each layer keeps its share
        for n, d in givers.items():
            current[n] = (current[n] & ~d) | _best_among(_float_scores(scores[n], d), d, stays[n])
        for n, k in gets.items():
            if k:
                current[n] = current[n] | _best_among(_float_scores(scores[n], room[n]), room[n], k)
        self.moved.append(placed)
        return None

    def move_dead(
        self,
        eff: Mapping[str, torch.Tensor],
        flow: PathFlow | torch.Tensor,
        *,
        dead: Mapping[str, torch.Tensor] | None = None,
    ) -> int:
        """Move each layer's dead weights to its best-scored free positions of ``flow``'s potential
        (the preferred ones first); the best-scored of those it has no room for stay. ``dead``
        (default: kept and not in ``eff``) are weights already taken out of the masks; only its
        layers move. ``flow`` may instead be one layer's potential, with that layer alone in ``dead``
        (the chain step measures it layer by layer). Returns how many moved."""
        current, prefer = self.current, self.prefer
        moved = 0
        for name in current if dead is None else dead:
            m = current[name]
            d = m & ~eff[name] if dead is None else dead[name]
            k = int(d.sum())
            if k == 0:
                continue
            potential = flow if isinstance(flow, torch.Tensor) else flow.potential(name)
            candidates = ~m & ~d & potential
            s = _float_scores(self.scores[name], m)
            tiers = [candidates]
            if prefer is not None and name in prefer:
                inside = candidates & prefer[name].expand_as(m)
                tiers = [inside, candidates & ~inside]
            add = torch.zeros_like(m)
            take = 0
            for tier in tiers:  # fill from the preferred positions first, then from the rest
                t = min(k - take, int(tier.sum()))
                if t > 0:
                    add |= _best_among(s, tier, t)
                    take += t
            keep_dead = _best_among(s, d, k - take)  # no on-path position left in this layer: they stay
            current[name] = (m & ~d) | add | keep_dead
            moved += take
        return moved


def _movable(net: PathNetwork) -> list[str]:
    """The layers, in forward order, whose weights the chain and rehome steps may move: not
    attention layers, whose path measure is approximate."""
    kinds = {layer.name: layer.kind for layer in net.layers}
    return [n for n in net.names if kinds[n] != "attention"]


def _float_scores(score: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    s = score.reshape(like.shape)
    return s if s.is_floating_point() else s.to(torch.float64)


def _best_among(score: torch.Tensor, allowed: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the ``k`` best-scored ``allowed`` positions (ties: lower index), as ``topk_mask``
    picks them with every other position at -inf — except that an allowed position scored -inf
    itself can no longer lose its place to a forbidden one (which left the count short).

    Why not that: the selection then runs over the allowed positions only. Filling the rest with
    -inf made most of a big layer one tied value, on which numpy's selection slowed to ~80 ns
    an element — the repair's top-k took longer than its path passes on MobileNet-v3.
    """
    out = torch.zeros(allowed.shape, dtype=torch.bool)
    if k <= 0:
        return out
    idx = torch.nonzero(allowed.reshape(-1)).squeeze(1)  # increasing: index order breaks ties as before
    chosen = topk_mask(score.reshape(-1).index_select(0, idx), k)
    out.view(-1)[idx[chosen]] = True
    return out
