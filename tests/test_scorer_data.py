"""Which IRP rounds a scorer learns from: only those IMP survived."""

from __future__ import annotations

from autosparse.scorer.data import healthy_rounds


def test_healthy_rounds_stop_at_the_first_collapse() -> None:
    acc = [0.82, 0.83, 0.80, 0.68, 0.56, 0.35]
    assert healthy_rounds(acc, 0.8) == 3  # 0.68 >= 0.656, 0.56 is not
    assert healthy_rounds([0.9, 0.1, 0.9], 0.5) == 0  # the prefix ends at the first collapse
    assert healthy_rounds(acc, 0.0) is None and healthy_rounds([], 0.8) is None
