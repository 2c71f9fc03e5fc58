"""The unit replay: the traced graph run on unit labels instead of activations.

See :mod:`autosparse.topology.graph` for the rules (data movement is applied literally to the
labels, element-wise ops take unions, pooling unions over the pooled axes, a prunable layer
reads along its input axis and emits fresh units). This module dispatches each fx node to the
rule for its op (:mod:`autosparse.topology.replay_ops` classifies the ops, :mod:`autosparse.topology.labels`
does the label algebra) and records, per prunable layer, which provisional nodes it reads;
:mod:`autosparse.topology.assemble` turns that record into a :class:`NetworkGraph`.
"""

from __future__ import annotations

import inspect
import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.fx.node import map_aggregate, map_arg

from autosparse.core.layers import PrunableLayer
from autosparse.topology.fx_trace import Untraceable, short_error
from autosparse.topology.labels import UnitLabels, blank, emit, has_units, recompact
from autosparse.topology.replay_ops import (
    CONST_FUNCS,
    CONST_METHODS,
    MIX_FUNCS,
    MIX_METHODS,
    MIX_MODULES,
    MOVE_FUNCS,
    MOVE_METHODS,
    MOVE_MODULES,
    REDUCE_FUNCS,
    REDUCE_METHODS,
    RESAMPLE_FUNCS,
    RESAMPLE_MODULES,
    SETITEM,
)
from autosparse.topology.shapes import NOT_TENSOR, contains_shape, is_shape, map_shapes
from autosparse.topology.unit_graph import layer_in_units, unique_pairs

logger = logging.getLogger(__name__)


@dataclass
class LayerState:
    """What the replay learns about one prunable layer: its provisional units and what it reads."""

    layer: PrunableLayer
    first_call: int
    out_start: int  # provisional node id of unit 0
    out_slots: Tensor  # slot of each output unit
    in_pairs: list[Tensor] = field(default_factory=list)
    calls: int = 0


class UnitReplay:
    """Runs the traced graph on unit-set labels instead of activations (see module doc).

    A *slot* is an interned set of provisional node ids; label tensors hold slot ids. Provisional
    nodes are ``[0, numel)`` for the input elements, then blocks allocated as layers and
    embeddings are first called; :func:`~autosparse.topology.assemble.assemble_graph` collapses
    input elements to the chosen input granularity and renumbers everything into the final node
    order.
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
        self.labels = UnitLabels()
        self.states: dict[str, LayerState] = {}
        self.embeds: list[tuple[int, int]] = []  # (start, count) provisional blocks of embedding units
        self.embed_of: dict[int, Tensor] = {}
        self.n_elem = 0

    # -- running -------------------------------------------------------------------------------

    def run(self) -> Any:
        """Replay every node; returns the labels of the model's output (its structure kept)."""
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
                    env[n] = blank(tuple(default.shape)) if isinstance(default, Tensor) else default
            elif n.op == "get_attr":
                value: Any = self.gm
                for part in str(n.target).split("."):
                    value = getattr(value, part)
                env[n] = blank(tuple(value.shape)) if isinstance(value, Tensor) else value
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
        return output

    def _input_labels(self) -> Tensor:
        if not self.example.is_floating_point():
            return blank(tuple(self.example.shape))  # token ids: units come from the embedding
        self.n_elem = int(self.example[0].numel())
        _, slots = self.labels.new_units(self.n_elem)  # the first provisional nodes: ids 0..n_elem-1
        return slots.reshape(self.example.shape[1:]).unsqueeze(0).expand(self.example.shape)

    def _check(self, n: fx.Node, result: Any) -> None:
        expected = self.shapes.get(n, NOT_TENSOR)

        def walk(exp: Any, got: Any) -> None:
            if isinstance(exp, tuple) and all(isinstance(v, int) for v in exp):
                if not isinstance(got, Tensor) or tuple(got.shape) != exp:
                    raise Untraceable(f"node {n.format_node()} gave labels of the wrong shape")
            elif isinstance(exp, (tuple, list)) and isinstance(got, (tuple, list)) and len(exp) == len(got):
                for e, g in zip(exp, got, strict=True):
                    walk(e, g)
            elif isinstance(exp, dict) and isinstance(got, dict):
                for k in exp:
                    walk(exp[k], got.get(k))

        walk(expected, result)

    def _node(self, n: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        expected = self.shapes.get(n, NOT_TENSOR)
        if n.op == "call_module":
            return self._module(n, self.gm.get_submodule(str(n.target)), args, kwargs, expected)
        target = n.target
        is_method = n.op == "call_method"
        if not contains_shape(expected):  # sizes, dims, asserts: the labels have the activations' shapes
            return self._literal(target, args, kwargs, is_method, materialise=False)
        inputs = [t for t in tensors_in(args, kwargs) if has_units(t)]
        if not inputs:
            return map_shapes(expected, blank)
        name = target if is_method else getattr(target, "__name__", str(target))
        if (target in CONST_FUNCS) if not is_method else (target in CONST_METHODS):
            return map_shapes(expected, blank)
        if (target in MIX_METHODS) if is_method else (target in MIX_FUNCS):
            raise Untraceable(f"{name} mixes features without a prunable weight")
        if target in SETITEM:
            raise Untraceable("item assignment cannot be followed")
        if (target in MOVE_METHODS) if is_method else (target in MOVE_FUNCS):
            if target is operator.getitem and any(isinstance(i, Tensor) for i in _index_items(args[1])):
                raise Untraceable("indexing with a tensor cannot be followed")
            return self._literal(target, args, kwargs, is_method)
        if not is_method and target is F.pad:
            return self._pad(args, kwargs, expected)
        if not is_method and target in RESAMPLE_FUNCS:
            return self._resample(inputs[0], expected, n)
        if (target in REDUCE_METHODS) if is_method else (target in REDUCE_FUNCS):
            reduced = self._reduction(args, kwargs, expected)
            if reduced is not None:
                return reduced
        if not is_method and target is getattr(F, "scaled_dot_product_attention", None):
            return self._sdpa(args, kwargs, expected)
        if is_shape(expected):
            shapes = [tuple(t.shape) for t in inputs]
            try:
                if tuple(torch.broadcast_shapes(*shapes)) == expected:
                    return self.labels.union(inputs, expected)
            except RuntimeError:
                pass
        raise Untraceable(f"op {name} changes the shape in a way the unit replay does not know")

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
            raise Untraceable(f"{target} failed on unit labels ({short_error(exc)})") from exc
        return _map_tensors(result, recompact)

    def _pad(self, args: tuple[Any, ...], kwargs: dict[str, Any], expected: tuple[int, ...]) -> Tensor:
        bound = inspect.signature(_pad_signature).bind(*args, **kwargs)
        mode = bound.arguments.get("mode", "constant")
        x = bound.arguments["input"]
        if mode == "constant":  # literal, with "no unit" as the fill value (option-A ResNet shortcuts)
            return recompact(F.pad(x.contiguous(), bound.arguments["pad"], mode="constant", value=-1))
        return self._resample(x, expected, None)

    def _resample(self, x: Tensor, expected: tuple[int, ...], n: fx.Node | None) -> Tensor:
        if x.dim() != len(expected):
            raise Untraceable(f"resampling {n.format_node() if n else 'op'} changes the rank")
        axes = [a for a in range(x.dim()) if x.shape[a] != expected[a]]
        return self.labels.reduce(x, axes).expand(expected)

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
        reduced = self.labels.reduce(x, axes)
        if is_shape(expected):
            return reduced.reshape(expected)
        if isinstance(expected, tuple) and expected and is_shape(expected[0]):  # (values, indices)
            return (reduced.reshape(expected[0]), *[map_shapes(s, blank) for s in expected[1:]])
        return None

    def _sdpa(self, args: tuple[Any, ...], kwargs: dict[str, Any], expected: Any) -> Tensor:
        q = kwargs.get("query", args[0] if args else None)
        k = kwargs.get("key", args[1] if len(args) > 1 else None)
        v = kwargs.get("value", args[2] if len(args) > 2 else None)
        parts = [self.labels.reduce(t, [-2]) for t in (q, k, v) if isinstance(t, Tensor) and t.dim() >= 2]
        return self.labels.union(parts, expected)

    # -- modules -------------------------------------------------------------------------------

    def _module(self, n: fx.Node, mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], expected: Any) -> Any:
        if isinstance(mod, nn.MultiheadAttention):
            return self._attention(mod, args, kwargs, expected)
        if id(mod) in self.by_module:
            (layer,) = self.by_module[id(mod)]
            x = args[0] if args else kwargs.get("input")
            if not isinstance(x, Tensor) or not is_shape(expected):
                raise Untraceable(f"{layer.module_name} is not called on one tensor")
            axis = -1 if layer.kind == "linear" else (1 if x.dim() == _conv_rank(mod) + 2 else 0)
            pairs = self.labels.read(x, axis)
            state = self._layer_call(layer, pairs, x.shape[axis])
            out_axis = -1 if layer.kind == "linear" else axis
            return emit(state.out_slots, out_axis, expected)
        if isinstance(mod, (nn.Embedding, nn.EmbeddingBag)):
            if id(mod) not in self.embed_of:
                start, slots = self.labels.new_units(mod.embedding_dim)
                self.embeds.append((start, mod.embedding_dim))
                self.embed_of[id(mod)] = slots
            return emit(self.embed_of[id(mod)], -1, expected)
        if not contains_shape(expected):
            return self._literal_module(mod, args, kwargs)
        inputs = [t for t in tensors_in(args, kwargs) if has_units(t)]
        if not inputs:
            return map_shapes(expected, blank)
        if isinstance(mod, MIX_MODULES):
            raise Untraceable(f"{type(mod).__name__} {n.target} mixes features without a prunable weight")
        if isinstance(mod, MOVE_MODULES):
            return self._literal_module(mod, args, kwargs)
        if isinstance(mod, nn.modules.padding._ConstantPadNd):
            return recompact(F.pad(inputs[0].contiguous(), mod.padding, mode="constant", value=-1))
        if isinstance(mod, RESAMPLE_MODULES) and is_shape(expected):
            return self._resample(inputs[0], expected, n)
        if is_shape(expected):
            try:
                if tuple(torch.broadcast_shapes(*[tuple(t.shape) for t in inputs])) == expected:
                    return self.labels.union(inputs, expected)  # norms, activations, dropout, identity
            except RuntimeError:
                pass
            x = inputs[0]
            if x.dim() == len(expected) and x.dim() >= 3 and x.shape[:2] == expected[:2]:
                logger.debug("treating %s (%s) as spatial resampling", n.target, type(mod).__name__)
                return self._resample(x, expected, n)
        raise Untraceable(f"module {n.target} ({type(mod).__name__}) changes the shape in an unknown way")

    @staticmethod
    def _literal_module(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        args = map_aggregate(args, lambda a: a.contiguous() if isinstance(a, Tensor) else a)
        try:
            result = mod(*args, **kwargs)
        except Exception as exc:
            raise Untraceable(f"{type(mod).__name__} failed on unit labels ({short_error(exc)})") from exc
        return _map_tensors(result, recompact)

    def _layer_call(self, layer: PrunableLayer, pairs: Tensor, n_in: int) -> LayerState:
        expected_in = layer_in_units(layer)
        if n_in != expected_in:
            raise Untraceable(f"{layer.name} reads {n_in} input units but its weight has {expected_in}")
        state = self.states.get(layer.name)
        if state is None:
            start, slots = self.labels.new_units(int(layer.shape[0]))
            state = LayerState(layer, len(self.states), start, slots)
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
            pairs = torch.cat([self.labels.read(t, -1) for t in (q, k, v)], dim=1)
            in_state = self._layer_call(in_proj, unique_pairs(pairs[0], pairs[1]), q.shape[-1])
            j = torch.arange(e)
            base = in_state.out_start
            idx = j.repeat(3)
            nodes = torch.cat([base + j, base + e + j, base + 2 * e + j])
            out_pairs = unique_pairs(idx, nodes)
        else:  # separate q/k/v projections are not prunable here: the query features feed out_proj
            out_pairs = self.labels.read(q, -1)
        out_state = self._layer_call(out_proj, out_pairs, e)
        if is_shape(expected):  # a subclass returning the output alone
            return emit(out_state.out_slots, -1, expected)
        out = emit(out_state.out_slots, -1, expected[0])
        return (out, *[map_shapes(s, blank) for s in expected[1:]])


def _conv_rank(mod: nn.Module) -> int:
    return 1 if isinstance(mod, nn.Conv1d) else 2


def _map_tensors(value: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, fn) for v in value) if not hasattr(value, "_fields") else value
    return value


def tensors_in(args: Any, kwargs: Any) -> list[Tensor]:
    """Every tensor in an fx call's (nested) arguments or output."""
    found: list[Tensor] = []
    map_aggregate((args, kwargs), lambda a: found.append(a) if isinstance(a, Tensor) else None)
    return found


def _index_items(index: Any) -> list[Any]:
    return list(index) if isinstance(index, (tuple, list)) else [index]


def _pad_signature(input: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> None:
    """Mirror of F.pad's signature, for binding fx call arguments by name."""
