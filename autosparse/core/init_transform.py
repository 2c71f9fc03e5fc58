"""What a pruning method changes in the network besides zeroing weights, applied once at θ0.

Why this exists: at extreme sparsity a connected mask can still be untrainable — each unit keeps
a handful of its inputs, so the pre-activation variance shrinks layer after layer (Hayou et al.,
*Robust Pruning at Initialization*, ICLR 2021). Their fixes change the network the mask was
chosen for: the kept weights are rescaled, and (for ResNets) residual branches are scaled by
1/sqrt(L). A mask alone cannot carry that, so an :class:`InitTransform` rides along with the
masks (``Masks.init``), is saved next to them, and ``Masks.apply`` performs it — exactly once,
and only on the weights it was computed on, so a plain training script gets it right too.

Everything here is data (factors, module names, scales), so applying it needs no knowledge of
the method that produced it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from autosparse.core.errors import ConfigError, MaskError
from autosparse.core.layers import prunable_layers

#: ``paper``: one factor per (output unit, kernel position) — the sum over input channels, as in
#: Hayou et al.; ``unit``: one factor per output unit (linear: identical to ``paper``).
GRANULARITIES = ("paper", "unit")
#: the module attribute that marks a model as prepared: (the transform's token, the weights' fingerprint after it)
PREPARED_ATTR = "_autosparse_init_transform"
BRANCH_SCALE_ATTR = "_autosparse_branch_scale"
#: relative tolerance of the θ0 fingerprint: float64 sums of the same float32 weights agree to ~1e-12
FINGERPRINT_RTOL = 1e-6


def fingerprint(model: nn.Module) -> dict[str, list[float]]:
    """(Σw, Σw²) in float64 of every prunable weight: enough to tell θ0 from any other weights."""
    out = {}
    for layer in prunable_layers(model):
        w = layer.parameter.detach().to(torch.float64)
        out[layer.name] = [float(w.sum()), float(w.pow(2).sum())]
    return out


def rescale_factors(
    model: nn.Module, masks: Mapping[str, torch.Tensor], granularity: str = "paper", *, skip: Collection[str] = ()
) -> dict[str, torch.Tensor]:
    """Hayou et al.'s rescaling: per output unit (or unit and kernel position), sqrt(dense / kept) energy.

    ``ρ = sqrt(Σ_j w_j² / Σ_j δ_j w_j²)`` over what feeds one unit, from the model's current
    (dense, θ0) weights; ρ ≡ 1 for an unpruned unit and for a unit with nothing kept. Returned in
    compact form, broadcastable to the weight: ``(out, 1)`` for linear layers, ``(out, 1, *kernel)``
    (``paper``) or ``(out, 1, 1, …)`` (``unit``) for convolutions. Layers in ``skip`` get no factor.
    """
    if granularity not in GRANULARITIES:
        raise ConfigError(f"unknown rescale granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}")
    factors: dict[str, torch.Tensor] = {}
    for layer in prunable_layers(model):
        if layer.name in skip:
            continue
        w = layer.parameter.detach()
        keep = masks[layer.name].to(device=w.device, dtype=torch.bool)
        if tuple(keep.shape) != tuple(w.shape):
            raise MaskError(f"mask {layer.name} has shape {tuple(keep.shape)}, the weight {tuple(w.shape)}")
        w64 = w.to(torch.float64)
        # the pruned weights, and only they, are zero: a mask baked in already (remove_masks, training). An
        # initialisation with zeros of its own (nn.init.sparse_) keeps some of them too, and is θ0 (helper)
        if bool((~keep).any()) and bool(keep.any()) and bool(((w64 == 0) == ~keep).all()):
            raise ConfigError(
                f"every pruned weight of {layer.name} is already zero, and every kept one is not: the masks look "
                "baked in, so the dense variance to restore is lost; compute the rescaling on θ0, before the masks "
                "are baked in (before remove_masks or training). If those zeros are θ0's own (a sparse "
                "initialisation), the rescale has nothing to restore there: pass rescale=False"
            )
        sq = w64.pow(2)
        dims = (1,) if granularity == "paper" or w.dim() <= 2 else tuple(range(1, w.dim()))
        dense = sq.sum(dim=dims, keepdim=True)
        kept = (sq * keep).sum(dim=dims, keepdim=True)
        rho = torch.where(kept > 0, torch.sqrt(dense / kept.clamp_min(torch.finfo(torch.float64).tiny)), 1.0)
        factors[layer.name] = rho.to(torch.float32).cpu()
    return factors


def _scale_output(module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
    return output * getattr(module, BRANCH_SCALE_ATTR)


def scale_branches(model: nn.Module, branch_scale: Mapping[str, float]) -> None:
    """Multiply the output of each named module by its scale, with a forward hook (idempotent).

    The hook is a module-level function reading the scale from a module attribute, so it survives
    ``copy.deepcopy`` and pickling; it is not in ``state_dict``, so a model rebuilt from a state
    dict must be prepared again.
    """
    modules = dict(model.named_modules())
    missing = sorted(set(branch_scale) - set(modules))
    if missing:
        raise MaskError(
            f"the masks scale the outputs of modules {missing[:3]} that this {type(model).__name__} does not have; "
            "they were made for another model — prune this one again"
        )
    for name, scale in branch_scale.items():
        module = modules[name]
        if hasattr(module, BRANCH_SCALE_ATTR):
            continue
        setattr(module, BRANCH_SCALE_ATTR, float(scale))
        module.register_forward_hook(_scale_output)


def _same_sums(a: Mapping[str, list[float]], b: Mapping[str, list[float]]) -> bool:
    """The same weights' fingerprints: equal to 1e-10, as float64 sums taken at another thread count
    differ in their last bits (an exact comparison rescaled bfloat16 weights twice, review) while a
    second rescale moves them far more."""

    def close(x: list[float], y: list[float]) -> bool:  # Σw's error is relative to Σ|w|, not to Σw (near 0)
        scale = math.sqrt(abs(x[1])) * 1e-9 + 1e-12
        return math.isclose(x[0], y[0], rel_tol=1e-10, abs_tol=scale) and math.isclose(x[1], y[1], rel_tol=1e-10)

    return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)


def prepared_token(model: nn.Module) -> str | None:
    """The token of the transform that prepared ``model`` (see :data:`PREPARED_ATTR`), or None."""
    marker = getattr(model, PREPARED_ATTR, None)
    return marker[0] if isinstance(marker, tuple) else marker


@dataclass
class InitTransform:
    """Rescaling factors and branch scales a method prescribes for θ0 (see the module docstring)."""

    factors: dict[str, torch.Tensor] = field(default_factory=dict)  # compact, broadcastable to each weight
    branch_scale: dict[str, float] = field(default_factory=dict)  # module name -> output multiplier
    fingerprint: dict[str, list[float]] = field(default_factory=dict)  # of the θ0 the factors were computed on
    granularity: str = ""

    def __bool__(self) -> bool:
        return bool(self.factors or self.branch_scale)

    @property
    def token(self) -> str:
        """Identifies this transform on a model it was applied to (see :data:`PREPARED_ATTR`). The
        factors' digest is part of it: two masks pruned from one θ0 at two densities had one token, so
        the second's rescale was skipped as done (review)."""
        sums = sorted((k, round(v[0], 9), round(v[1], 9)) for k, v in self.fingerprint.items())
        h = hashlib.sha256()
        for name in sorted(self.factors):
            f = self.factors[name].detach().to("cpu", torch.float64).contiguous()
            h.update(f"{name}:{tuple(f.shape)}".encode() + f.numpy().tobytes())
        return repr((sums, sorted(self.branch_scale.items()), self.granularity, h.hexdigest()[:16]))

    def describe(self) -> dict[str, object]:
        """The JSON part (the factors themselves go to a safetensors file)."""
        return {
            "rescale": bool(self.factors),
            "granularity": self.granularity,
            "branch_scale": dict(self.branch_scale),
            "fingerprint": {k: list(v) for k, v in self.fingerprint.items()},
        }

    def check_weights(self, model: nn.Module) -> None:
        """Raise unless ``model``'s prunable weights are the θ0 this transform was computed on."""
        wrong = self._not_theta0(model)
        if wrong is not None:
            raise MaskError(wrong)

    def _not_theta0(self, model: nn.Module) -> str | None:
        """Why ``model``'s prunable weights are not this transform's θ0, or None when they are."""
        if not self.factors or not self.fingerprint:
            return None
        now = fingerprint(model)
        # the same θ0 cast to bfloat16 / float16 moves each weight by up to half its precision
        dtypes = {layer.name: layer.parameter.dtype for layer in prunable_layers(model)}
        for name, (s1, s2) in self.fingerprint.items():
            if name not in now:
                return f"the masks' rescaling names layer {name!r}, which this model does not have"
            t1, t2 = now[name]
            dtype = dtypes[name]
            rtol = max(FINGERPRINT_RTOL, torch.finfo(dtype).eps if dtype.is_floating_point else 0.0)
            if not math.isclose(t2, s2, rel_tol=rtol) or not math.isclose(
                t1, s1, rel_tol=rtol, abs_tol=rtol * math.sqrt(max(s2, 0.0))
            ):
                return (
                    f"layer {name!r} does not hold the weights these masks were computed on (rescaling them again "
                    "would be wrong): apply the masks to the freshly initialised model they were pruned from "
                    "(same model, same seed), or drop the rescaling with masks.without_init()"
                )
        return None

    def apply(self, model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> bool:
        """Rescale the kept weights and scale the branches of ``model`` in place, once.

        With ``masks``, pruned weights keep their θ0 values (only kept weights are multiplied), so
        a torch-pruned model's ``weight_orig`` stays θ0 where the mask is off. Returns False (doing
        nothing) when ``model`` was already prepared by this transform.
        """
        if not self:
            return False
        prepared = prepared_token(model)
        if prepared == self.token and not self._reset_to_theta0(model):
            return False
        if not self.factors and prepared is not None:
            # branch scales alone (``Masks.without_init``) on a prepared model: its hooks are there (adding
            # them is idempotent) and its token must stay the full transform's, or the masks' own apply
            # afterwards reads the trained weights as foreign
            scale_branches(model, self.branch_scale)
            return False
        self.check_weights(model)
        if self.branch_scale:
            scale_branches(model, self.branch_scale)
        if self.factors:
            with torch.no_grad():
                for layer in prunable_layers(model):
                    f = self.factors.get(layer.name)
                    if f is None:
                        continue
                    p = layer.parameter
                    f = f.to(device=p.device, dtype=p.dtype)
                    if masks is not None:
                        f = torch.where(
                            masks[layer.name].to(p.device), f, torch.ones((), dtype=p.dtype, device=p.device)
                        )
                    p.mul_(f)
        setattr(model, PREPARED_ATTR, (self.token, fingerprint(model)))
        return True

    def _reset_to_theta0(self, model: nn.Module) -> bool:
        """Whether a model this transform prepared holds θ0 again: a reset by load_state_dict(θ0) keeps
        the marker, and a seed loop's second run trained from the plain θ0 (review). Weights still as
        prepared (their fingerprint unchanged, to 1e-10) are not: in bfloat16 a near-dense rescale
        stays within θ0's tolerance, and was applied twice."""
        if not self.factors:
            return False
        marker = getattr(model, PREPARED_ATTR, None)
        if isinstance(marker, tuple) and _same_sums(fingerprint(model), marker[1]):
            return False
        return self._not_theta0(model) is None
