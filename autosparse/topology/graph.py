"""The network's topology: prunable layers, which feeds which, and the unit graph the GNN runs on.

The GNN scorer and the stored source runs (through :mod:`~autosparse.topology.graph_arrays`) read
one :class:`NetworkGraph` built here, so that "layer 7 feeds layer 9 through a residual add" is
decided once, by tracing, rather than guessed per caller. Path counts, the diagnostics, the
connectivity repair, NPB and DPaI need no graph: they run the model itself
(:mod:`~autosparse.topology.paths`), which also reads the gates and functional ops a unit graph
leaves out.

How it is built
---------------
:func:`trace_graph` traces the model with ``torch.fx`` (prunable modules and
``nn.MultiheadAttention`` are leaves; containers that hold prunable layers are traced through,
``nn.TransformerEncoder(Layer)`` via its math-equivalent non-fused path),
records every intermediate shape by running the traced graph once on an example input (on fake
tensors where possible, so a ResNet-50 costs no convolutions), and then *replays the graph on
unit labels*: every activation is replaced by an integer tensor of the same shape whose entries
say which **set of units** feeds that element (``-1`` = none, e.g. a class token or a constant).
Data-movement ops (view, flatten, permute, cat, chunk, slicing, pixel shuffle, constant pad...)
are applied literally to the labels, so flatten offsets, concat offsets and channel shuffles come
out right without special cases. Element-wise ops (activations, norms, dropout, residual
``add``, gating ``mul``) take the union of their operands' sets; pooling takes the union over
the pooled axes. A prunable layer *reads* the sets along its input axis (channels for conv,
last dimension for linear) and *emits* fresh single-unit sets along its output axis.

When tracing is impossible (data-dependent control flow, ops that mix features without a
prunable weight, such as a raw ``matmul`` attention), a warning is logged and the graph falls
back to a **chain in registration order**: layer k is fed by layer k-1 (input index f of a
layer with ``I`` inputs after a layer with ``P`` outputs maps to unit ``f // (I // P)`` when
``I`` is a multiple of ``P`` -- the flatten case -- and proportionally otherwise). Residual and
concat structure is lost in that case; ``NetworkGraph.traced`` is ``False``.

Modelling choices (documented because the GNN and the diagnostics inherit them)
------------------------------------------------------------------------------
* **Multiplicative interactions are unions.** A squeeze-excite block (MobileNetV3, EfficientNet)
  is ``x * gate(x)``: the SE convs are ordinary layers fed by the block, and their output reaches
  the next prunable layer only through the multiply, where it is unioned with ``x`` channel by
  channel. So the projection conv after an SE block is fed by both the depthwise conv's units
  and the SE's second conv's units (layer edges dw -> project and se.fc2 -> project).
* **nn.MultiheadAttention** is a leaf holding two layers in sequence: ``in_proj_weight``
  (kind ``attention``, ``E -> 3E`` units: q, k, v) reads the union of query/key/value features,
  and ``out_proj.weight`` (kind ``linear``) reads, for input feature ``j``, the three in-proj
  units ``j``, ``E + j``, ``2E + j`` (the value it carries and the query/key that weigh it
  within the same head). Q/K thus stay connected to the rest of the net instead of looking like
  dead ends to path-based diagnostics. ``F.scaled_dot_product_attention`` follows the same rule.
* **Input units**: if every prunable reader of the input reads exactly one input element per
  input index (an MLP on a flattened image), every element is a node (784 for 1x28x28);
  otherwise the input axis whose coordinate is constant per read index is the unit axis
  (channels for a conv net, the feature axis of a sequence). ``NetworkGraph.input_axis`` says
  which (``None`` = elements). ``nn.Embedding`` outputs are extra input nodes.
* A module called several times (shared weights) keeps one set of units; its inputs are merged
  over calls and a warning is logged. A prunable layer never called in the trace keeps its
  units, is fed by nothing and is placed last.

The shapes of the result (node ids, ``in_nodes``, unit edges) are the contract the GNN builds
on; :mod:`autosparse.topology.unit_graph` documents them next to the types. The pieces:
:mod:`~autosparse.topology.fx_trace` (tracing), :mod:`~autosparse.topology.shapes` (shape
recording), :mod:`~autosparse.topology.replay` with :mod:`~autosparse.topology.replay_ops` and
:mod:`~autosparse.topology.labels` (the unit replay), :mod:`~autosparse.topology.assemble`
(final node order) and :mod:`~autosparse.topology.chain` (the fallback).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.core.model_io import model_device, param_dtype
from autosparse.topology.assemble import assemble_graph
from autosparse.topology.chain import chain_graph
from autosparse.topology.fx_trace import Untraceable, short_error, trace_layers
from autosparse.topology.replay import UnitReplay
from autosparse.topology.shapes import record_shapes
from autosparse.topology.unit_graph import LayerInfo, NetworkGraph, UnitEdges

logger = logging.getLogger(__name__)

__all__ = ["LayerInfo", "NetworkGraph", "UnitEdges", "layer_order", "trace_graph"]


def trace_graph(model: nn.Module, input_shape: Iterable[int], *, example_input: Tensor | None = None) -> NetworkGraph:
    """Build the :class:`NetworkGraph` of ``model`` for inputs of one sample of ``input_shape``.

    ``input_shape`` excludes the batch dimension (``(1, 28, 28)``, ``(3, 32, 32)``); a batch of
    one is prepended. Pass ``example_input`` (with its batch dimension) for models whose input is
    not a float tensor, e.g. token ids for an ``nn.Embedding``. The model is not modified; it is
    run once (in eval mode, without gradients, on fake tensors when possible) to learn shapes.
    """
    shape = _check_shape(input_shape)
    layers = prunable_layers(model)
    if example_input is None:
        example_input = torch.zeros((1, *shape), dtype=param_dtype(model), device=model_device(model))
    elif tuple(example_input.shape[1:]) != shape:
        raise ConfigError(
            f"example_input has shape {tuple(example_input.shape)} but input_shape is {shape}; "
            "example_input must be a batch of samples of input_shape"
        )
    try:
        gm = trace_layers(model, layers)
    except Exception as exc:  # fx raises TraceError, TypeError, NotImplementedError, ...
        logger.warning(
            "torch.fx could not trace %s (%s: %s); using the chain-in-registration-order "
            "approximation, which ignores residual and concat connections",
            type(model).__name__,
            type(exc).__name__,
            short_error(exc),
        )
        return chain_graph(layers, shape)
    try:
        shapes = record_shapes(model, gm, example_input)
        replay = UnitReplay(gm, layers, shapes, shape, example_input)
        return assemble_graph(replay, replay.run())
    except Untraceable as exc:
        logger.warning(
            "could not follow units through %s (%s); using the chain-in-registration-order "
            "approximation, which ignores residual and concat connections",
            type(model).__name__,
            exc,
        )
        return chain_graph(layers, shape)


def layer_order(model: nn.Module, input_shape: Iterable[int]) -> list[str]:
    """Prunable parameter names in topological (forward) order."""
    return trace_graph(model, input_shape).names


def _check_shape(input_shape: Iterable[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"input_shape must be a tuple of ints such as (3, 32, 32), got {input_shape!r}") from exc
    if not shape or any(s <= 0 for s in shape):
        raise ConfigError(
            f"input_shape must be a non-empty tuple of positive ints (one sample, no batch dim), got {shape}"
        )
    return shape
