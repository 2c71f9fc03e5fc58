"""The structure of a mask inside each layer: how many units it keeps alive and how it wires them.

Two masks with the same per-layer densities can train very differently (on LeNet-300-100 at
99.5%, IMP's and SynFlow's layer densities are nearly equal and IMP trains 4 points better):
IMP keeps many units with a few inputs each, SynFlow funnels the budget through a few. These
numbers are what the learned scorer's unit head imitates, and what the docs compare methods on.

Per layer: alive output units (with any kept weight) and alive input units (read by any kept
weight), kept weights per alive output unit (fan-in), and for convolutions where in the kernel
the kept weights sit (centre tap, edge taps, corner taps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class LayerStructure:
    name: str
    kept: int
    total: int
    out_units: int
    in_units: int
    alive_out: int  # output units with at least one kept weight
    alive_in: int  # input units read by at least one kept weight
    kernel_centre: float  # share of kept weights at the kernel's centre tap (1 for linear layers)
    kernel_corner: float  # share at the four corners of a 2-D kernel (0 for 1-D or 1x1 kernels)

    @property
    def density(self) -> float:
        return self.kept / self.total if self.total else 0.0

    @property
    def fan_in(self) -> float:
        """Kept weights per alive output unit."""
        return self.kept / self.alive_out if self.alive_out else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "density": self.density, "fan_in": self.fan_in}


def _kernel_shares(mask: torch.Tensor) -> tuple[float, float]:
    kept = float(mask.sum())
    if mask.dim() <= 2 or kept == 0:
        return (1.0 if kept else 0.0), 0.0
    taps = mask.reshape(mask.shape[0], mask.shape[1], -1).sum((0, 1)).to(torch.float64).reshape(mask.shape[2:])
    centre = taps[tuple(s // 2 for s in taps.shape)]
    corner = 0.0
    if taps.dim() == 2 and min(taps.shape) > 1:
        corner = float(taps[0, 0] + taps[0, -1] + taps[-1, 0] + taps[-1, -1])
    return float(centre) / kept, corner / kept


def layer_structure(name: str, mask: torch.Tensor) -> LayerStructure:
    """Structure numbers of one layer's mask (shape ``(out, in, *kernel)`` or ``(out, in)``)."""
    m = mask.detach().bool().cpu()
    out_units = m.shape[0]
    in_units = m.shape[1] if m.dim() > 1 else 1
    rows = m.reshape(out_units, -1).any(1)
    cols = m.any(0).reshape(in_units, -1).any(1) if m.dim() > 1 else m.any().reshape(1)
    centre, corner = _kernel_shares(m)
    return LayerStructure(
        name=name,
        kept=int(m.sum()),
        total=m.numel(),
        out_units=out_units,
        in_units=in_units,
        alive_out=int(rows.sum()),
        alive_in=int(cols.sum()),
        kernel_centre=centre,
        kernel_corner=corner,
    )


def mask_structure(masks: Mapping[str, torch.Tensor]) -> list[LayerStructure]:
    """:func:`layer_structure` of every layer, in the masks' order."""
    return [layer_structure(name, m) for name, m in masks.items()]
