"""Within-layer ranks: exact, deterministic and fast.

Ranks are the scale-free currency of the learned scorer (every ``*_rank`` feature) and of the
unit budget (a unit's quality is a sum of its weights' percentiles), so one implementation
serves both: ties get distinct ranks by position, NaN ranks highest, and the sort is done on
order-preserving integer keys. A float32 layer's 32-bit keys are sorted by whichever of two exact
stable sorts is faster on this CPU (:func:`sort_backend`, timed once per process): torch's radix
sort, or numpy's vectorised sort of the keys packed with their positions into unique 64-bit
integers, which needs no stability to be stable. Both give the same permutation.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import torch

from autosparse.core.errors import ConfigError


def sort_key(flat: torch.Tensor) -> torch.Tensor:
    """Signed integers that sort exactly like the float values of ``flat``, every NaN above all.

    The IEEE trick on the bit pattern: a negative float's magnitude bits are flipped so larger
    magnitudes sort lower; positives keep theirs. ``+ 0.0`` turns -0.0 into +0.0 first, because
    a float sort sees them as equal (a tie, broken by index). float64 keeps its 64 bits, so the
    keys are exact for every floating dtype; integers are their own key.
    """
    if not flat.is_floating_point():
        return flat.to(torch.int64)
    if flat.dtype == torch.float64:
        v, itype, low = flat + 0.0, torch.int64, 0x7FFF_FFFF_FFFF_FFFF
    else:
        v, itype, low = flat.to(torch.float32) + 0.0, torch.int32, 0x7FFF_FFFF
    bits = v.view(itype)
    key = (bits >> (8 * bits.element_size() - 1)).bitwise_and_(low).bitwise_xor_(bits)
    # a finite sum proves there is no NaN in one read-only pass; isnan costs a pass and a mask
    if not bool(torch.isfinite(v.sum())):
        nan = torch.isnan(v)
        if bool(nan.any()):
            key[nan] = low  # the largest key: NaNs tie with each other above +inf
    return key


def rank_values(n: int) -> torch.Tensor:
    """What the weight of sorted position i gets: i / (n - 1) in float32 (shared by a layer's rank features)."""
    return torch.arange(n).to(torch.float32) / max(1, n - 1)


def pct_rank(x: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
    """Within-layer percentile in [0, 1]; ties get distinct ranks by position (stable, deterministic).

    Exactly ``argsort(argsort(x, stable=True))`` scaled to [0, 1] (NaN highest), with one sort:
    the values become order-preserving integer keys (:func:`sort_key`), sorted stably by
    :func:`stable_permutation` (exact for float64 without a float32 detour), and the rank values
    are scattered back through the permutation. ``values`` is ``rank_values(numel)`` when the
    caller has it.
    """
    flat = x.detach().reshape(-1).cpu()
    n = flat.numel()
    vals = rank_values(n) if values is None else values
    return scatter_ranks(stable_permutation(sort_key(flat)), vals)


#: Largest vector whose positions fit the low 32 bits of a packed key.
_PACKABLE = 1 << 32
_LOW32 = np.uint64(0xFFFF_FFFF)
_SIGN32 = np.uint32(0x8000_0000)


def _packable(key: torch.Tensor) -> bool:
    """A 32-bit key whose positions fit the low half: sorted packed (:func:`_packed_sort`)."""
    return key.dtype == torch.int32 and key.numel() < _PACKABLE


def _packed_sort(key: torch.Tensor) -> np.ndarray:
    """A 32-bit key in the high half and its position in the low half of unique uint64 values, sorted.

    Why packed: the values are unique, so any sort of them is the stable order, and numpy sorts
    64-bit integers with SIMD: 35 ms for 2.36M keys where torch's stable radix sort took 143 ms
    (Intel Xeon, AVX-512, 2026-12-02; docs/SPEED.md). The halves are written through a uint32
    view (little-endian: the low half first) rather than shifted and or-ed in uint64, which
    saves two passes over the array.
    """
    n = key.numel()
    packed = np.empty(n, dtype=np.uint64)
    halves = packed.view(np.uint32).reshape(n, 2)
    if np.little_endian:
        hi, lo = halves[:, 1], halves[:, 0]
    else:  # pragma: no cover - big-endian hosts
        hi, lo = halves[:, 0], halves[:, 1]
    np.bitwise_xor(key.numpy().view(np.uint32), _SIGN32, out=hi)  # signed order as unsigned order
    lo[:] = np.arange(n, dtype=np.uint32)
    packed.sort()
    return packed


#: Environment variable that fixes :func:`sort_backend` instead of timing it (A/B speed runs).
SORT_ENV = "AUTOSPARSE_RANK_SORT"
SORT_BACKENDS = ("packed", "radix")
_backend: str | None = None
_backend_lock = threading.Lock()


def sort_backend() -> str:
    """``"packed"`` (numpy, :func:`_packed_sort`) or ``"radix"`` (torch's stable sort): the faster
    exact sort of 32-bit keys on this CPU, timed once per process on 65,536 random keys (~15 ms).

    Why time it: the two give the same permutation, but which is faster flips with the CPU. On the
    Intel Xeon of docs/SPEED.md (2026-12-02) the packed sort of a 2.36M-weight layer took 35 ms
    and torch's 143; on the AMD EPYC VM of 2026-12-05 numpy's SIMD sort is not used, so the packed
    sort took 134 ms and torch's 34 — and the four ranks of ResNet-18 cost `autos` 2.3 s there.
    ``AUTOSPARSE_RANK_SORT=packed|radix`` fixes the choice (for A/B timing); the masks are the same.
    """
    global _backend
    if _backend is not None:
        return _backend
    with _backend_lock:  # map_layers ranks layers from several threads at once
        if _backend is None:
            forced = os.environ.get(SORT_ENV, "").strip().lower()
            if forced and forced not in SORT_BACKENDS:
                raise ConfigError(f"{SORT_ENV}={forced!r} is not a sort; set it to packed or radix, or unset it")
            _backend = forced or _time_backends()
    return _backend


def _time_backends() -> str:
    """The faster backend by the best of three alternating timings of each (a busy core slows both)."""
    key = torch.randint(-(2**31), 2**31 - 1, (1 << 16,), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    best = {b: float("inf") for b in SORT_BACKENDS}
    for _ in range(3):
        for b in SORT_BACKENDS:
            start = time.perf_counter()
            _packed_sort(key) if b == "packed" else torch.sort(key, stable=True)
            best[b] = min(best[b], time.perf_counter() - start)
    return min(SORT_BACKENDS, key=best.__getitem__)


def stable_permutation(key: torch.Tensor) -> np.ndarray:
    """The permutation (numpy int64) that a stable ascending sort of integer ``key`` gives.

    A 32-bit key (every float32 layer) is sorted by :func:`sort_backend`'s choice; packed with its
    positions, the positions are masked out in place, so the permutation costs no further array.
    64-bit keys (float64 values, integers) keep torch's stable sort.
    """
    if not _packable(key) or sort_backend() == "radix":
        return torch.sort(key, stable=True).indices.numpy()
    packed = _packed_sort(key)
    packed &= _LOW32
    return packed.view(np.int64)


def stable_order(key: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """The sorted keys and the permutation a stable ascending sort of integer ``key`` gives
    (:func:`stable_permutation` plus the keys, for a caller that looks for ties among them)."""
    if not _packable(key) or sort_backend() == "radix":
        ranked, order = torch.sort(key, stable=True)
        return ranked, order.numpy()
    packed = _packed_sort(key)
    high = packed.view(np.uint32).reshape(-1, 2)[:, 1 if np.little_endian else 0]
    ranked = np.bitwise_xor(high, _SIGN32).view(np.int32)  # a new array: it outlives the masking below
    packed &= _LOW32
    return torch.from_numpy(ranked), packed.view(np.int64)


def scatter_ranks(order: np.ndarray, values: torch.Tensor) -> torch.Tensor:
    """``out[order[i]] = values[i]``: numpy's fancy assignment, ~4x faster than ``index_copy_`` here."""
    out = np.empty(order.shape[0], dtype=np.float32)
    out[order] = values.numpy()
    return torch.from_numpy(out)
