"""The network's topology: prunable layers, which feeds which, and the unit graph the GNN runs on.

Everything topology-aware (the GNN scorer, neuron-level features, SynFlow-style path counts,
effective-path diagnostics) reads one :class:`NetworkGraph` built here, so that "layer 7 feeds
layer 9 through a residual add" is decided once, by tracing, rather than guessed per caller.

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

Shapes (the contract the GNN builds on)
---------------------------------------
Nodes: ``N = num_input_nodes + sum(out_units)``; input nodes first (ids ``0..num_input_nodes-1``),
then each layer's output units contiguously, layers in topological order.

* ``node_layer``: LongTensor (N,), the layer index of each node, ``-1`` for input nodes.
* ``node_unit``: LongTensor (N,), the unit index within its layer (or among the input nodes).
* ``out_nodes[i]``: LongTensor (out_units_i,), node id of each output unit of layer i
  (``weight.shape[0]``; for ``in_proj_weight`` ``3E``).
* ``in_nodes[i]``: LongTensor (2, E_i) of ``(input_index, node_id)`` pairs sorted by input index.
  ``input_index`` runs over the layer's *input units*: ``in_features`` for linear,
  ``in_channels`` for conv (for a grouped conv, ``weight[o, j]`` reads input channel
  ``(o // (out_units // groups)) * (in_units // groups) + j``). One index may be fed by several
  nodes (residual add, SE multiply) and one node may feed several indices (a Linear after
  ``Flatten`` of a ``C x H x W`` map: feature ``f`` is fed by channel ``f // (H*W)``).

:meth:`NetworkGraph.unit_edges` returns a :class:`UnitEdges` at *unit-pair* granularity (never
one edge per weight in trace_graph; for a conv one edge carries a whole kernel):

* ``edge_index``: LongTensor (2, E) of ``(src_node, dst_node)``; edges of layer i are the
  contiguous block ``layer_ptr[i]:layer_ptr[i+1]`` and ``edge_layer`` (E,) repeats i over it.
  Within a layer, an edge is a unique ``(source node, output unit)`` pair, so
  ``E_layer = out_units * |in_nodes[i]|`` (divided by ``groups``).
* ``slice_edge[i]``: LongTensor (2, M_i) of ``(slice_id, edge_id)``. A *slice* is
  ``weight[o, j]`` (``kernel_numel[i]`` elements: the whole kernel of a conv, one element for
  linear); ``slice_id = o * weight.shape[1] + j`` and the weight element with flat index ``e``
  (in ``weight.reshape(-1)``) lies in slice ``e // kernel_numel[i]``. The map is many-to-many:
  several slices share an edge after a flatten; one slice has several edges when its input index
  is fed by a residual sum. :meth:`UnitEdges.weight_edges` expands it to weight elements for one
  layer on request.

Sizes: ResNet-18 (11.7M weights) has 4.0M unit edges, 1.2M with ``max_sources=1``; a linear
layer has one edge per weight anyway, and in a transformer every residual-stream feature is fed
by every earlier writer, so ViT-B/16 has 690M uncapped edges (86M with ``max_sources=1``). Ask
for windows of layers (``unit_edges(layers=[...])``) and/or a cap; :meth:`NetworkGraph.num_unit_edges`
counts without building.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.fx.node import map_aggregate, map_arg

from autosparse.core.errors import ConfigError, UnknownNameError
from autosparse.core.layers import PRUNABLE_TYPES, PrunableLayer, prunable_layers

logger = logging.getLogger(__name__)

__all__ = ["LayerInfo", "NetworkGraph", "UnitEdges", "layer_order", "trace_graph"]


# --------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------


@dataclass
class LayerInfo:
    """One prunable weight as a node of the layer graph."""

    index: int  # position in topological order
    name: str  # qualified parameter name, as in autosparse.core.layers ("layer1.0.conv1.weight")
    module_name: str
    kind: str  # linear | conv | attention
    in_units: int  # input features / channels (the input_index range of in_nodes)
    out_units: int  # output neurons / channels (weight.shape[0])
    kernel: tuple[int, ...]  # () for linear and attention
    groups: int
    depth: int  # longest path in layers from the input; 0 = fed by the input directly
    shape: tuple[int, ...]  # weight shape

    @property
    def kernel_numel(self) -> int:
        return math.prod(self.kernel) if self.kernel else 1


@dataclass
class UnitEdges:
    """Unit-pair edges of a :class:`NetworkGraph` and how weights map onto them (see module doc)."""

    edge_index: Tensor  # (2, E) src node, dst node (global node ids)
    edge_layer: Tensor  # (E,) global layer index of each edge
    layer_ptr: Tensor  # (len(layers) + 1,) edges of layers[k] are layer_ptr[k]:layer_ptr[k+1]
    slice_edge: list[Tensor]  # aligned with layers, (2, M): slice_id, edge id (into this edge list)
    kernel_numel: list[int]  # aligned with layers
    layers: list[int]  # the layer indices covered, in order (all layers unless a window was asked for)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def weight_edges(self, layer: int) -> Tensor:
        """(2, M * K) pairs of (flat weight index, edge id) for one layer (a global layer index).

        Materialised per layer on request only: over a whole ResNet this is one entry per weight
        (or more under residual sums), which is what the GNN's per-weight readout needs but is
        too big to keep for every layer at once.
        """
        pos = self.layers.index(layer)
        k = self.kernel_numel[pos]
        se = self.slice_edge[pos]
        if k == 1:
            return se.clone()
        offs = torch.arange(k)
        elems = (se[0][:, None] * k + offs[None, :]).reshape(-1)
        return torch.stack([elems, se[1].repeat_interleave(k)])


@dataclass
class NetworkGraph:
    """Prunable layers in topological order, the layer DAG and the unit graph (see module doc)."""

    layers: list[LayerInfo]
    layer_edges: list[tuple[int, int]]
    input_layers: list[int]
    output_layers: list[int]
    num_input_nodes: int
    node_layer: Tensor
    node_unit: Tensor
    in_nodes: list[Tensor]
    out_nodes: list[Tensor]
    input_shape: tuple[int, ...]
    input_axis: int | None  # axis of input_shape whose coordinate is the input unit; None = elements
    traced: bool  # False when the chain-in-registration-order fallback was used
    _unit_edges: UnitEdges | None = field(default=None, repr=False, compare=False)

    @property
    def num_nodes(self) -> int:
        return int(self.node_layer.numel())

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def index(self, name: str) -> int:
        """Layer index of a parameter name; raises UnknownNameError with close matches."""
        for layer in self.layers:
            if layer.name == name:
                return layer.index
        raise UnknownNameError("layer", name, self.names, "use a name from NetworkGraph.names")

    def predecessors(self, i: int) -> list[int]:
        return sorted({a for a, b in self.layer_edges if b == i})

    def successors(self, i: int) -> list[int]:
        return sorted({b for a, b in self.layer_edges if a == i})

    def unit_edges(self, layers: Iterable[int] | None = None, *, max_sources: int | None = None) -> UnitEdges:
        """Unit-pair edge list and the weight-slice -> edge map (see the module doc for shapes).

        ``layers`` restricts it to a window of layer indices (edge ids are then local to the
        window; node ids stay global), which is how a GNN batches a big network. ``max_sources``
        keeps, per input index, only the nearest that many feeding nodes (deepest layer first):
        in a transformer every residual-stream feature is fed by every earlier writer, so the
        faithful edge count grows with depth squared (690M for ViT-B/16; see
        :meth:`num_unit_edges`). The full, uncapped graph is cached after the first call.
        """
        full = layers is None and max_sources is None
        if full and self._unit_edges is not None:
            return self._unit_edges
        chosen = list(range(len(self.layers))) if layers is None else [int(i) for i in layers]
        result = _build_unit_edges(self, chosen, max_sources)
        if full:
            self._unit_edges = result
        return result

    def num_unit_edges(self, layers: Iterable[int] | None = None, *, max_sources: int | None = None) -> int:
        """How many edges :meth:`unit_edges` would build, without building them."""
        chosen = range(len(self.layers)) if layers is None else layers
        total = 0
        for i in chosen:
            info = self.layers[i]
            pairs = _cap_sources(self, self.in_nodes[i], max_sources)
            g = pairs[0] // (info.in_units // info.groups)
            total += int(torch.unique(g * max(self.num_nodes, 1) + pairs[1]).numel()) * (info.out_units // info.groups)
        return total

    def describe(self) -> str:
        """One line per layer (index, depth, shape, feeders) for logs and the CLI."""
        lines = [
            f"{len(self.layers)} prunable layers, {self.num_nodes} unit nodes "
            f"({self.num_input_nodes} input){'' if self.traced else ' [chain fallback: not traced]'}"
        ]
        preds: dict[int, list[int]] = {i: [] for i in range(len(self.layers))}
        for a, b in self.layer_edges:
            preds[b].append(a)
        for layer in self.layers:
            src = ["input"] if layer.index in self.input_layers else []
            src += [str(p) for p in sorted(preds[layer.index])]
            lines.append(
                f"{layer.index:>4} d={layer.depth:<3} {layer.name:<50} {tuple(layer.shape)!s:<22} <- {', '.join(src)}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


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
        example_input = torch.zeros((1, *shape), dtype=_float_dtype(model), device=_device(model))
    elif tuple(example_input.shape[1:]) != shape:
        raise ConfigError(
            f"example_input has shape {tuple(example_input.shape)} but input_shape is {shape}; "
            "example_input must be a batch of samples of input_shape"
        )
    try:
        gm = _trace(model, layers)
    except Exception as exc:  # fx raises TraceError, TypeError, NotImplementedError, ...
        logger.warning(
            "torch.fx could not trace %s (%s: %s); using the chain-in-registration-order "
            "approximation, which ignores residual and concat connections",
            type(model).__name__,
            type(exc).__name__,
            _short(exc),
        )
        return _chain_graph(layers, shape)
    try:
        shapes = _record_shapes(model, gm, example_input)
        return _Replay(gm, layers, shapes, shape, example_input).run()
    except _Untraceable as exc:
        logger.warning(
            "could not follow units through %s (%s); using the chain-in-registration-order "
            "approximation, which ignores residual and concat connections",
            type(model).__name__,
            exc,
        )
        return _chain_graph(layers, shape)


def layer_order(model: nn.Module, input_shape: Iterable[int]) -> list[str]:
    """Prunable parameter names in topological (forward) order."""
    return trace_graph(model, input_shape).names


# --------------------------------------------------------------------------------------------
# Tracing and shape recording
# --------------------------------------------------------------------------------------------


class _Untraceable(Exception):
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
            forward = functools.partial(_encoder_layer_slow_path, m)
        elif isinstance(m, nn.TransformerEncoder):
            forward = functools.partial(_encoder_slow_path, m)
        return super().call_module(m, forward, args, kwargs)


def _encoder_layer_slow_path(
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


def _encoder_slow_path(
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


def _trace(model: nn.Module, layers: list[PrunableLayer]) -> fx.GraphModule:
    containers = {""}
    for layer in layers:
        parts = layer.module_name.split(".") if layer.module_name else []
        for k in range(len(parts)):
            containers.add(".".join(parts[:k]))
    tracer = _LayerTracer(containers)
    graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph)


_NOT_TENSOR = object()


def _record_shapes(model: nn.Module, gm: fx.GraphModule, example: Tensor) -> dict[fx.Node, Any]:
    """Shape (or nested structure of shapes) of every node's value, from one forward pass.

    Fake tensors first (no arithmetic; a ResNet-50 at 224px takes a fraction of a second), real
    tensors if some op has no fake kernel. If even that fails the input shape is wrong for the
    model -- a user error, reported with the fix.
    """
    shapes: dict[fx.Node, Any] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            result = super().run_node(n)
            shapes[n] = _shape_tree(result)
            return result

    modes = {m: m.training for m in model.modules()}
    # forward pre-hooks (torch pruning's weight = weight_orig * weight_mask) write plain tensor
    # attributes; running them on fake tensors or under no_grad must not leave those behind
    attrs = {m: {k: v for k, v in vars(m).items() if isinstance(v, Tensor)} for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            try:
                from torch._subclasses.fake_tensor import FakeTensorMode

                with FakeTensorMode(allow_non_fake_inputs=True) as mode:
                    Recorder(gm).run(mode.from_tensor(example))
                return shapes
            except Exception as exc:  # a missing fake kernel is not the user's problem
                logger.debug("fake-tensor shape pass failed (%s); running real tensors", _short(exc))
                shapes.clear()
            try:
                Recorder(gm).run(example)
            except Exception as exc:
                try:
                    model(example)
                except Exception:
                    pass
                else:  # the model runs, its traced graph does not: a tracing limitation, not the user's error
                    raise _Untraceable(f"the traced graph fails to run ({_short(exc)})") from exc
                raise ConfigError(
                    f"{type(model).__name__} cannot run on an input of shape {tuple(example.shape)} "
                    f"({type(exc).__name__}: {_short(exc)}); pass the shape of ONE sample without the batch "
                    "dimension, e.g. input_shape=(3, 32, 32) for CIFAR or (1, 28, 28) for MNIST"
                ) from exc
    finally:
        for m, was_training in modes.items():
            m.training = was_training
        for m, saved in attrs.items():
            for k, v in saved.items():
                setattr(m, k, v)
    return shapes


# --------------------------------------------------------------------------------------------
# Op tables for the replay
# --------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


def _fns(mod: Any, names: Iterable[str]) -> set[Callable[..., Any]]:
    return {f for f in (getattr(mod, n, None) for n in names) if f is not None}


_MOVE_NAMES = _words(
    "flatten unflatten reshape view view_as reshape_as permute transpose swapaxes swapdims movedim moveaxis "
    "squeeze unsqueeze cat concat concatenate stack hstack vstack chunk split tensor_split unbind narrow select "
    "flip roll t expand expand_as broadcast_to repeat tile repeat_interleave contiguous"
)
_MOVE_FUNCS = _fns(torch, _MOVE_NAMES) | _fns(F, ["pixel_shuffle", "pixel_unshuffle", "channel_shuffle"])
_MOVE_FUNCS |= _fns(torch, ["pixel_shuffle", "pixel_unshuffle", "channel_shuffle"]) | {operator.getitem, getattr}
_MOVE_METHODS = set(_MOVE_NAMES)

_POOL_NAMES = [
    f"{p}{d}d" for p in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool", "lp_pool") for d in (1, 2, 3)
]
_RESAMPLE_FUNCS = _fns(F, [*_POOL_NAMES, "interpolate", "upsample", "upsample_nearest", "upsample_bilinear"])
_RESAMPLE_FUNCS |= _fns(torch, _POOL_NAMES)
_REDUCE_NAMES = _words("mean sum amax amin max min std var norm logsumexp prod nansum nanmean")
_REDUCE_FUNCS = _fns(torch, _REDUCE_NAMES)
_REDUCE_METHODS = set(_REDUCE_NAMES)
_MIX_NAMES = _words("matmul mm bmm einsum baddbmm addmm addbmm tensordot inner outer kron")
_MIX_FUNCS = _fns(torch, _MIX_NAMES) | _fns(F, ["linear", "bilinear", "conv1d", "conv2d", "conv3d"])
_MIX_FUNCS |= _fns(F, ["conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "embedding"]) | {operator.matmul}
_MIX_METHODS = {*_MIX_NAMES, "__matmul__", "index_select", "gather", "take", "scatter", "masked_select"}
_CONST_FUNCS = _fns(torch, ["zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like"])
_CONST_FUNCS |= _fns(torch, ["randint_like"])
_CONST_METHODS = {"new_zeros", "new_ones", "new_full", "new_empty", "new_tensor"}
_SETITEM = {operator.setitem}

_RESAMPLE_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.pooling._LPPoolNd,
    nn.Upsample,
    nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd,
)
_MOVE_MODULES: tuple[type[nn.Module], ...] = (
    nn.Flatten,
    nn.Unflatten,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.ChannelShuffle,
)
_MIX_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.Bilinear,
    nn.RNNBase,
    nn.RNNCellBase,
    nn.Transformer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
)


# --------------------------------------------------------------------------------------------
# The replay
# --------------------------------------------------------------------------------------------


@dataclass
class _LayerState:
    layer: PrunableLayer
    first_call: int
    out_start: int  # provisional node id of unit 0
    out_slots: Tensor  # slot of each output unit
    in_pairs: list[Tensor] = field(default_factory=list)
    calls: int = 0


class _Replay:
    """Runs the traced graph on unit-set labels instead of activations (see module doc).

    A *slot* is an interned set of provisional node ids; label tensors hold slot ids. Provisional
    nodes are ``[0, numel)`` for the input elements, then blocks allocated as layers and
    embeddings are first called; :meth:`_finish` collapses input elements to the chosen input
    granularity and renumbers everything into the final node order.
    """

    def __init__(
        self,
        gm: fx.GraphModule,
        layers: list[PrunableLayer],
        shapes: dict[fx.Node, Any],
        input_shape: tuple[int, ...],
        example: Tensor,
    ) -> None:
        self.gm = gm
        self.layers = layers
        self.shapes = shapes
        self.input_shape = input_shape
        self.example = example
        self.by_module: dict[int, list[PrunableLayer]] = {}
        for layer in layers:
            self.by_module.setdefault(id(layer.module), []).append(layer)
        self.slot_nodes: list[tuple[int, ...]] = []
        self.slot_of: dict[tuple[int, ...], int] = {}
        self.union_cache: dict[tuple[int, int], int] = {}
        self.num_prov = 0
        self.states: dict[str, _LayerState] = {}
        self.embeds: list[tuple[int, int]] = []  # (start, count) provisional blocks of embedding units
        self.embed_of: dict[int, Tensor] = {}
        self.n_elem = 0

    # -- slots ---------------------------------------------------------------------------------

    def _intern(self, nodes: tuple[int, ...]) -> int:
        slot = self.slot_of.get(nodes)
        if slot is None:
            slot = len(self.slot_nodes)
            self.slot_nodes.append(nodes)
            self.slot_of[nodes] = slot
        return slot

    def _new_units(self, count: int) -> tuple[int, Tensor]:
        """Allocate ``count`` provisional nodes, each with its own singleton slot."""
        start = self.num_prov
        self.num_prov += count
        singles = [(start + k,) for k in range(count)]  # fresh nodes: these sets cannot exist yet
        first = len(self.slot_nodes)
        self.slot_nodes.extend(singles)
        self.slot_of.update(zip(singles, range(first, first + count), strict=True))
        return start, torch.arange(first, first + count)

    def _union_slots(self, a: int, b: int) -> int:
        if a < 0 or a == b:
            return b
        if b < 0:
            return a
        key = (a, b) if a < b else (b, a)
        slot = self.union_cache.get(key)
        if slot is None:
            slot = self._intern(tuple(sorted(set(self.slot_nodes[a]) | set(self.slot_nodes[b]))))
            self.union_cache[key] = slot
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

    # -- label tensors -------------------------------------------------------------------------

    # Label tensors are kept as broadcast views (``compact.expand(shape)``) of a compact tensor
    # that is size 1 along every axis the labels do not vary on: a conv's output labels vary along
    # channels only, so unions, reads and reductions work on C values instead of C*H*W.

    @staticmethod
    def _blank(shape: tuple[int, ...]) -> Tensor:
        return torch.full((), -1, dtype=torch.long).expand(shape)

    @staticmethod
    def _compact(t: Tensor) -> Tensor:
        """The smallest tensor that broadcasts back to ``t`` (via ``expand``), without copying."""
        for a in range(t.dim()):
            if t.stride(a) == 0 and t.shape[a] > 1:
                t = t.narrow(a, 0, 1)
        return t

    @staticmethod
    def _recompact(t: Tensor) -> Tensor:
        """Re-detect constant axes of a materialised label tensor (after a literal op) and re-broadcast."""
        shape = tuple(t.shape)
        for a in range(t.dim()):
            if t.shape[a] > 1:
                first = t.narrow(a, 0, 1)
                if torch.equal(first.expand_as(t), t):
                    t = first
        return t.expand(shape)

    def _has_units(self, t: Any) -> bool:
        if not isinstance(t, Tensor) or t.numel() == 0:
            return False
        return bool((self._compact(t) >= 0).any())

    def _emit(self, slots: Tensor, axis: int, shape: tuple[int, ...]) -> Tensor:
        axis = axis % len(shape)
        if shape[axis] != slots.numel():
            raise _Untraceable(f"output axis {axis} of shape {shape} does not have {slots.numel()} units")
        view = [1] * len(shape)
        view[axis] = slots.numel()
        return slots.reshape(view).expand(shape)

    def _union(self, tensors: list[Tensor], shape: tuple[int, ...]) -> Tensor:
        parts = [self._compact(t) for t in tensors if self._has_units(t)]
        if not parts:
            return self._blank(shape)
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

    def _reduce(self, x: Tensor, axes: Iterable[int]) -> Tensor:
        """Union over ``axes``, keeping them with size 1."""
        full = list(x.shape)
        axes = sorted({a % x.dim() for a in axes})
        for a in axes:
            full[a] = 1
        x = self._compact(x)
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

    def _read(self, x: Tensor, axis: int) -> Tensor:
        """(2, P) unique (index along ``axis``, provisional node) pairs: what a layer reading ``x`` sees."""
        if x.dim() == 0:
            raise _Untraceable("a prunable layer reads a scalar")
        axis = axis % x.dim()
        n = x.shape[axis]
        c = self._compact(x)
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
            return _unique_pairs(idx, nodes)
        ptr = torch.cumsum(lens, 0) - lens
        flat_nodes = torch.tensor([v for m in members for v in m], dtype=torch.long)
        rep = lens[inv]
        within = torch.arange(int(rep.sum())) - torch.repeat_interleave(torch.cumsum(rep, 0) - rep, rep)
        nodes = flat_nodes[torch.repeat_interleave(ptr[inv], rep) + within]
        return _unique_pairs(torch.repeat_interleave(idx, rep), nodes)

    # -- running -------------------------------------------------------------------------------

    def run(self) -> NetworkGraph:
        env: dict[fx.Node, Any] = {}
        first_placeholder = True
        output: Any = None
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                if first_placeholder:
                    first_placeholder = False
                    env[n] = self._input_labels()
                else:
                    default = n.args[0] if n.args else None
                    env[n] = self._blank(tuple(default.shape)) if isinstance(default, Tensor) else default
            elif n.op == "get_attr":
                value: Any = self.gm
                for part in str(n.target).split("."):
                    value = getattr(value, part)
                env[n] = self._blank(tuple(value.shape)) if isinstance(value, Tensor) else value
            elif n.op == "output":
                output = map_arg(n.args[0], lambda a: env[a])
            else:
                args = map_arg(n.args, lambda a: env[a])
                kwargs = map_arg(n.kwargs, lambda a: env[a])
                result = self._node(n, args, kwargs)
                self._check(n, result)
                env[n] = result
                target = str(n.target)
                inplace = n.op == "call_method" and target.endswith("_") and not target.startswith("__")
                if inplace and isinstance(n.args[0], fx.Node) and isinstance(result, Tensor):
                    env[n.args[0]] = result  # x.add_(y): later users of x see the mutated value
        return self._finish(output)

    def _input_labels(self) -> Tensor:
        if not self.example.is_floating_point():
            return self._blank(tuple(self.example.shape))  # token ids: units come from the embedding
        self.n_elem = int(self.example[0].numel())
        _, slots = self._new_units(self.n_elem)  # the first provisional nodes: ids 0..n_elem-1
        return slots.reshape(self.example.shape[1:]).unsqueeze(0).expand(self.example.shape)

    def _check(self, n: fx.Node, result: Any) -> None:
        expected = self.shapes.get(n, _NOT_TENSOR)

        def walk(exp: Any, got: Any) -> None:
            if isinstance(exp, tuple) and all(isinstance(v, int) for v in exp):
                if not isinstance(got, Tensor) or tuple(got.shape) != exp:
                    raise _Untraceable(f"node {n.format_node()} gave labels of the wrong shape")
            elif isinstance(exp, (tuple, list)) and isinstance(got, (tuple, list)) and len(exp) == len(got):
                for e, g in zip(exp, got, strict=True):
                    walk(e, g)
            elif isinstance(exp, dict) and isinstance(got, dict):
                for k in exp:
                    walk(exp[k], got.get(k))

        walk(expected, result)

    def _node(self, n: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        expected = self.shapes.get(n, _NOT_TENSOR)
        if n.op == "call_module":
            return self._module(n, self.gm.get_submodule(str(n.target)), args, kwargs, expected)
        target = n.target
        is_method = n.op == "call_method"
        if not _contains_shape(expected):  # sizes, dims, asserts: the labels have the activations' shapes
            return self._literal(target, args, kwargs, is_method, materialise=False)
        inputs = [t for t in _tensors(args, kwargs) if self._has_units(t)]
        if not inputs:
            return _map_shapes(expected, self._blank)
        name = target if is_method else getattr(target, "__name__", str(target))
        if (target in _CONST_FUNCS) if not is_method else (target in _CONST_METHODS):
            return _map_shapes(expected, self._blank)
        if (target in _MIX_METHODS) if is_method else (target in _MIX_FUNCS):
            raise _Untraceable(f"{name} mixes features without a prunable weight")
        if target in _SETITEM:
            raise _Untraceable("item assignment cannot be followed")
        if (target in _MOVE_METHODS) if is_method else (target in _MOVE_FUNCS):
            if target is operator.getitem and any(isinstance(i, Tensor) for i in _index_items(args[1])):
                raise _Untraceable("indexing with a tensor cannot be followed")
            return self._literal(target, args, kwargs, is_method)
        if not is_method and target is F.pad:
            return self._pad(args, kwargs, expected)
        if not is_method and target in _RESAMPLE_FUNCS:
            return self._resample(inputs[0], expected, n)
        if (target in _REDUCE_METHODS) if is_method else (target in _REDUCE_FUNCS):
            reduced = self._reduction(args, kwargs, expected)
            if reduced is not None:
                return reduced
        if not is_method and target is getattr(F, "scaled_dot_product_attention", None):
            return self._sdpa(args, kwargs, expected)
        if _is_shape(expected):
            shapes = [tuple(t.shape) for t in inputs]
            try:
                if tuple(torch.broadcast_shapes(*shapes)) == expected:
                    return self._union(inputs, expected)
            except RuntimeError:
                pass
        raise _Untraceable(f"op {name} changes the shape in a way the unit replay does not know")

    @staticmethod
    def _literal(
        target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], is_method: bool, *, materialise: bool = True
    ) -> Any:
        if materialise:  # views of broadcast labels cannot always be reshaped in place
            args = map_aggregate(args, lambda a: a.contiguous() if isinstance(a, Tensor) else a)
            kwargs = map_aggregate(kwargs, lambda a: a.contiguous() if isinstance(a, Tensor) else a)
        try:
            if is_method:
                result = getattr(args[0], target)(*args[1:], **kwargs)
            else:
                result = target(*args, **kwargs)
        except Exception as exc:
            raise _Untraceable(f"{target} failed on unit labels ({_short(exc)})") from exc
        return _map_tensors(result, _Replay._recompact)

    def _pad(self, args: tuple[Any, ...], kwargs: dict[str, Any], expected: tuple[int, ...]) -> Tensor:
        bound = inspect.signature(_pad_signature).bind(*args, **kwargs)
        mode = bound.arguments.get("mode", "constant")
        x = bound.arguments["input"]
        if mode == "constant":  # literal, with "no unit" as the fill value (option-A ResNet shortcuts)
            return self._recompact(F.pad(x.contiguous(), bound.arguments["pad"], mode="constant", value=-1))
        return self._resample(x, expected, None)

    def _resample(self, x: Tensor, expected: tuple[int, ...], n: fx.Node | None) -> Tensor:
        if x.dim() != len(expected):
            raise _Untraceable(f"resampling {n.format_node() if n else 'op'} changes the rank")
        axes = [a for a in range(x.dim()) if x.shape[a] != expected[a]]
        return self._reduce(x, axes).expand(expected)

    def _reduction(self, args: tuple[Any, ...], kwargs: dict[str, Any], expected: Any) -> Any:
        x = args[0]
        dim = kwargs.get("dim", kwargs.get("axis", args[1] if len(args) > 1 else None))
        if isinstance(dim, Tensor):
            return None  # torch.max(a, b): element-wise, handled as a union
        if dim is None:
            axes = list(range(x.dim()))
        elif isinstance(dim, int):
            axes = [dim]
        elif isinstance(dim, (tuple, list)) and all(isinstance(d, int) for d in dim):
            axes = list(dim)
        else:
            return None
        reduced = self._reduce(x, axes)
        if _is_shape(expected):
            return reduced.reshape(expected)
        if isinstance(expected, tuple) and expected and _is_shape(expected[0]):  # (values, indices)
            return (reduced.reshape(expected[0]), *[_map_shapes(s, self._blank) for s in expected[1:]])
        return None

    def _sdpa(self, args: tuple[Any, ...], kwargs: dict[str, Any], expected: Any) -> Tensor:
        q = kwargs.get("query", args[0] if args else None)
        k = kwargs.get("key", args[1] if len(args) > 1 else None)
        v = kwargs.get("value", args[2] if len(args) > 2 else None)
        parts = [self._reduce(t, [-2]) for t in (q, k, v) if isinstance(t, Tensor) and t.dim() >= 2]
        return self._union(parts, expected)

    # -- modules -------------------------------------------------------------------------------

    def _module(self, n: fx.Node, mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], expected: Any) -> Any:
        if isinstance(mod, nn.MultiheadAttention):
            return self._attention(mod, args, kwargs, expected)
        if id(mod) in self.by_module:
            (layer,) = self.by_module[id(mod)]
            x = args[0] if args else kwargs.get("input")
            if not isinstance(x, Tensor) or not _is_shape(expected):
                raise _Untraceable(f"{layer.module_name} is not called on one tensor")
            axis = -1 if layer.kind == "linear" else (1 if x.dim() == _conv_rank(mod) + 2 else 0)
            pairs = self._read(x, axis)
            state = self._layer_call(layer, pairs, x.shape[axis])
            out_axis = -1 if layer.kind == "linear" else axis
            return self._emit(state.out_slots, out_axis, expected)
        if isinstance(mod, (nn.Embedding, nn.EmbeddingBag)):
            if id(mod) not in self.embed_of:
                start, slots = self._new_units(mod.embedding_dim)
                self.embeds.append((start, mod.embedding_dim))
                self.embed_of[id(mod)] = slots
            return self._emit(self.embed_of[id(mod)], -1, expected)
        if not _contains_shape(expected):
            return self._literal_module(mod, args, kwargs)
        inputs = [t for t in _tensors(args, kwargs) if self._has_units(t)]
        if not inputs:
            return _map_shapes(expected, self._blank)
        if isinstance(mod, _MIX_MODULES):
            raise _Untraceable(f"{type(mod).__name__} {n.target} mixes features without a prunable weight")
        if isinstance(mod, _MOVE_MODULES):
            return self._literal_module(mod, args, kwargs)
        if isinstance(mod, nn.modules.padding._ConstantPadNd):
            return self._recompact(F.pad(inputs[0].contiguous(), mod.padding, mode="constant", value=-1))
        if isinstance(mod, _RESAMPLE_MODULES) and _is_shape(expected):
            return self._resample(inputs[0], expected, n)
        if _is_shape(expected):
            try:
                if tuple(torch.broadcast_shapes(*[tuple(t.shape) for t in inputs])) == expected:
                    return self._union(inputs, expected)  # norms, activations, dropout, identity
            except RuntimeError:
                pass
            x = inputs[0]
            if x.dim() == len(expected) and x.dim() >= 3 and x.shape[:2] == expected[:2]:
                logger.debug("treating %s (%s) as spatial resampling", n.target, type(mod).__name__)
                return self._resample(x, expected, n)
        raise _Untraceable(f"module {n.target} ({type(mod).__name__}) changes the shape in an unknown way")

    @staticmethod
    def _literal_module(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        args = map_aggregate(args, lambda a: a.contiguous() if isinstance(a, Tensor) else a)
        try:
            result = mod(*args, **kwargs)
        except Exception as exc:
            raise _Untraceable(f"{type(mod).__name__} failed on unit labels ({_short(exc)})") from exc
        return _map_tensors(result, _Replay._recompact)

    def _layer_call(self, layer: PrunableLayer, pairs: Tensor, n_in: int) -> _LayerState:
        expected_in = _in_units(layer)
        if n_in != expected_in:
            raise _Untraceable(f"{layer.name} reads {n_in} input units but its weight has {expected_in}")
        state = self.states.get(layer.name)
        if state is None:
            start, slots = self._new_units(int(layer.shape[0]))
            state = _LayerState(layer, len(self.states), start, slots)
            self.states[layer.name] = state
        state.in_pairs.append(pairs)
        state.calls += 1
        return state

    def _attention(
        self, mod: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any], expected: Any
    ) -> Any:
        bound = inspect.signature(mod.forward).bind(*args, **kwargs)
        q, k, v = (bound.arguments[a] for a in ("query", "key", "value"))
        e = mod.embed_dim
        owned = {layer.param_name: layer for layer in self.by_module[id(mod)]}
        in_proj = owned.get("in_proj_weight")
        out_proj = next(layer for layer in self.layers if layer.module is mod.out_proj)
        if in_proj is not None:
            pairs = torch.cat([self._read(t, -1) for t in (q, k, v)], dim=1)
            in_state = self._layer_call(in_proj, _unique_pairs(pairs[0], pairs[1]), q.shape[-1])
            j = torch.arange(e)
            base = in_state.out_start
            idx = j.repeat(3)
            nodes = torch.cat([base + j, base + e + j, base + 2 * e + j])
            out_pairs = _unique_pairs(idx, nodes)
        else:  # separate q/k/v projections are not prunable here: the query features feed out_proj
            out_pairs = self._read(q, -1)
        out_state = self._layer_call(out_proj, out_pairs, e)
        if _is_shape(expected):  # a subclass returning the output alone
            return self._emit(out_state.out_slots, -1, expected)
        out = self._emit(out_state.out_slots, -1, expected[0])
        return (out, *[_map_shapes(s, self._blank) for s in expected[1:]])

    # -- assembling the result -----------------------------------------------------------------

    def _finish(self, output: Any) -> NetworkGraph:
        called = sorted(self.states.values(), key=lambda s: s.first_call)
        order = [s.layer for s in called]
        state_by_name = dict(self.states)
        uncalled = [layer for layer in self.layers if layer.name not in state_by_name]
        for layer in uncalled:
            logger.warning("prunable layer %s is never called in the forward pass; it is fed by nothing", layer.name)
            start, slots = self._new_units(int(layer.shape[0]))
            state_by_name[layer.name] = _LayerState(layer, 1 << 30, start, slots)
            order.append(layer)
        for s in called:
            if s.calls > 1:
                logger.warning(
                    "%s is called %d times (shared weights); its inputs are merged over calls", s.layer.name, s.calls
                )

        in_pairs = {
            name: (torch.cat(s.in_pairs, dim=1) if s.in_pairs else torch.empty(2, 0, dtype=torch.long))
            for name, s in state_by_name.items()
        }
        elem_map, n_placeholder, input_axis = self._input_granularity(in_pairs)

        # provisional -> final node ids
        n_embed = sum(c for _, c in self.embeds)
        n_input = n_placeholder + n_embed
        final = torch.full((self.num_prov,), -1, dtype=torch.long)
        if self.n_elem and elem_map is not None:
            final[: self.n_elem] = elem_map
        offset = n_placeholder
        for start, count in self.embeds:
            final[start : start + count] = torch.arange(offset, offset + count)
            offset += count
        node_layer = [torch.full((n_input,), -1, dtype=torch.long)]
        node_unit = [torch.arange(n_input)]
        out_nodes: list[Tensor] = []
        for i, layer in enumerate(order):
            s = state_by_name[layer.name]
            count = int(layer.shape[0])
            final[s.out_start : s.out_start + count] = torch.arange(offset, offset + count)
            out_nodes.append(torch.arange(offset, offset + count))
            node_layer.append(torch.full((count,), i, dtype=torch.long))
            node_unit.append(torch.arange(count))
            offset += count
        node_layer_t = torch.cat(node_layer)
        in_nodes = []
        for layer in order:
            p = in_pairs[layer.name]
            mapped = final[p[1]]
            keep = mapped >= 0
            in_nodes.append(_unique_pairs(p[0][keep], mapped[keep]))

        edges: set[tuple[int, int]] = set()
        input_layers = []
        for j, pairs in enumerate(in_nodes):
            src = node_layer_t[pairs[1]].unique().tolist()
            if -1 in src:
                input_layers.append(j)
            edges.update((a, j) for a in src if a >= 0)
        out_slots = {s for t in _tensors(output, {}) for s in self._compact(t).unique().tolist() if s >= 0}
        out_prov = torch.tensor(sorted({v for s in out_slots for v in self.slot_nodes[s]}), dtype=torch.long)
        out_final = final[out_prov]
        out_layers = {v for v in node_layer_t[out_final[out_final >= 0]].unique().tolist() if v >= 0}

        depth = [0] * len(order)
        for j in range(len(order)):  # topological order: predecessors first (back edges of shared layers ignored)
            preds = [a for a, b in edges if b == j and a < j]
            depth[j] = 1 + max(depth[a] for a in preds) if preds else 0
        infos = [_layer_info(i, layer, depth[i]) for i, layer in enumerate(order)]
        return NetworkGraph(
            layers=infos,
            layer_edges=sorted(edges),
            input_layers=input_layers,
            output_layers=sorted(out_layers),
            num_input_nodes=n_input,
            node_layer=node_layer_t,
            node_unit=torch.cat(node_unit),
            in_nodes=in_nodes,
            out_nodes=out_nodes,
            input_shape=self.input_shape,
            input_axis=input_axis,
            traced=True,
        )

    def _input_granularity(self, in_pairs: dict[str, Tensor]) -> tuple[Tensor | None, int, int | None]:
        """Map input elements to input nodes: elements if each read index sees one, else an axis."""
        if not self.n_elem:
            return None, 0, None
        reads = []
        for p in in_pairs.values():
            m = p[1] < self.n_elem
            if bool(m.any()):
                reads.append((p[0][m], p[1][m]))
        elems = torch.arange(self.n_elem)
        if not reads:
            return None, 0, None
        if all(int(torch.bincount(idx).max()) == 1 for idx, _ in reads):
            return elems, self.n_elem, None
        shape = self.input_shape
        for axis in range(len(shape)):
            stride = math.prod(shape[axis + 1 :])
            ok = True
            for idx, el in reads:
                coord = (el // stride) % shape[axis]
                size = int(idx.max()) + 1
                lo = torch.full((size,), 1 << 40, dtype=torch.long).scatter_reduce(0, idx, coord, "amin")
                hi = torch.full((size,), -1, dtype=torch.long).scatter_reduce(0, idx, coord, "amax")
                seen = hi >= 0
                if not torch.equal(lo[seen], hi[seen]):
                    ok = False
                    break
            if ok:
                return (elems // stride) % shape[axis], shape[axis], axis
        if self.n_elem <= 1 << 16:
            logger.warning("no input axis is read consistently; every input element is a node")
            return elems, self.n_elem, None
        raise _Untraceable("the input is read along no consistent axis")


# --------------------------------------------------------------------------------------------
# Fallback, unit edges and helpers
# --------------------------------------------------------------------------------------------


def _chain_graph(layers: list[PrunableLayer], input_shape: tuple[int, ...]) -> NetworkGraph:
    """Registration order as a chain: the documented approximation for untraceable models."""
    n_input = _in_units(layers[0])
    offset = n_input
    out_nodes, in_nodes = [], []
    node_layer = [torch.full((n_input,), -1, dtype=torch.long)]
    node_unit = [torch.arange(n_input)]
    prev_nodes = torch.arange(n_input)
    for i, layer in enumerate(layers):
        n_out = int(layer.shape[0])
        n_in = _in_units(layer)
        prev = layers[i - 1] if i else None
        if prev is not None and prev.kind == "attention" and layer.module_name == prev.module_name + ".out_proj":
            e = n_in
            j = torch.arange(e)
            idx, nodes = j.repeat(3), torch.cat([prev_nodes[j], prev_nodes[e + j], prev_nodes[2 * e + j]])
        else:
            p = prev_nodes.numel()
            f = torch.arange(n_in)
            src = f // (n_in // p) if n_in % p == 0 else (f * p) // n_in
            idx, nodes = f, prev_nodes[src.clamp(max=p - 1)]
        in_nodes.append(_unique_pairs(idx, nodes))
        prev_nodes = torch.arange(offset, offset + n_out)
        out_nodes.append(prev_nodes)
        node_layer.append(torch.full((n_out,), i, dtype=torch.long))
        node_unit.append(torch.arange(n_out))
        offset += n_out
    return NetworkGraph(
        layers=[_layer_info(i, layer, i) for i, layer in enumerate(layers)],
        layer_edges=[(i - 1, i) for i in range(1, len(layers))],
        input_layers=[0],
        output_layers=[len(layers) - 1],
        num_input_nodes=n_input,
        node_layer=torch.cat(node_layer),
        node_unit=torch.cat(node_unit),
        in_nodes=in_nodes,
        out_nodes=out_nodes,
        input_shape=input_shape,
        input_axis=_chain_input_axis(layers[0], input_shape),
        traced=False,
    )


def _chain_input_axis(first: PrunableLayer, shape: tuple[int, ...]) -> int | None:
    n_in = _in_units(first)
    if first.kind == "conv" and len(shape) > 1 and shape[0] == n_in:
        return 0
    if n_in == math.prod(shape) or len(shape) == 1:
        return None
    return len(shape) - 1 if shape[-1] == n_in else None


def _cap_sources(graph: NetworkGraph, pairs: Tensor, max_sources: int | None) -> Tensor:
    """Keep, per input index, the ``max_sources`` feeding nodes of the deepest layers."""
    if max_sources is None or pairs.shape[1] == 0:
        return pairs
    if max_sources < 1:
        raise ConfigError(f"max_sources must be a positive int or None, got {max_sources}")
    depth = torch.tensor([-1] + [layer.depth for layer in graph.layers], dtype=torch.long)
    owner = graph.node_layer[pairs[1]]
    nearness = depth[owner + 1] * (len(graph.layers) + 1) + owner + 1  # deeper, then later, is nearer
    top = int(nearness.max()) + 1
    order = torch.argsort(pairs[0] * top + (top - 1 - nearness), stable=True)
    idx = pairs[0][order]
    starts = torch.ones_like(idx, dtype=torch.bool)
    starts[1:] = idx[1:] != idx[:-1]
    group_start = torch.cummax(torch.where(starts, torch.arange(idx.numel()), 0), 0).values
    rank = torch.arange(idx.numel()) - group_start
    kept = order[rank < max_sources]
    return pairs[:, kept.sort().values]


def _build_unit_edges(graph: NetworkGraph, chosen: list[int], max_sources: int | None) -> UnitEdges:
    n = max(graph.num_nodes, 1)
    srcs, dsts, layer_ids, slice_edges = [], [], [], []
    ptr = [0]
    for i in chosen:
        info, outs = graph.layers[i], graph.out_nodes[i]
        pairs = _cap_sources(graph, graph.in_nodes[i], max_sources)
        in_pg, out_pg = info.in_units // info.groups, info.out_units // info.groups
        j, s = pairs[0], pairs[1]
        g, jl = j // in_pg, j % in_pg
        ukey, u = torch.unique(g * n + s, return_inverse=True)
        gu, su = ukey // n, ukey % n
        ol = torch.arange(out_pg)
        srcs.append(su.repeat_interleave(out_pg))
        dsts.append(outs[(gu[:, None] * out_pg + ol[None, :]).reshape(-1)])
        count = ukey.numel() * out_pg
        layer_ids.append(torch.full((count,), info.index, dtype=torch.long))
        slice_id = ((g[:, None] * out_pg + ol[None, :]) * in_pg + jl[:, None]).reshape(-1)
        edge_id = (ptr[-1] + u[:, None] * out_pg + ol[None, :]).reshape(-1)
        slice_edges.append(torch.stack([slice_id, edge_id]))
        ptr.append(ptr[-1] + count)
    empty = torch.empty(0, dtype=torch.long)
    return UnitEdges(
        edge_index=torch.stack([torch.cat([empty, *srcs]), torch.cat([empty, *dsts])]),
        edge_layer=torch.cat([empty, *layer_ids]),
        layer_ptr=torch.tensor(ptr, dtype=torch.long),
        slice_edge=slice_edges,
        kernel_numel=[graph.layers[i].kernel_numel for i in chosen],
        layers=chosen,
    )


def _layer_info(index: int, layer: PrunableLayer, depth: int) -> LayerInfo:
    mod = layer.module
    shape = tuple(int(s) for s in layer.shape)
    if isinstance(mod, nn.modules.conv._ConvNd):
        kernel, groups = tuple(int(k) for k in mod.kernel_size), int(mod.groups)
    else:
        kernel, groups = (), 1
    return LayerInfo(
        index=index,
        name=layer.name,
        module_name=layer.module_name,
        kind=layer.kind,
        in_units=_in_units(layer),
        out_units=shape[0],
        kernel=kernel,
        groups=groups,
        depth=depth,
        shape=shape,
    )


def _in_units(layer: PrunableLayer) -> int:
    groups = int(getattr(layer.module, "groups", 1)) if isinstance(layer.module, nn.modules.conv._ConvNd) else 1
    return int(layer.shape[1]) * groups


def _conv_rank(mod: nn.Module) -> int:
    return 1 if isinstance(mod, nn.Conv1d) else 2


def _unique_pairs(idx: Tensor, nodes: Tensor) -> Tensor:
    if idx.numel() == 0:
        return torch.empty(2, 0, dtype=torch.long)
    base = int(nodes.max()) + 1
    key = torch.unique(idx * base + nodes)
    return torch.stack([key // base, key % base])


def _is_shape(x: Any) -> bool:
    return isinstance(x, tuple) and all(isinstance(v, int) for v in x) and not hasattr(x, "_fields")


def _shape_tree(value: Any) -> Any:
    """A value's structure with tensors replaced by their shapes and anything else by _NOT_TENSOR."""
    if isinstance(value, Tensor):
        return tuple(int(s) for s in value.shape)
    if isinstance(value, (tuple, list)):
        return tuple(_shape_tree(v) for v in value)
    if isinstance(value, dict):
        return {k: _shape_tree(v) for k, v in value.items()}
    return _NOT_TENSOR


def _map_tensors(value: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, fn) for v in value) if not hasattr(value, "_fields") else value
    return value


def _map_shapes(tree: Any, fn: Callable[[tuple[int, ...]], Any]) -> Any:
    if _is_shape(tree):
        return fn(tree)
    if isinstance(tree, tuple):
        return tuple(_map_shapes(v, fn) for v in tree)
    if isinstance(tree, dict):
        return {k: _map_shapes(v, fn) for k, v in tree.items()}
    return None


def _contains_shape(x: Any) -> bool:
    if _is_shape(x):
        return True
    if isinstance(x, (tuple, list)):
        return any(_contains_shape(v) for v in x)
    if isinstance(x, dict):
        return any(_contains_shape(v) for v in x.values())
    return False


def _tensors(args: Any, kwargs: Any) -> list[Tensor]:
    found: list[Tensor] = []
    map_aggregate((args, kwargs), lambda a: found.append(a) if isinstance(a, Tensor) else None)
    return found


def _index_items(index: Any) -> list[Any]:
    return list(index) if isinstance(index, (tuple, list)) else [index]


def _pad_signature(input: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> None:
    """Mirror of F.pad's signature, for binding fx call arguments by name."""


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


def _float_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
