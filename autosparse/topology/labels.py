"""Unit labels: interned sets of units and the tensor algebra the replay runs on them.

The replay (:mod:`autosparse.topology.replay`) replaces every activation by a label tensor of
the same shape whose entries name the *set of units* feeding that element. Sets are interned
as integer *slots*, so a label tensor is a plain LongTensor (``-1`` = no unit) and ops that move
data act on labels literally; this module holds the slots and the three operations that are
not literal: the element-wise union, the union over pooled or reduced axes, and what a layer
reads along its input axis.

Label tensors are kept as broadcast views (``compact.expand(shape)``) of a compact tensor that
is size 1 along every axis the labels do not vary on: a conv's output labels vary along
channels only, so unions, reads and reductions work on C values instead of C*H*W.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from autosparse.topology.fx_trace import Untraceable
from autosparse.topology.unit_graph import unique_pairs


def blank(shape: tuple[int, ...]) -> Tensor:
    """Labels of a value no unit feeds (a constant, token ids, a mask argument)."""
    return torch.full((), -1, dtype=torch.long).expand(shape)


def compact(t: Tensor) -> Tensor:
    """The smallest tensor that broadcasts back to ``t`` (via ``expand``), without copying."""
    for a in range(t.dim()):
        if t.stride(a) == 0 and t.shape[a] > 1:
            t = t.narrow(a, 0, 1)
    return t


def recompact(t: Tensor) -> Tensor:
    """Re-detect constant axes of a materialised label tensor (after a literal op) and re-broadcast."""
    shape = tuple(t.shape)
    for a in range(t.dim()):
        if t.shape[a] > 1:
            first = t.narrow(a, 0, 1)
            if torch.equal(first.expand_as(t), t):
                t = first
    return t.expand(shape)


def has_units(t: Any) -> bool:
    """Whether any element of a value is fed by a unit; ops on unit-free values need no rule."""
    if not isinstance(t, Tensor) or t.numel() == 0:
        return False
    return bool((compact(t) >= 0).any())


def emit(slots: Tensor, axis: int, shape: tuple[int, ...]) -> Tensor:
    """A layer's output labels: its units along ``axis``, broadcast over every other axis."""
    axis = axis % len(shape)
    if shape[axis] != slots.numel():
        raise Untraceable(f"output axis {axis} of shape {shape} does not have {slots.numel()} units")
    view = [1] * len(shape)
    view[axis] = slots.numel()
    return slots.reshape(view).expand(shape)


class UnitLabels:
    """The slot table: each slot is an interned, sorted tuple of provisional node ids.

    Provisional nodes are numbered in allocation order (input elements, then layers and
    embeddings as they are first called); the replay renumbers them into the final node order.
    """

    def __init__(self) -> None:
        self.slot_nodes: list[tuple[int, ...]] = []
        self._slot_of: dict[tuple[int, ...], int] = {}
        self._union_cache: dict[tuple[int, int], int] = {}
        self.num_prov = 0

    def _intern(self, nodes: tuple[int, ...]) -> int:
        slot = self._slot_of.get(nodes)
        if slot is None:
            slot = len(self.slot_nodes)
            self.slot_nodes.append(nodes)
            self._slot_of[nodes] = slot
        return slot

    def new_units(self, count: int) -> tuple[int, Tensor]:
        """Allocate ``count`` provisional nodes, each with its own singleton slot."""
        start = self.num_prov
        self.num_prov += count
        singles = [(start + k,) for k in range(count)]  # fresh nodes: these sets cannot exist yet
        first = len(self.slot_nodes)
        self.slot_nodes.extend(singles)
        self._slot_of.update(zip(singles, range(first, first + count), strict=True))
        return start, torch.arange(first, first + count)

    def _union_slots(self, a: int, b: int) -> int:
        if a < 0 or a == b:
            return b
        if b < 0:
            return a
        key = (a, b) if a < b else (b, a)
        slot = self._union_cache.get(key)
        if slot is None:
            slot = self._intern(tuple(sorted(set(self.slot_nodes[a]) | set(self.slot_nodes[b]))))
            self._union_cache[key] = slot
        return slot

    def _union_many(self, slots: list[int]) -> int:
        slots = [s for s in slots if s >= 0]
        if not slots:
            return -1
        if len(slots) == 1:
            return slots[0]
        nodes: set[int] = set()
        for s in slots:
            nodes.update(self.slot_nodes[s])
        return self._intern(tuple(sorted(nodes)))

    def union(self, tensors: list[Tensor], shape: tuple[int, ...]) -> Tensor:
        """Element-wise union of broadcastable label tensors (residual add, gating multiply, norms)."""
        parts = [compact(t) for t in tensors if has_units(t)]
        if not parts:
            return blank(shape)
        if len(parts) > 1:  # the compact shape the union can vary over
            small = tuple(torch.broadcast_shapes(*[(1,) * (len(shape) - p.dim()) + tuple(p.shape) for p in parts]))
        else:
            small = (1,) * (len(shape) - parts[0].dim()) + tuple(parts[0].shape)
        acc = parts[0].expand(small)
        for t in parts[1:]:
            t = t.expand(small)
            if torch.equal(t, acc):
                continue
            a, b = acc.reshape(-1), t.reshape(-1)
            base = len(self.slot_nodes) + 1
            uniq, inv = torch.unique((a + 1) * base + (b + 1), return_inverse=True)
            ua, ub = (uniq // base - 1).tolist(), (uniq % base - 1).tolist()
            merged = torch.tensor([self._union_slots(x, y) for x, y in zip(ua, ub, strict=True)], dtype=torch.long)
            acc = merged[inv].reshape(small)
        return acc.expand(shape)

    def reduce(self, x: Tensor, axes: Iterable[int]) -> Tensor:
        """Union over ``axes``, keeping them with size 1."""
        full = list(x.shape)
        axes = sorted({a % x.dim() for a in axes})
        for a in axes:
            full[a] = 1
        x = compact(x)
        rest = []
        for a in axes:
            if x.shape[a] == 1:
                continue
            first = x.narrow(a, 0, 1)
            if torch.equal(first.expand_as(x), x):
                x = first
            else:
                rest.append(a)
        if rest:
            keep = [a for a in range(x.dim()) if a not in rest]
            rows = math.prod(x.shape[a] for a in keep)
            flat = x.permute(*keep, *rest).reshape(rows, -1)
            base = len(self.slot_nodes) + 1
            key = torch.unique(torch.arange(rows)[:, None] * base + (flat + 1))
            row, slot = (key // base).tolist(), (key % base - 1).tolist()
            out = [-1] * rows
            start = 0
            for k in range(1, len(row) + 1):
                if k == len(row) or row[k] != row[start]:
                    out[row[start]] = self._union_many(slot[start:k])
                    start = k
            x = torch.tensor(out, dtype=torch.long).reshape([1 if a in rest else x.shape[a] for a in range(x.dim())])
        return x.expand(full)

    def read(self, x: Tensor, axis: int) -> Tensor:
        """(2, P) unique (index along ``axis``, provisional node) pairs: what a layer reading ``x`` sees."""
        if x.dim() == 0:
            raise Untraceable("a prunable layer reads a scalar")
        axis = axis % x.dim()
        n = x.shape[axis]
        c = compact(x)
        c = c.expand([n if a == axis else c.shape[a] for a in range(c.dim())])
        flat = c.movedim(axis, -1).reshape(-1, n)
        if flat.shape[0] == 1 or torch.equal(flat, flat[:1].expand_as(flat)):
            idx, slots = torch.arange(n), flat[0]
        else:
            base = len(self.slot_nodes) + 1
            key = torch.unique(torch.arange(n) * base + (flat + 1))
            idx, slots = key // base, key % base - 1
        keep = slots >= 0
        idx, slots = idx[keep], slots[keep]
        if idx.numel() == 0:
            return torch.empty(2, 0, dtype=torch.long)
        uslots, inv = torch.unique(slots, return_inverse=True)
        members = [self.slot_nodes[s] for s in uslots.tolist()]
        lens = torch.tensor([len(m) for m in members], dtype=torch.long)
        if bool((lens == 1).all()):  # every set is a single node (the common case): no expansion needed
            nodes = torch.tensor([m[0] for m in members], dtype=torch.long)[inv]
            return unique_pairs(idx, nodes)
        ptr = torch.cumsum(lens, 0) - lens
        flat_nodes = torch.tensor([v for m in members for v in m], dtype=torch.long)
        rep = lens[inv]
        within = torch.arange(int(rep.sum())) - torch.repeat_interleave(torch.cumsum(rep, 0) - rep, rep)
        nodes = flat_nodes[torch.repeat_interleave(ptr[inv], rep) + within]
        return unique_pairs(torch.repeat_interleave(idx, rep), nodes)
