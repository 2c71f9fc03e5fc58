"""Path counts kept as raw float64 numbers and logged only when read: :class:`LogCounts`.

Path counts overflow float64 on deep networks, so :mod:`autosparse.topology.paths` reports them
as natural logs; taking the log of every weight of a large network costs more than the pass that
counted them, and most callers only ask *whether* a count is positive.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch


def log_count(t: torch.Tensor) -> torch.Tensor:
    """Natural log of non-negative counts; exact zeros become ``-inf``, as they should."""
    return torch.log(t.clamp_min(0.0))


class LogCounts(Mapping[str, torch.Tensor]):
    """Per-layer log path counts, taken lazily from the raw (scaled, float64) counts.

    Why lazy: a caller often needs only *which* weights lie on a path (connectivity repair,
    effective-parameter counts), and the log of every weight of an 11M-weight network costs
    more than the pass that counted them. :meth:`positive` answers that from the raw counts;
    the logs are computed, once per layer, on first access.
    """

    def __init__(self, raw: dict[str, tuple[torch.Tensor, torch.Tensor | None]], shift: float) -> None:
        self._raw = raw  # name -> (count, optional factor): the value is log(count * factor) - shift
        self._shift = shift
        self._logs: dict[str, torch.Tensor] = {}

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._logs:
            g, w = self._raw[name]
            self._logs[name] = (log_count(g if w is None else g * w) - self._shift).cpu()
        return self._logs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def positive(self, name: str) -> torch.Tensor:
        """Where the count is non-zero (the log is finite), without taking any log."""
        g, w = self._raw[name]
        return ((g > 0) if w is None else (g * w > 0)).cpu()
