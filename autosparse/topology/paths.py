"""Input→output paths of a masked network: counts, per-weight and per-unit flows, effectiveness.

Pham et al. (2023, "Towards data-agnostic pruning at initialization: what makes a good sparse
mask?") describe a sparse network by two numbers: how many input→output *paths* survive and how
many *nodes* (neurons / channels) still lie on one. Both can be read off a forward and a backward
pass, so nothing here needs an explicit graph and residual networks work unchanged:

* copy the model in float64, give every prunable weight the value of its mask (1 kept, 0
  pruned; or ``|θ|·m`` for SynFlow's weighted flow), zero every bias, make every other
  parameter non-negative, and replace what is not a linear map of non-negative signals by what
  it is on the path graph (norms and activations by identity, pooling windows by sums; see
  :mod:`autosparse.topology.path_modules`), and run the forward under
  :class:`~autosparse.topology.path_ops.PathMode`, which reads functional ops the same way
  (a gate ``x * s`` or a product of two signals adds the operands' paths, constants start none);
* feed an all-ones input. The network is then linear in the input and in each weight, and the
  summed output ``R`` is exactly the number of paths (Σ over paths of the product of weights);
* ``w·∂R/∂w`` is the number of paths through weight ``w``; ``∂R/∂w`` for a *pruned* weight is
  the number of paths it would carry if it were kept; ``a·∂R/∂a`` summed over an activation
  tensor's positions is the number of paths through each unit (neuron or channel).

Deep networks have more paths than float64 can hold, so all counts are returned as natural
logarithms. When the plain pass overflows, the input (forward) and the output seed (backward)
are scaled by powers of two and the scale is taken out again in the log domain; the network is
linear in both, so this is exact up to rounding. A *functional* average (``F.avg_pool2d`` or
``x.mean()`` inside ``forward``) cannot be replaced; when every path crosses it (global pooling
before the classifier) it only shifts the log count by a constant and leaves every
effective/ineffective decision unchanged.

Definitions used here (per Pham et al.): a kept weight is *effective* when it lies on at least
one input→output path; the *nodes* of a layer are its output units (neurons of a Linear, output
channels of a Conv), and a node is effective when at least one path runs through it; a layer has
*collapsed* when it keeps no weight or no path runs through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call

from autosparse.core.errors import ConfigError, MaskError
from autosparse.core.layers import PrunableLayer, bake_parametrizations, legacy_norms, prunable_layers, safe_deepcopy
from autosparse.core.masks import Masks, current_masks, remove_masks
from autosparse.core.model_io import call_with, is_shape_error, logits
from autosparse.core.parallel import single_threaded_torch
from autosparse.topology.log_counts import LogCounts, log_count
from autosparse.topology.path_modules import to_path_modules
from autosparse.topology.path_ops import PathMode, mark_signal

Weighting = Literal["unit", "abs"]

#: Input/backward-seed scales tried in turn when a pass overflows float64 (2**0, 2**-256, ...).
_LOG2_SCALES: tuple[int, ...] = (0, -256, -512, -768)


def _total(out: object) -> torch.Tensor:
    """Sum of the logits that training reads (:func:`~autosparse.core.model_io.logits`).

    Why not every output: a model returning ``(logits, features)`` with an empty classifier
    still had paths to its features, and the verdict was "no signal in head.weight" instead of
    the collapse it is. Only an output with no logits to find counts all its tensors.
    """
    try:
        return logits(out).sum()
    except ConfigError:
        return _all_outputs(out)


def _all_outputs(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.sum()
    if isinstance(out, Mapping):
        return sum((_all_outputs(v) for v in out.values()), torch.zeros((), dtype=torch.float64))
    if isinstance(out, (tuple, list)):
        return sum((_all_outputs(v) for v in out), torch.zeros((), dtype=torch.float64))
    return torch.zeros((), dtype=torch.float64)


def _unit_dims(layer_kind: str, t: torch.Tensor) -> tuple[int, ...]:
    """Dimensions summed over to get one value per unit: all but the channel (conv: dim 1;
    linear: the last dim, so sequence models count per feature)."""
    unit = 1 if layer_kind == "conv" else t.dim() - 1
    return tuple(d for d in range(t.dim()) if d != unit)


def _resolve_masks(model: nn.Module, masks: Mapping[str, torch.Tensor] | None) -> Masks:
    if masks is None:
        return current_masks(model)
    return (masks if isinstance(masks, Masks) else Masks(masks)).validate(model)


def _check_shape(input_shape: Sequence[int] | None) -> tuple[int, ...]:
    if input_shape is None:
        raise ConfigError(
            "path counting needs the input shape without the batch dimension, e.g. input_shape=(1, 28, 28)"
        )
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"input_shape must be a sequence of positive integers, e.g. (1, 28, 28); got {input_shape!r}"
        ) from exc
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(
            f"input_shape must be positive sizes without the batch dimension, e.g. (1, 28, 28); got {shape}"
        )
    return shape


@dataclass
class PathFlow:
    """Everything one forward + backward pass says about the paths of a masked network.

    All counts are natural logs (``-inf`` = none). Dicts are keyed by prunable-parameter name.
    """

    order: list[str]  # prunable layers in the order the forward pass reaches them
    log_paths: float  # log #input→output paths
    weight_log_paths: Mapping[str, torch.Tensor]  # log #paths through each (kept) weight
    weight_log_potential: Mapping[str, torch.Tensor]  # log #paths a weight would carry if kept (with unit weight)
    out_unit_log_paths: dict[str, torch.Tensor]  # log #paths through each output unit of the layer
    in_unit_log_paths: dict[str, torch.Tensor]  # log #paths through each input unit of the layer
    approximate: tuple[str, ...] = ()  # ops not modelled on the path graph (empty: exact)
    #: with ``flow(..., out_grads=names)``: for those layers called once, the scaled path counts from
    #: each of their output positions to the network's output (only which are non-zero is meaningful)
    out_grads: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def effective(self) -> dict[str, torch.Tensor]:
        """Kept weights on at least one path."""
        paths = self.weight_log_paths
        if isinstance(paths, LogCounts):
            return {n: paths.positive(n) for n in paths}
        return {n: torch.isfinite(t) for n, t in paths.items()}

    def potential(self, name: str) -> torch.Tensor:
        """Weights of one layer (kept or not) that would lie on a path if kept."""
        pot = self.weight_log_potential
        return pot.positive(name) if isinstance(pot, LogCounts) else torch.isfinite(pot[name])


class PathNetwork:
    """A float64 copy of a model on which a pass with all-ones input counts paths.

    Build it once and evaluate many masks (NPB solves layer by layer, DPaI takes thousands of
    steps): the copy, module swaps and hooks are paid for once. Prunable weights are supplied
    per call (``functional_call``), so they can be differentiable tensors.
    """

    def __init__(
        self, model: nn.Module, input_shape: Sequence[int], *, device: torch.device | str | None = None
    ) -> None:
        self.input_shape = _check_shape(input_shape)
        src_layers = prunable_layers(model)
        if device is None:
            device = src_layers[0].parameter.device
        self.device = torch.device(device)
        net = safe_deepcopy(model)
        remove_masks(net)  # a torch-pruned model: bake weight_orig*weight_mask into a plain weight
        # their parts would be treated as scales (made absolute) and recombined by the parametrization,
        # so a dense weight-normed layer counted ~4 paths per input where it has 64, and spectral_norm's
        # power iteration left none at all (a false "collapsed")
        for module in list(net.modules()):
            for norm, param in legacy_norms(module):  # the old hook-based torch.nn.utils versions
                getattr(nn.utils, f"remove_{norm}")(module, param)
        bake_parametrizations(net, keep_as="parameter")
        net = net.to(device=self.device, dtype=torch.float64).eval()
        to_path_modules(net)
        pruned = {layer.name for layer in src_layers}
        every = prunable_layers(net)
        self.layers: list[PrunableLayer] = [layer for layer in every if layer.name in pruned]
        self.names = [layer.name for layer in self.layers]
        prunable = set(self.names)
        dense = {layer.name for layer in every} - prunable  # a parametrized weight, left dense: every edge is there
        with torch.no_grad():
            for pname, p in net.named_parameters():
                p.requires_grad_(False)
                if pname in prunable:
                    continue
                if pname in dense:
                    p.fill_(1.0)
                    continue
                if pname.rsplit(".", 1)[-1].endswith("bias"):
                    p.zero_()  # a bias is not an edge: it would add "paths" that start mid-network
                else:
                    p.abs_()  # any other scale (layer scale, ...) must not flip a path's sign
        self.net = net
        self.unmodelled: set[str] = set()  # ops the path graph does not model (see path_ops)
        self._captures: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._capture = False
        self._visit: Callable[[str, torch.Tensor], None] | None = None  # see sweep()
        self._mode: PathMode | None = None  # the running pass's
        for layer in self.layers:
            layer.module.register_forward_hook(self._hook(layer.name))
            layer.module.register_forward_pre_hook(self._pre_hook(layer.name))
        self._order: list[str] | None = None
        self._independent: frozenset[str] | None = None  # see input_independent()
        self._unreached: list[str] = []
        self._read: set[str] = set()  # weights the last capturing pass's signal met (called or read)

    @property
    def approximate(self) -> tuple[str, ...]:
        """Ops on the input's signal that :mod:`~autosparse.topology.path_ops` does not model
        (empty: the counts are exact on the path graph; otherwise they are an approximation)."""
        return tuple(sorted(self.unmodelled))

    def input_independent(self) -> frozenset[str]:
        """Layers no input-to-output path runs through even with every weight kept.

        Why: they are not *collapsed* — no mask could connect them. ConViT's positional projections
        read constant patch coordinates, XCiT's and EdgeNeXt's Fourier position encodings likewise, and
        the first class-attention query of CaiT, VOLO and XCiT reads the constant class token; a random
        50% mask was reported as collapsing them (10 of ConViT-tiny's layers). One dense pass, on
        demand and once per network; where it overflows float64, none is assumed.
        """
        if self._independent is None:
            dense = {layer.name: torch.ones(layer.shape, dtype=torch.bool) for layer in self.layers}
            try:
                eff = self.flow(self.weights(dense)).effective()
            except OverflowError:
                eff = {}
            self._independent = frozenset(n for n, e in eff.items() if not bool(e.any()))
        return self._independent

    def _threads(self) -> AbstractContextManager[None]:
        """Batch-1 float64 passes are many small ops: on the CPU, one thread (see single_threaded_torch)."""
        return single_threaded_torch() if self.device.type == "cpu" else nullcontext()

    # --- passes ---------------------------------------------------------------------------
    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
            if not self._capture:
                return
            io = getattr(module, "path_io", None)  # attention: its in-projection (path_attention_forward)
            if io is not None:
                self._captures.setdefault(name, []).append(io)
                module.path_io = None
            elif inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
                self._captures.setdefault(name, []).append((inputs[0], output))
            else:
                self._captures.setdefault(name, [])

        return hook

    def _pre_hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple[object, ...]) -> None:
            visit, mode = self._visit, self._mode
            if visit is not None and mode is not None and inputs and isinstance(inputs[0], torch.Tensor):
                self._visit = None  # the visitor may call the layer itself
                mode.paused = True  # and its ops are not the model's
                try:
                    visit(name, inputs[0])
                finally:
                    self._visit, mode.paused = visit, False

        return hook

    def sweep(self, weights: dict[str, torch.Tensor], visit: Callable[[str, torch.Tensor], None]) -> None:
        """One forward pass that calls ``visit(name, input)`` before each prunable layer runs.

        Why: the visitor may change ``weights[name]`` in place (they are float64 on this network's
        device, as :meth:`weights` makes them), and every later layer then sees the input reach
        of the changed layer — a whole chain of layers decided in one pass instead of one each.
        Where the pass overflows and is run again at a smaller input scale, the visitor sees each
        layer again, so it must decide a layer once.
        """
        self._visit = visit
        try:
            with torch.no_grad():
                self.forward(weights)
        finally:
            self._visit = None

    def weight_potential(self, name: str, x: torch.Tensor, out_grad: torch.Tensor) -> torch.Tensor:
        """Which weights of layer ``name`` would lie on a path: input reach ``x`` (as captured before
        the layer) meets output reach ``out_grad`` (:attr:`PathFlow.out_grads`); one local backward."""
        layer = self.layers[self.names.index(name)]
        w = torch.ones_like(getattr(layer.module, layer.param_name)).requires_grad_(True)
        with torch.enable_grad(), self._threads():
            y = functional_call(layer.module, {layer.param_name: w}, (x.detach(),))
            (g,) = torch.autograd.grad(y, w, grad_outputs=out_grad, allow_unused=True)
        return torch.zeros(w.shape, dtype=torch.bool) if g is None else (g > 0).cpu()

    @property
    def order(self) -> list[str]:
        """Prunable layers in the order the forward pass first reaches them (one dense pass, or
        the first :meth:`flow`'s, whichever comes first)."""
        if self._order is None:
            ones = {layer.name: torch.ones_like(layer.parameter) for layer in self.layers}
            with torch.no_grad():
                _, _, caps = self.forward(ones, capture=True)
            self._set_order(caps)
        assert self._order is not None
        return self._order

    def _set_order(self, caps: Mapping[str, object]) -> None:
        if self._order is None:  # dicts keep first-insertion order = first call order
            self._order = list(caps) + [n for n in self.names if n not in caps]
            self._unreached = [n for n in self.names if n not in caps and n not in self._read]

    @property
    def unreached(self) -> list[str]:
        """Prunable layers whose weight the signal never meets (an unused head, an auxiliary head
        that runs in training only): no input→output path crosses them, whatever the mask. A weight
        read without calling its layer (Swin's ``qkv.weight``) is met, so it is not among them."""
        self.order  # noqa: B018 (the dense pass that finds them, once)
        return list(self._unreached)

    def ones_input(self, log2_scale: int = 0, *, requires_grad: bool = False) -> torch.Tensor:
        x = torch.full((1, *self.input_shape), 2.0**log2_scale, dtype=torch.float64, device=self.device)
        return x.requires_grad_(requires_grad)

    def forward(
        self, weights: Mapping[str, torch.Tensor], *, capture: bool = False, input_grad: bool = False
    ) -> tuple[torch.Tensor, int, dict[str, list[tuple[torch.Tensor, torch.Tensor]]]]:
        """``R·2**s`` for the first input scale ``2**s`` at which it is finite.

        Returns (scaled total, s, captured (input, output) pairs per layer when ``capture``).
        """
        params = {n: w.to(device=self.device, dtype=torch.float64) for n, w in weights.items()}
        for log2 in _LOG2_SCALES:
            self._captures = {}
            self._capture = capture
            mode = PathMode(watch={id(t): n for n, t in params.items()} if capture else None)
            outer, self._mode = self._mode, mode  # a pass inside a visitor must not end the sweep's
            try:
                x = mark_signal(self.ones_input(log2, requires_grad=input_grad))
                with self._threads(), mode:
                    out = call_with(self.net, params, (x,))
                total = _total(out)
            finally:
                self._capture, self._mode = False, outer
            self.unmodelled |= mode.unmodelled
            if torch.isfinite(total):
                caps, self._captures = self._captures, {}
                self._read = mode.read
                return total, log2, caps
        raise OverflowError(
            "the number of paths exceeds 2**1792 even with a rescaled input; this network is too "
            "deep for float64 path counting"
        )

    def log_paths(self, weights: Mapping[str, torch.Tensor]) -> float:
        with torch.no_grad():
            total, log2, _ = self.forward(weights)
        value = float(total)
        return math.log(value) - log2 * math.log(2.0) if value > 0 else -math.inf

    def weights(
        self, masks: Mapping[str, torch.Tensor], weighting: Weighting = "unit", model: nn.Module | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-layer edge values: the mask itself (path counts) or ``|θ|·m`` (SynFlow flow)."""
        if weighting not in ("unit", "abs"):
            raise ConfigError(f"weighting must be 'unit' (path counts) or 'abs' (SynFlow flow), got {weighting!r}")
        missing = [n for n in self.names if n not in masks]
        if missing:
            raise MaskError(f"masks lack {missing[:3]}; give one mask per prunable weight of the model")
        out = {}
        if weighting == "abs":
            if model is None:
                raise ConfigError("weighting='abs' needs the model whose |θ| weights the edges")
            theta = {layer.name: layer.weight.detach() for layer in prunable_layers(model)}
        for n in self.names:
            m = masks[n].to(device=self.device, dtype=torch.float64)
            out[n] = m if weighting == "unit" else m * theta[n].to(device=self.device, dtype=torch.float64).abs()
        return out

    def layer_inputs(self, weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per layer, the *scaled* path counts from the input to each input position of the layer.

        Only ratios are meaningful (a common power-of-two scale may be applied).
        """
        with torch.no_grad():
            _, _, caps = self.forward(weights, capture=True)
        return {n: pairs[0][0] for n, pairs in caps.items() if pairs}

    def flow(self, weights: Mapping[str, torch.Tensor], *, out_grads: Collection[str] = ()) -> PathFlow:
        """Path counts through every weight and unit (one forward + one backward pass);
        ``out_grads`` names the layers whose :attr:`PathFlow.out_grads` to keep."""
        leaves = {
            n: w.detach().to(device=self.device, dtype=torch.float64).requires_grad_(True) for n, w in weights.items()
        }
        with torch.enable_grad(), self._threads():
            total, log2_in, caps = self.forward(leaves, capture=True, input_grad=True)
            self._set_order(caps)
            pairs = [(n, i, o) for n, lst in caps.items() for i, o in lst]
            targets: list[torch.Tensor] = [leaves[n] for n in self.names]
            targets += [t for _, i, o in pairs for t in (i, o)]
            live = [k for k, t in enumerate(targets) if t.requires_grad]
            grads: list[torch.Tensor | None] = [None] * len(targets)
            log2_out = 0
            if total.requires_grad and live:  # otherwise no prunable layer reaches the output
                for log2_out in _LOG2_SCALES:
                    seed = torch.tensor(2.0**log2_out, dtype=torch.float64, device=self.device)
                    got = torch.autograd.grad(
                        total * seed, [targets[k] for k in live], allow_unused=True, retain_graph=True
                    )
                    if all(g is None or bool(torch.isfinite(g).all()) for g in got):
                        for k, g in zip(live, got):
                            grads[k] = g
                        break
                else:
                    raise OverflowError("path gradients overflow float64 even with a rescaled backward seed")
        shift = (log2_in + log2_out) * math.log(2.0)
        value = float(total.detach())
        log_paths = math.log(value) - log2_in * math.log(2.0) if value > 0 else -math.inf

        raw_paths: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        raw_potential: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        for k, n in enumerate(self.names):
            g = grads[k]
            g = torch.zeros_like(leaves[n]) if g is None else g.detach()
            raw_potential[n] = (g, None)
            raw_paths[n] = (g, leaves[n].detach())
        kinds = {layer.name: layer.kind for layer in self.layers}
        out_units: dict[str, torch.Tensor] = {}
        in_units: dict[str, torch.Tensor] = {}
        for k, (n, inp, out) in enumerate(pairs):
            g_in, g_out = grads[len(self.names) + 2 * k], grads[len(self.names) + 2 * k + 1]
            for store, act, g in ((in_units, inp, g_in), (out_units, out, g_out)):
                prod = torch.zeros_like(act) if g is None else act.detach() * g.detach()
                per_unit = prod.sum(dim=_unit_dims(kinds[n], prod))
                store[n] = store[n] + per_unit if n in store else per_unit
        for store in (in_units, out_units):
            for n in list(store):
                store[n] = (log_count(store[n]) - shift).cpu()
        for layer in self.layers:  # layers the forward pass never reached carry no path
            w = layer.parameter
            if layer.name not in out_units:
                out_units[layer.name] = torch.full((w.shape[0],), -math.inf, dtype=torch.float64)
            if layer.name not in in_units:
                n_in = w.shape[1] * (getattr(layer.module, "groups", 1) if layer.kind == "conv" else 1)
                in_units[layer.name] = torch.full((n_in,), -math.inf, dtype=torch.float64)
        kept_grads: dict[str, torch.Tensor] = {}  # a layer called more than once has no one reach
        for k, (n, _, _out) in enumerate(pairs):
            g_out = grads[len(self.names) + 2 * k + 1]
            if n in out_grads and len(caps[n]) == 1 and g_out is not None:
                kept_grads[n] = g_out.detach()
        return PathFlow(
            list(self.order),
            log_paths,
            LogCounts(raw_paths, shift),
            LogCounts(raw_potential, shift),
            out_units,
            in_units,
            self.approximate,
            kept_grads,
        )


@dataclass
class PathStats:
    """The NPB paper's sparse-topology summary of one masked network."""

    log_paths: float  # natural log of #input→output paths (-inf: no path at all)
    effective_nodes: int  # output units (all prunable layers) on at least one path
    total_nodes: int
    effective_params: int  # kept weights on at least one path
    kept_params: int
    nodes_per_layer: dict[str, int]
    params_per_layer: dict[str, int]
    collapsed: list[str]  # no kept weight, or (exact counts only) no path through the layer
    approximate: tuple[str, ...] = ()  # ops the path graph does not model: counts are approximate
    unverified: list[str] = field(default_factory=list)  # no path found, but the counts are approximate
    input_independent: list[str] = field(default_factory=list)  # kept weights, no path even when dense

    @property
    def effective_paths(self) -> float:
        """#paths as a float (``inf`` when it exceeds float64; use ``log_paths`` then)."""
        if self.log_paths == -math.inf:
            return 0.0
        try:
            return math.exp(self.log_paths)
        except OverflowError:
            return math.inf


def path_flow(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None,
    input_shape: Sequence[int],
    *,
    weighting: Weighting = "unit",
) -> PathFlow:
    """Per-weight and per-unit path counts of ``model`` under ``masks`` (None: the masks
    attached to the model, or dense). ``weighting='abs'`` weights each edge by ``|θ|``
    (SynFlow's synaptic flow) instead of counting paths."""
    m = _resolve_masks(model, masks)
    net = PathNetwork(model, input_shape)
    return net.flow(net.weights(m, weighting, model))


def path_stats(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, input_shape: Sequence[int]) -> PathStats:
    """Paths, effective nodes, effective params and collapsed layers in one pass."""
    m = _resolve_masks(model, masks)
    try:
        net = PathNetwork(model, input_shape)
        return stats_from_flow(net.flow(net.weights(m)), m, net)
    except (RuntimeError, ValueError) as exc:  # torch's raw shape error, named as prune names it (helper)
        if not is_shape_error(exc):
            raise
        raise ConfigError(
            f"path_stats could not run the model on input_shape={tuple(input_shape)}: {str(exc).splitlines()[0]}; "
            "pass the shape of one example as the model takes it, without the batch dimension (e.g. (1, 28, 28))"
        ) from exc


def stats_from_flow(flow: PathFlow, masks: Mapping[str, torch.Tensor], net: PathNetwork | None = None) -> PathStats:
    """``flow``'s summary; ``net`` (the network that measured it) tells the layers no mask could put
    on a path (:meth:`PathNetwork.input_independent`) from collapsed ones."""
    eff = flow.effective()
    params = {n: int(e.sum()) for n, e in eff.items()}
    nodes = {n: int(torch.isfinite(flow.out_unit_log_paths[n]).sum()) for n in eff}
    total_nodes = sum(int(flow.out_unit_log_paths[n].numel()) for n in eff)
    empty = [n for n in eff if not bool(masks[n].any())]
    no_path = [n for n in eff if n not in empty and params[n] == 0]
    # a dense pass of its own, once per network, only where some layer has no path and the counts are
    # exact (an approximate dense pass proves nothing: such layers stay unverified)
    independent = (
        [n for n in no_path if n in net.input_independent()]
        if net is not None and no_path and not flow.approximate
        else []
    )
    no_path = [n for n in no_path if n not in independent]
    # an approximate count proves no collapse: such layers are reported, not called collapsed
    collapsed = empty if flow.approximate else [n for n in eff if n in empty or n in no_path]
    return PathStats(
        log_paths=flow.log_paths,
        effective_nodes=sum(nodes.values()),
        total_nodes=total_nodes,
        effective_params=sum(params.values()),
        kept_params=int(sum(int(masks[n].sum()) for n in eff)),
        nodes_per_layer=nodes,
        params_per_layer=params,
        collapsed=collapsed,
        approximate=flow.approximate,
        unverified=no_path if flow.approximate else [],
        input_independent=independent,
    )


def log_path_count(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, input_shape: Sequence[int]) -> float:
    """Natural log of the number of input→output paths (``-inf`` when there is none)."""
    m = _resolve_masks(model, masks)
    net = PathNetwork(model, input_shape)
    return net.log_paths(net.weights(m))


def effective_paths(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, input_shape: Sequence[int]) -> float:
    """Number of input→output paths (``inf`` past float64's range: use :func:`log_path_count`)."""
    log = log_path_count(model, masks, input_shape)
    if log == -math.inf:
        return 0.0
    try:
        return math.exp(log)
    except OverflowError:
        return math.inf


def effective_masks(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, input_shape: Sequence[int]) -> Masks:
    """The kept weights that lie on at least one input→output path."""
    return Masks(path_flow(model, masks, input_shape).effective())


def effective_params(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, input_shape: Sequence[int]) -> int:
    """How many kept weights lie on at least one input→output path."""
    return path_stats(model, masks, input_shape).effective_params


def effective_nodes(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, input_shape: Sequence[int]) -> int:
    """How many output units (neurons / channels) of the prunable layers lie on at least one path,
    i.e. have an input path *and* an output path through them."""
    return path_stats(model, masks, input_shape).effective_nodes


def layer_collapse(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, input_shape: Sequence[int]) -> list[str]:
    """Layers that keep no weight, or through which no input→output path runs."""
    return path_stats(model, masks, input_shape).collapsed
