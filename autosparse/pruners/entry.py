"""``prune``: the one way a caller's model goes through a method.

The method only answers which weights to keep; everything a caller must be able to rely on
whatever the method — a valid density, data when the method needs it, an untouched model, a
seed that fixes the mask without consuming the caller's random stream, an exact kept count,
the timing the bench reports — is enforced here once.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from autosparse.core.allocation import target_count
from autosparse.core.errors import ConfigError, check_density, check_flag, check_seed
from autosparse.core.init_transform import InitTransform, fingerprint, rescale_factors
from autosparse.core.layers import (
    PRUNABLE_TYPES,
    PrunableLayer,
    is_weight_standardized,
    prunable_layers,
    require_module,
    safe_deepcopy,
)
from autosparse.core.masks import Masks
from autosparse.core.model_io import SHAPE_WORDS, is_shape_error, model_device, param_dtype
from autosparse.core.seeding import seeded
from autosparse.core.text import name_list
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.differentiable import twice_differentiable
from autosparse.pruners.inputs import input_shape_of, require_data, shape_argument
from autosparse.pruners.registry import Pruner, PrunerConfig, available, get_pruner, make_pruner
from autosparse.topology.diagnostics import mask_diagnostics
from autosparse.topology.normalized import normalized_layers
from autosparse.topology.paths import PathStats

log = logging.getLogger(__name__)


@dataclass
class PruneResult:
    masks: Masks
    seconds: float
    method: str
    config: dict[str, Any] = field(default_factory=dict)


def prune(
    model: nn.Module,
    method: str,
    *,
    density: float | None = None,
    sparsity: float | None = None,
    data: Any = None,
    seed: int = 0,
    apply: bool = False,
    config: PrunerConfig | Mapping[str, Any] | None = None,
    check: bool = True,
    **hparams: Any,
) -> Masks:
    """Prune ``model`` at initialisation with a registered ``method``.

    Returns masks keeping exactly ``max(1, round(density * total))`` weights — except where that is
    fewer than the layers and the method allocates per layer (ERK, uniform, NPB, DPaI, ``autos``):
    those keep one weight in every layer, and ``prune`` says so. With ``apply=True`` the
    masks are also applied to ``model`` through :meth:`Masks.apply`: attached the torch way
    (``weight_orig``/``weight_mask``) *and*, for methods that change θ0 besides masking (``autos``,
    ``robust``: kept weights rescaled), that change made once; otherwise the model is left
    untouched. With ``check`` (default) a layer left empty or with no input-to-output path is
    warned about once and recorded in ``masks.meta["diagnostics"]``.

    ``data`` (data-dependent methods: SNIP, GraSP, ``autos``…) is an ``(inputs, targets)`` batch, a
    list of such batches or a DataLoader — every batch it yields is read, so pass a few (GraSP's
    and SynFlow's recipe is ten examples per class), not a whole training loader. ``seed`` seeds the
    method's own randomness (random masks, tie-breaking), not the model's weights. ``**hparams``
    are the method's hyperparameters (``autosparse methods METHOD`` lists them, e.g. ``scorer=`` for
    ``autos``); ``config`` is the same as a dataclass or mapping, and a keyword given in both
    takes the keyword's value.
    """
    return prune_timed(
        model,
        method,
        density=density,
        sparsity=sparsity,
        data=data,
        seed=seed,
        apply=apply,
        config=config,
        check=check,
        **hparams,
    ).masks


#: how torch's dtype errors spell an integer input dtype: a conv's C type, a matmul's scalar type name
_INT_SPELLINGS = {
    torch.uint8: ("unsigned char", "Byte"),
    torch.int8: ("signed char", "Char"),
    torch.int16: ("short int", "Short"),
    torch.int32: ("int", "Int"),
    torch.int64: ("long int", "Long"),
}


def _names_input_dtype(text: str, dtype: torch.dtype) -> bool:
    """Whether torch's error is the inputs' integer dtype meeting a float layer (uint8 images fed as they
    are), not another dtype clash inside the model (a float64 head after an embedding of token ids)."""
    if dtype not in _INT_SPELLINGS:
        return False
    c_type, scalar = _INT_SPELLINGS[dtype]
    return f"Input type ({c_type})" in text or f"got {scalar} and" in text


def _shape_error(exc: Exception, method: str, data: PruningData | None, configured: Any) -> Exception:
    """The model could not run on the inputs it was given: say which inputs and what to pass, with
    torch's own message; any other runtime error is returned as it is."""
    text = str(exc)
    if data is not None and _names_input_dtype(text, data.batches[0][0].dtype):
        return ConfigError(
            f"{method} could not run the model on {data.batches[0][0].dtype} inputs, which it does not convert: "
            f"{text.splitlines()[0]}; pass the inputs as your training loop feeds them (e.g. x.float() / 255)"
        )
    if "more than 1 value per channel when training" in text:  # a train-mode BatchNorm on one example
        return ConfigError(
            f"{method} ran the model in train mode on a batch of one example, which BatchNorm cannot normalise "
            f"({text.splitlines()[0]}): "
            + (
                "choose num_samples and batch_size that leave no chunk of one example (its own inputs)"
                if method == "ntk_sap"
                else "give pruning batches of two or more examples (a DataLoader's last batch too: drop_last=True)"
            )
        )
    if not is_shape_error(exc):
        return exc
    given = f"inputs of shape (N, {', '.join(map(str, data.input_shape))})" if data is not None else "its inputs"
    shapes = list(dict.fromkeys(tuple(x.shape[1:]) for x, _ in data.batches)) if data is not None else []
    if len(shapes) > 1:  # the first batch's shape was named where another batch had failed (helper)
        given = "pruning batches of several input shapes, " + ", ".join(
            f"(N, {', '.join(map(str, s))})" for s in shapes
        )
    if configured:
        given = f"input_shape={tuple(configured)}"
    return ConfigError(
        f"{method} could not run the model on {given}: {text.splitlines()[0]}; pass pruning data (or input_shape) "
        "of the shape the model takes"
    )


def _check_own_inputs(pruner: Pruner, method: str, model: nn.Module, data: PruningData | None) -> None:
    """A method that runs the model on float inputs of its own cannot run a model that reads token
    ids into an ``nn.Embedding``: say so, naming the methods that can, not an embedding's dtype error."""
    if not pruner.own_inputs or data is None or data.batches[0][0].is_floating_point():
        return
    if not any(isinstance(m, nn.Embedding) for m in model.modules()):
        return  # integer inputs the model converts itself (uint8 images): its own float inputs work too
    usable = [m for m in available() if m != "imp" and not get_pruner(m).own_inputs]
    raise ConfigError(
        f"{method} runs the model on float inputs of its own, but this model reads "
        f"{data.batches[0][0].dtype} token ids into an nn.Embedding; use a method that does not: {', '.join(usable)}"
    )


def prune_timed(
    model: nn.Module,
    method: str,
    *,
    density: float | None = None,
    sparsity: float | None = None,
    data: Any = None,
    seed: int = 0,
    apply: bool = False,
    config: PrunerConfig | Mapping[str, Any] | None = None,
    check: bool = True,
    **hparams: Any,
) -> PruneResult:
    """:func:`prune` that also reports the wall time spent computing the mask (the diagnostics of
    ``check`` are not in that time)."""
    d = check_density(density, sparsity)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(f"seed must be an integer (it seeds the method's own randomness), got {seed!r}")
    seed = check_seed(int(seed))
    require_module(model, "prune")
    apply, check = check_flag(apply, "apply"), check_flag(check, "check")
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        raise ConfigError(
            f"the model is wrapped in {type(model).__name__}: prune model.module (the masks name its layers), "
            "then wrap it again"
        )
    if isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile's OptimizedModule
        raise ConfigError(
            "the model is compiled (torch.compile): prune model._orig_mod (the masks name its layers, and the path "
            "pass would compile every copy), apply the masks to it, then compile it again"
        )
    compiled = [n for n, m in model.named_modules() if n and isinstance(getattr(m, "_orig_mod", None), nn.Module)]
    if compiled:  # a compiled part reached torch: GraSP's double backward failed on "donated buffers" (helper)
        raise ConfigError(
            f"part of the model is compiled (torch.compile): {name_list(compiled)}; prune the model before compiling "
            "that part (build it uncompiled), apply the masks, then compile it"
        )
    if any(p.is_meta for p in model.parameters()):
        raise ConfigError(
            "the model's weights are on the meta device (shapes without values), and pruning at initialisation "
            "reads the initial weights: materialise and initialise it first, e.g. model.to_empty(device='cpu') and "
            "then each module's reset_parameters() (or build it without device='meta')"
        )
    # gradients on, inference mode off, for the pruning only: a caller's `with torch.no_grad()` (or
    # `inference_mode`) around its set-up made SNIP, GraSP, SynFlow… raise "does not require grad", and
    # NPB silently return a mask with no path (its solver's steps ran as inference tensors)
    with torch.inference_mode(False), torch.enable_grad():
        # every method takes input_shape, so one loop can run them all: the data-free ones that run the
        # model read it, the others use it for the path diagnostics only
        shape = shape_argument(hparams.pop("input_shape", None))
        pruner = make_pruner(method, config, **hparams)
        if shape is not None and hasattr(pruner.config, "input_shape"):
            pruner = make_pruner(method, config, **hparams, input_shape=shape)
        _warn_zero_layers(prunable_layers(model))  # and fail early and clearly on a model with nothing to prune
        # a shuffled DataLoader draws its order from torch's generator as it is read: under the seed, the
        # mask is the seed's and the caller's stream is left as it was (the global state decided it; helper)
        with seeded(seed, model_device(model)):
            pdata = require_data(data, method) if pruner.data_dependent else PruningData.coerce(data)
        _check_own_inputs(pruner, method, model, pdata)
        work = twice_differentiable(safe_deepcopy(model))
        if param_dtype(work) in (torch.float16, torch.bfloat16):
            # half-precision scores tie and underflow: bfloat16 left ~1,100 distinct SNIP scores among 5,208
            # weights, and iter_snip kept 366 of 521 weights other than it keeps on the same weights scored in
            # float32 (helper). Every method scores a float32 copy, as GraSP did; the weights are the same
            work = work.float()
        # the math attention kernel: torch's fused CPU/flash kernels have no double backward, which
        # GraSP's Hessian-gradient product and ProsPr's meta-gradient take through every attention
        with seeded(seed, model_device(model)), sdpa_kernel(SDPBackend.MATH):
            start = time.perf_counter()
            try:
                masks = pruner.masks(work, pdata, d, seed=seed)
            except (RuntimeError, ValueError) as exc:  # ValueError: BatchNorm's rank check
                told = _shape_error(exc, method, pdata, getattr(pruner.config, "input_shape", None) or shape)
                if told is exc:
                    raise
                raise told from exc
            seconds = time.perf_counter() - start
        measured = pruner.measured_paths(masks)
        masks = Masks(
            masks.to_dict(),
            # what else decides the mask (a learned scorer's weights and card), so a saved mask says what made it
            # the thread count orders float sums: ProsPr's meta-gradient swapped a few kept weights at another
            meta={
                **masks.meta,
                "method": method,
                "density": d,
                "seed": seed,
                "torch_threads": torch.get_num_threads(),
                # every hyperparameter the method ran with, given or default: from Python too (only the CLI
                # recorded them, so a saved non-default mask read as a default one; hunt)
                "hparams": dataclasses.asdict(pruner.config),
                **_identity(pruner),
            },
            init=_init_transform(model, masks, pruner.config, pdata, method, rescale=pruner.rescales(masks)),
        )
        masks.validate(model)
        asked = target_count(masks.total, d)
        if masks.kept != asked and asked < len(masks):  # the only case a method may miss the count by
            log.warning(
                "%s kept %d weights, not the %d asked for (density %.4g of %d): it keeps at least one weight in "
                "each of the %d layers",
                method,
                masks.kept,
                asked,
                d,
                masks.total,
                len(masks),
            )
        log.debug("%s: %d of %d weights kept (density %.4g) in %.2fs", method, masks.kept, masks.total, d, seconds)
        _warn_unprunable(model, masks)
        _warn_standardized(model, masks)
        lost = masks.pruned_before(model)
        if lost and not apply:  # apply says it itself
            log.warning(
                "%s", masks.pruned_before_text(lost, "applied to this model or trained on it, the two combine, and")
            )
        if check:
            configured = getattr(pruner.config, "input_shape", None) or shape
            record_collapse(model, masks, pdata, configured, method, measured=measured)
    if apply:
        masks.apply(model)  # in any caller mode (see Masks.apply)
    return PruneResult(masks, seconds, method, dataclasses.asdict(pruner.config))


def _identity(pruner: Any) -> dict[str, Any]:
    identity = pruner.config.identity()
    return {"identity": identity} if identity else {}


def _finite(w: torch.Tensor) -> bool:
    """No NaN or inf in ``w``: its extremes say it without a weight-sized temporary (float8 has no isfinite)."""
    if w.numel() == 0:
        return True
    try:
        return bool(torch.isfinite(torch.stack([w.amax(), w.amin()]).float()).all())
    except (NotImplementedError, RuntimeError):
        return True  # a dtype without these reductions: nothing said, nothing refused


def _warn_zero_layers(layers: list[PrunableLayer]) -> None:
    """Name the layers whose weight is all zero at initialisation (torchvision's ViT and timm's
    MLP-Mixer zero their heads): gradient- and flow-based scores are zero in every layer then, and
    magnitude keeps none of them; the user should hear which layer, before any error."""
    zero = [la.name for la in layers if not bool(la.weight.detach().any())]
    broken = [la.name for la in layers if not _finite(la.weight.detach())]
    if broken:  # magnitude and random keep them, and the gradient methods blame their own pass
        log.warning(
            "%s: NaN or infinite weights at initialisation; every mask made from them is meaningless and a kept "
            "one poisons training. Re-initialise the model (check its init code or the checkpoint it loaded)",
            name_list(broken),
        )
    if zero:
        log.warning(
            "%s: all zero at initialisation, so every score that multiplies through it (snip, grasp, synflow, "
            "ntk_sap, prospr, autos' features) is zero, and magnitude keeps none of it. Re-initialise it before "
            "pruning (e.g. nn.init.kaiming_uniform_(weight, a=5 ** 0.5), as nn.Linear does), or use random, "
            "random_erk or phew",
            name_list(zero),
        )


#: modules whose weights are pruned (or reported) elsewhere, or are lookup tables, not connections; not
#: nn.MultiheadAttention: its in_proj_weight is pruned, but with kdim/vdim its q/k/v_proj_weight are not (helper)
_NOT_DENSE_WEIGHTS: tuple[type[nn.Module], ...] = (
    *PRUNABLE_TYPES,
    nn.Embedding,
    nn.EmbeddingBag,
)
_warned_unprunable: set[tuple[str, ...]] = set()


def _warn_unprunable(model: nn.Module, masks: Masks) -> None:
    """Say once when layers autosparse does not prune hold weights: a Conv3d net's report read
    density 0.05 while 96% of its weights stayed dense (review), and an ``nn.Bilinear`` or a user's
    own layer (``self.weight`` and ``F.linear``) stays dense just as silently. A weight is a
    parameter named ``*weight*`` with two or more axes (a class token or position embedding is not)."""
    pruned = {id(layer.parameter) for layer in prunable_layers(model)}
    found: dict[str, int] = {}
    for mname, module in model.named_modules():
        if isinstance(module, _NOT_DENSE_WEIGHTS) or "parametrizations" in mname.split("."):
            continue
        n = sum(
            p.numel()
            for name, p in module.named_parameters(recurse=False)
            if "weight" in name and p.dim() >= 2 and id(p) not in pruned
        )
        if n:
            found[type(module).__name__] = found.get(type(module).__name__, 0) + n
    dense = sum(found.values())
    key = (*sorted(found), str(dense), str(masks.total))  # once per kind of network, not once per layer type
    if not found or key in _warned_unprunable:
        return
    _warned_unprunable.add(key)
    log.warning(
        "%d weights in %s layers are not pruned (autosparse prunes Linear, Conv1d/2d and attention without "
        "kdim/vdim): the "
        "masks keep %d of %d prunable weights, %d of %d weights in all (density %.4g)",
        dense,
        ", ".join(sorted(found)),
        masks.kept,
        masks.total,
        masks.kept + dense,
        masks.total + dense,
        (masks.kept + dense) / (masks.total + dense),
    )


_warned_standardized: set[tuple[str, ...]] = set()


def _warn_standardized(model: nn.Module, masks: Masks) -> None:
    """Say once what a mask does to weight-standardised convs: less than it reads.

    The forward re-centres each output channel's weights, so the masked ones are not zero there; only
    channels that keep no weight are pruned. A user training an NF-Net at "1% density" should know
    how many weights its forward really uses (the masks, and every count in the report, are of the
    stored weights).
    """
    layers = {la.name: la for la in prunable_layers(model) if la.name in masks}
    std = [n for n, la in layers.items() if is_weight_standardized(la.module)]
    kinds = sorted({type(layers[n].module).__name__ for n in std})
    key = (*std, *kinds, str(masks.kept))
    if not std or key in _warned_standardized:
        return
    _warned_standardized.add(key)
    kept = sum(int(masks[n].sum()) for n in std)
    used = sum(int(masks[n].flatten(1).any(1).sum()) * masks[n][0].numel() for n in std)
    total = sum(masks[n].numel() for n in std)
    log.warning(
        "%d layer(s) standardise their weights in the forward (%s: %s): a masked weight is re-centred to a "
        "non-zero value there, so only output channels that keep no weight are pruned. The masks keep %d of "
        "their %d weights; their forward uses %d. For a mask that is sparse in the forward, use a variant "
        "without weight standardisation (e.g. timm:resnet26 for timm:nf_resnet26)",
        len(std),
        ", ".join(kinds),
        name_list(std),
        kept,
        total,
        used,
    )


def record_collapse(
    model: nn.Module,
    masks: Masks,
    data: PruningData | None,
    configured: Sequence[int] | None,
    method: str,
    *,
    measured: tuple[tuple[int, ...], PathStats] | None = None,
) -> None:
    """Warn once, naming them, and record in ``masks.meta`` the layers a method left empty or
    with no input-to-output path (``meta["diagnostics"]``, see
    :func:`~autosparse.topology.diagnostics.mask_diagnostics`).

    Why here: SynFlow and SNIP empty most of a small ViT's layers at 50% density, and a caller
    of the API should hear it before training to chance accuracy, not only readers of the CLI.
    """
    try:
        shape: tuple[int, ...] | None = input_shape_of(method, configured, data, model)
    except ConfigError:
        shape = None  # no data, no configured shape: only empty layers can be found
    # the method's own measurement of these masks, when it made one on the same input shape
    # (the working copy it pruned has the caller's weights, so the counts are the same)
    stats = measured[1] if measured is not None and shape is not None and tuple(measured[0]) == tuple(shape) else None
    diag = masks.meta["diagnostics"] = mask_diagnostics(model, masks, shape, warn=True, stats=stats)
    failed = str(diag["paths"]).lower()
    if configured and shape == tuple(configured) and any(w in failed for w in SHAPE_WORDS):
        # a method that never runs the model (random, magnitude) took a wrong shape without a word; with
        # data, input_shape overrides its shape for these counts, also silently (helper)
        own = PruningData.coerce(data).input_shape if data is not None else None  # type: ignore[union-attr]
        hint = (
            f"the pruning data's examples are {tuple(own)}: drop input_shape, or make it match"
            if own is not None and tuple(own) != tuple(configured)
            else "give the shape of one example, without the batch axis (e.g. input_shape=(3, 32, 32))"
        )
        log.warning(
            "the path diagnostics could not run the model on the input_shape given, %s: %s; %s",
            tuple(configured),
            diag["paths"].removeprefix("unavailable (").removesuffix(")"),
            hint,
        )
    elif data is not None and shape is not None and any(w in failed for w in SHAPE_WORDS):
        # a method that never runs the model took data the model cannot take without a word (helper)
        log.warning(
            "the path diagnostics could not run the model on the pruning data's examples, of shape %s: %s; %s does "
            "not run the model itself, so nothing else noticed: give data of the shape the model takes",
            tuple(shape),
            diag["paths"].removeprefix("unavailable (").removesuffix(")"),
            method,
        )


def _init_transform(
    model: nn.Module, masks: Masks, config: PrunerConfig, data: PruningData | None, method: str, *, rescale: bool
) -> InitTransform | None:
    """What the masks change in θ0: the method's own (e.g. robust's branch scales) plus the
    rescaling when the config asks for it, fingerprinted on the caller's θ0.

    Layers that feed a normalization layer are not rescaled unless ``rescale_normalized``: the
    normalization undoes the scale in the forward pass, so it would only slow their learning
    (:mod:`autosparse.topology.normalized`)."""
    own = masks.init
    if not rescale and not own:
        return None
    factors = {}
    if rescale:
        skip = set() if config.rescale_normalized else _normalized(model, data, config, method)
        factors = rescale_factors(model, masks, config.rescale_granularity, skip=skip)
    return InitTransform(
        factors=factors,
        branch_scale=dict(own.branch_scale) if own else {},
        fingerprint=fingerprint(model),
        granularity=config.rescale_granularity if rescale else "",
    )


def _normalized(model: nn.Module, data: PruningData | None, config: PrunerConfig, method: str) -> set[str]:
    """The prunable layers feeding a normalization layer, probed on the pruning data's first inputs
    (or zeros of the known input shape); none when neither is at hand."""
    if data is not None:
        example = data.batches[0][0][:2]
    else:
        try:
            shape = input_shape_of(method, getattr(config, "input_shape", None), None, model)
        except ConfigError:
            return set()
        example = torch.zeros((2, *shape), device=next(model.parameters()).device)
    return normalized_layers(model, example)
