"""Which weights are prunable, and in what order.

One definition used everywhere (pruners, masks, features, graph, scorer): the ``weight`` of
every ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` and the input/output projections of
``nn.MultiheadAttention``. Biases and norm parameters are never pruned: they are few, and
removing them changes what the network can represent rather than how sparse it is.

Order is module-registration order, which for every model in the zoo and for torchvision is
the forward order; where it is not, :mod:`autosparse.topology.call_order` gives the order a
forward pass reaches them, which the scorer's depth and output-layer descriptors use.

Tied weights: a prunable layer whose weight *is* the parameter of a module that is never pruned
(a language model's head tied to its ``nn.Embedding``) stays dense with it, said once in a
warning — pruning it would prune the embedding. Two prunable layers sharing one tensor are an
error naming both: one mask per layer would mask the shared tensor two ways.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Literal, TypeVar

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from autosparse.core.errors import ConfigError, NoPrunableLayersError, TiedWeightsError

log = logging.getLogger(__name__)

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True)
class PrunableLayer:
    """A prunable weight: the module that owns it and the attribute it lives under."""

    name: str  # qualified parameter name, e.g. "layer1.0.conv1.weight"
    module_name: str  # e.g. "layer1.0.conv1"
    module: nn.Module
    param_name: str  # "weight", or "in_proj_weight" for attention

    @property
    def kind(self) -> str:
        if isinstance(self.module, nn.MultiheadAttention):
            return "attention"
        if isinstance(self.module, nn.Linear):
            return "linear"
        return "conv"

    @property
    def weight(self) -> torch.Tensor:
        """The *effective* weight (``weight_orig * weight_mask`` once pruned by torch)."""
        return getattr(self.module, self.param_name)

    @property
    def parameter(self) -> nn.Parameter:
        """The trainable tensor: ``weight_orig`` if torch pruning is applied, else ``weight``."""
        orig = getattr(self.module, self.param_name + "_orig", None)
        return orig if orig is not None else getattr(self.module, self.param_name)

    @property
    def shape(self) -> torch.Size:
        return self.parameter.shape

    @property
    def fan_in(self) -> int:
        return int(self.parameter[0].numel()) if self.parameter.dim() > 1 else 1

    @property
    def fan_out(self) -> int:
        w = self.parameter
        return int(w.shape[0] * (w[0, 0].numel() if w.dim() > 2 else 1))


#: the caller's own model class, kept through functions that hand the model back (``MyNet`` stays ``MyNet``)
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def require_module(model: object, what: str) -> None:
    """One clear error where a model is expected and something else came (a name, a state dict):
    the functions that walk the model's modules failed deep inside with an AttributeError (helper)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{what} takes the model itself (an nn.Module), got {type(model).__name__} {model!r:.60}; build one "
            "first, e.g. autosparse.build_model('tv:resnet18', (3, 32, 32), 10)"
        )


def prunable_layers(model: nn.Module, *, include_attention: bool = True) -> list[PrunableLayer]:
    """All prunable weights of ``model`` in registration order.

    Raises :class:`NoPrunableLayersError` for a model with none, because every caller would
    otherwise fail later with a confusing empty-tensor error.
    """
    require_module(model, "autosparse")
    candidates: list[PrunableLayer] = []
    dense: dict[int, str] = {}  # parameters of modules that are never pruned (embeddings, norms, …)
    for mname, module in model.named_modules():
        prefix = f"{mname}." if mname else ""
        if isinstance(module, PRUNABLE_TYPES):
            candidates.append(PrunableLayer(prefix + "weight", mname, module, "weight"))
        elif isinstance(module, nn.MultiheadAttention):
            if include_attention and getattr(module, "_qkv_same_embed_dim", True) and _has(module, "in_proj_weight"):
                # out_proj is an nn.Linear subclass and is picked up as its own module.
                candidates.append(PrunableLayer(prefix + "in_proj_weight", mname, module, "in_proj_weight"))
        elif "parametrizations" not in mname.split("."):  # a parametrized weight's own parts are not tied
            for pname, p in module.named_parameters(recurse=False):
                dense.setdefault(id(p), prefix + pname)
    layers: list[PrunableLayer] = []
    owner: dict[int, str] = {}
    zero_size: list[str] = []
    for layer in candidates:
        # A weight computed from others — the old hook-based weight_norm/spectral_norm (whose `weight_orig` is
        # not torch pruning's) or a torch parametrization (not a Parameter) — takes no torch pruning mask and
        # no gradient: every method kept none of it and `apply` failed. It stays dense, as an embedding does.
        computed = _computed_by(layer)
        if computed:
            said = (layer.name, *computed)  # not its shape: reading a parametrized weight runs its parametrization
            if said not in _warned_computed:
                _warned_computed.add(said)
                log.warning(
                    "%s is computed by %s: it stays dense. To prune it, remove that first (%s)", layer.name, *computed
                )
            continue
        param = layer.parameter
        if not isinstance(param, nn.parameter.UninitializedParameter) and param.numel() == 0:
            zero_size.append(layer.name)  # a zero-width layer (nn.Linear(8, 0)) has nothing to keep or prune
            continue
        key = id(param)  # a Parameter lives on its module, so its id stays unique while we look
        if key in dense:
            if (layer.name, dense[key]) not in _warned_tied:
                _warned_tied.add((layer.name, dense[key]))
                log.warning(
                    "%s is tied to %s, which is never pruned: it stays dense (pruning it would prune %s)",
                    layer.name,
                    dense[key],
                    dense[key],
                )
            continue
        if key in owner:
            raise TiedWeightsError(
                f"{owner[key]} and {layer.name} share one weight tensor (tied weights); autosparse gives each "
                "prunable layer its own mask, which would mask that tensor two ways. Untie them before pruning "
                f"(e.g. set {layer.module_name}.weight = nn.Parameter({owner[key]}.detach().clone()))"
            )
        owner[key] = layer.name
        layers.append(layer)
    lazy = [la.name for la in layers if isinstance(la.parameter, nn.parameter.UninitializedParameter)]
    if lazy:
        raise ConfigError(
            f"{', '.join(lazy[:3])}{' and more' if len(lazy) > 3 else ''} {'is' if len(lazy) == 1 else 'are'} of a "
            "lazy module whose shape is not known yet: run the model once on a batch of its inputs (model(x)) so its "
            "weights materialise, then prune it"
        )
    if not layers and isinstance(model, torch.jit.ScriptModule):
        raise NoPrunableLayersError(
            f"{type(model).__name__} is a TorchScript module, whose layers are not nn.Linear / nn.Conv2d objects: "
            "prune the eager model (before torch.jit.script or torch.jit.trace), then script the pruned one"
        )
    if not layers and zero_size:
        raise NoPrunableLayersError(
            f"{type(model).__name__}'s prunable layers hold no weight ({', '.join(zero_size[:3])} "
            f"{'is' if len(zero_size) == 1 else 'are'} zero-size): there is nothing to prune"
        )
    if not layers:
        raise NoPrunableLayersError(
            f"{type(model).__name__} has no prunable layer (nn.Linear, nn.Conv1d, nn.Conv2d or "
            "nn.MultiheadAttention); autosparse prunes the weights of those modules only"
        )
    return layers


def legacy_norms(module: nn.Module) -> list[tuple[str, str]]:
    """``(norm, parameter)`` for each old hook-based torch.nn.utils ``weight_norm`` / ``spectral_norm``
    on ``module``; ``torch.nn.utils.remove_<norm>(module, parameter)`` removes it."""
    out = []
    for hook in module._forward_pre_hooks.values():
        for kind, norm in ((WeightNorm, "weight_norm"), (SpectralNorm, "spectral_norm")):
            if isinstance(hook, kind):
                out.append((norm, str(hook.name)))
    return out


def bake_parametrizations(net: nn.Module, *, keep_as: Literal["parameter", "buffer"]) -> None:
    """Replace each ``torch.nn.utils.parametrize`` tensor of a *copy* by the value it computes now.

    For the passes that transform a network's stored tensors (SynFlow's |·|, the path count's
    scales): a parametrization would recombine its transformed parts into something else. Kept as a
    frozen parameter or a buffer (a buffer is never a prunable weight, as the original's was not).
    Not ``parametrize.remove_parametrizations``: it deletes the property from the parametrized
    class, which a deep copy shares with the caller's model (whose layer then has no weight).
    """
    for module in list(net.modules()):
        if parametrize.is_parametrized(module):
            names = list(module.parametrizations.keys())  # type: ignore[union-attr]
            values = {name: getattr(module, name).detach().clone() for name in names}
            module.__class__ = module.__class__.__bases__[0]
            delattr(module, "parametrizations")
            for name, value in values.items():
                if keep_as == "buffer":
                    module.register_buffer(name, value)
                else:
                    module.register_parameter(name, nn.Parameter(value, requires_grad=False))


def is_weight_standardized(module: nn.Module) -> bool:
    """A convolution that standardises its weight in every forward (timm's ``StdConv2d`` /
    ``ScaledStdConv2d``: NF-Nets, BiT ResNet-v2, hybrid ViTs; the common ``WSConv2d``).

    Why it matters: the forward re-centres each output channel's weights, so a masked (zero) weight
    becomes ``-mean/std``: a channel that keeps any weight is dense in the forward, and only the
    channels that keep none are pruned. Found by class name, as the libraries name them.
    """
    name = type(module).__name__
    return isinstance(module, nn.Conv2d) and ("StdConv" in name or "WSConv" in name)


def _computed_by(layer: PrunableLayer) -> tuple[str, str] | None:
    """What computes the layer's weight and the call that removes it, or ``None`` for a stored weight."""
    where = f"model.{layer.module_name}"
    for norm, param in legacy_norms(layer.module):
        if param == layer.param_name:
            return f"a {norm} hook", f"torch.nn.utils.remove_{norm}({where})"
    # asked before reading the weight: reading a parametrized weight runs its parametrization, and spectral_norm's
    # power iteration rewrites its `_u`/`_v` buffers in train mode, which would change the caller's model
    if parametrize.is_parametrized(layer.module, layer.param_name) or not isinstance(layer.parameter, nn.Parameter):
        return (
            "a torch parametrization (e.g. weight_norm or spectral_norm)",
            f"torch.nn.utils.parametrize.remove_parametrizations({where}, {layer.param_name!r})",
        )
    return None


_warned_tied: set[tuple[str, str]] = set()  # (layer, tied to): warned once per process
_warned_computed: set[tuple[str, ...]] = set()  # parametrized layers: warned once per name and cause


def _has(module: nn.Module, attr: str) -> bool:
    return getattr(module, attr, None) is not None or getattr(module, attr + "_orig", None) is not None


def prunable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Name -> trainable weight tensor for every prunable layer (the tensors scores refer to)."""
    return {layer.name: layer.parameter for layer in prunable_layers(model)}


def count_prunable(model: nn.Module) -> int:
    return sum(layer.parameter.numel() for layer in prunable_layers(model))


def safe_deepcopy(model: ModuleT) -> ModuleT:
    """``copy.deepcopy`` that also works on a model pruned with ``torch.nn.utils.prune``.

    Torch pruning stores the masked weight as a plain attribute computed from ``weight_orig``
    (a non-leaf tensor), and ``deepcopy`` refuses non-leaf tensors. Such attributes are
    recomputed by the pruning hook on every forward, so the copy gets a detached value.
    """
    require_module(model, "safe_deepcopy")
    swapped: list[tuple[nn.Module, str, torch.Tensor]] = []
    for module in model.modules():
        for key, value in list(vars(module).items()):
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                swapped.append((module, key, value))
                vars(module)[key] = value.detach()
    try:
        return copy.deepcopy(model)
    finally:
        for module, key, value in swapped:
            vars(module)[key] = value
