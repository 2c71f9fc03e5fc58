"""Mask structure numbers, checked on masks small enough to count by hand."""

from __future__ import annotations

import pytest
import torch

from autosparse.topology.structure import layer_structure, mask_structure


def test_linear_layer_alive_units_and_fan_in() -> None:
    m = torch.zeros(4, 6, dtype=torch.bool)
    m[0, [0, 1, 2]] = True
    m[2, [2, 5]] = True
    s = layer_structure("fc", m)
    assert (s.kept, s.alive_out, s.alive_in) == (5, 2, 4)
    assert s.fan_in == pytest.approx(2.5)
    assert s.kernel_centre == 1.0 and s.kernel_corner == 0.0


def test_conv_kernel_taps() -> None:
    m = torch.zeros(2, 3, 3, 3, dtype=torch.bool)
    m[0, 0, 1, 1] = True  # centre
    m[0, 1, 0, 0] = True  # corner
    m[1, 2, 0, 1] = True  # edge
    m[1, 2, 2, 2] = True  # corner
    s = layer_structure("conv", m)
    assert (s.alive_out, s.alive_in, s.kept) == (2, 3, 4)
    assert s.kernel_centre == pytest.approx(0.25)
    assert s.kernel_corner == pytest.approx(0.5)


def test_empty_layer_and_order() -> None:
    out = mask_structure({"a": torch.zeros(3, 2, dtype=torch.bool), "b": torch.ones(2, 3, dtype=torch.bool)})
    assert [s.name for s in out] == ["a", "b"]
    assert out[0].fan_in == 0.0 and out[0].alive_out == 0
    assert out[1].as_dict()["density"] == 1.0
