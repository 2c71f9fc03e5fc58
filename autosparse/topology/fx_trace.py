"""torch.fx tracing down to the prunable layers, and the failure that sends a model to the chain fallback.

The unit replay needs exactly the prunable modules (and ``nn.MultiheadAttention``, whose two
weights it wires itself) as leaves of the traced graph, and every container that holds one
traced through, so its own tracer decides what a leaf is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import Tensor, fx, nn

from autosparse.core.layers import PRUNABLE_TYPES, PrunableLayer


class Untraceable(Exception):
    """The traced graph contains something the unit replay cannot follow faithfully."""


class _LayerTracer(fx.Tracer):
    """Prunable modules and attention are leaves; anything holding a prunable layer is traced through.

    The default tracer keeps every ``torch.nn`` module as a leaf, which would hide the linears
    inside e.g. ``nn.TransformerEncoderLayer``.
    """

    def __init__(self, containers: set[str]) -> None:
        super().__init__()
        self._containers = containers

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, (*PRUNABLE_TYPES, nn.MultiheadAttention)):
            return True
        if module_qualified_name in self._containers:
            return False
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(
        self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # torch's transformer layers branch on tensor properties to pick a fused fast path; their
        # math-equivalent slow path is traceable, so trace that instead of falling back to a chain.
        if isinstance(m, nn.TransformerEncoderLayer):
            forward = functools.partial(encoder_layer_slow_path, m)
        elif isinstance(m, nn.TransformerEncoder):
            forward = functools.partial(encoder_slow_path, m)
        return super().call_module(m, forward, args, kwargs)


def encoder_layer_slow_path(
    m: nn.TransformerEncoderLayer,
    src: Tensor,
    src_mask: Tensor | None = None,
    src_key_padding_mask: Tensor | None = None,
    is_causal: bool = False,
) -> Tensor:
    x = src
    if m.norm_first:
        x = x + m._sa_block(m.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal)
        return x + m._ff_block(m.norm2(x))
    x = m.norm1(x + m._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal))
    return m.norm2(x + m._ff_block(x))


def encoder_slow_path(
    m: nn.TransformerEncoder,
    src: Tensor,
    mask: Tensor | None = None,
    src_key_padding_mask: Tensor | None = None,
    is_causal: bool | None = None,
) -> Tensor:
    out = src
    for layer in m.layers:
        out = layer(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
    return m.norm(out) if m.norm is not None else out


def trace_layers(model: nn.Module, layers: list[PrunableLayer]) -> fx.GraphModule:
    """Trace ``model`` through every module on the way to a prunable layer (fx errors propagate)."""
    containers = {""}
    for layer in layers:
        parts = layer.module_name.split(".") if layer.module_name else []
        for k in range(len(parts)):
            containers.add(".".join(parts[:k]))
    tracer = _LayerTracer(containers)
    graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph)


def short_error(exc: BaseException, limit: int = 200) -> str:
    """First line of an error, truncated: fx and fake-tensor messages can run to pages in a warning."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
