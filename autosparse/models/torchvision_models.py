"""Any torchvision classification model as ``tv:<name>``, randomly initialised and fitted to the data.

``torchvision.models.get_model(name, weights=None, num_classes=...)`` builds the network --
pretrained weights are never loaded (a ``weights``/``pretrained`` option is an error), since
pruning *at initialisation* on pretrained weights would be a different experiment. Then:

- **Input channels.** If the data's channel count differs from the model's (1-channel
  Fashion-MNIST into a 3-channel ResNet), the first ``nn.Conv2d`` is replaced by one with the
  right ``in_channels`` and otherwise identical geometry. Its weights are drawn from a normal
  whose standard deviation is the original's scaled by sqrt(old fan-in / new fan-in), so the
  first layer's pre-activations keep the variance the model was designed for.
- **Small images (CIFAR stem).** torchvision ResNets/ResNeXts/Wide-ResNets begin with a 7x7
  stride-2 convolution and a stride-2 max pool, which turn a 32x32 image into 8x8 before the
  first block. With ``cifar_stem`` (default: on for images smaller than 64 pixels) the stem is
  replaced by a 3x3 stride-1 convolution and the max pool is removed, as in the CIFAR ResNet-18
  of the pruning literature (e.g. Synaptic-Flow's ResNet-18 anchor numbers).
- **Vision Transformers** (``vit_*``) get ``image_size`` equal to the (square) input size, which
  must be a multiple of the patch size (``vit_b_16`` on 32x32 -> 2x2 patches); MaxViT gets
  ``input_size``. GoogLeNet/Inception-v3 are built without auxiliary heads so that ``forward``
  returns plain logits.

Every model is checked with one forward pass on a zero batch at build time, so a model that
cannot take the input size (Inception-v3 needs 75x75) fails here with a ConfigError naming the
shape, not later inside training. Other keyword options are passed to torchvision unchanged
(strings from the CLI are read as Python literals: ``dropout="0.2"`` -> 0.2).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import torch
from torch import nn

from autosparse.core.errors import ConfigError, UnknownNameError
from autosparse.models.info import TV_PREFIX, ModelInfo, coerce_value

_FORBIDDEN = ("weights", "pretrained", "weights_backbone", "progress")
_RESNET_PREFIXES = ("resnet", "resnext", "wide_resnet")
SMALL_IMAGE = 64  # below this side length the CIFAR stem is applied by default


@cache
def torchvision_names() -> list[str]:
    """Names of torchvision's image-classification models (not detection/segmentation/video)."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _check_name(name: str) -> None:
    names = torchvision_names()
    if name not in names:
        raise UnknownNameError(
            "torchvision model", name, names, hint=f"write it as {TV_PREFIX}<name>, e.g. {TV_PREFIX}resnet18"
        )


def _is_resnet(name: str) -> bool:
    return name.startswith(_RESNET_PREFIXES)


def torchvision_info(name: str) -> ModelInfo:
    """Registry entry for ``tv:<name>`` (built on demand: torchvision has ~80 models)."""
    _check_name(name)
    options: dict[str, Any] = {"cifar_stem": None} if _is_resnet(name) else {}
    return ModelInfo(
        TV_PREFIX + name,
        f"torchvision {name}, randomly initialised (never pretrained), first conv adapted to the input "
        "channels; other options go to torchvision's constructor",
        ("image",),
        options,
        open_options=True,
    )


def literal(value: Any) -> Any:
    """A CLI/YAML string read as a Python literal (``"0.2"`` -> 0.2); anything else as given."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def check_image_call(
    full: str, library: str, input_shape: tuple[int, ...], kwargs: dict[str, Any], forbidden: tuple[str, ...]
) -> None:
    """A library model is built at random init for an image shape: refuse weight-loading options
    (pruning at initialisation needs a random init) and non-image inputs, naming the fix."""
    bad = [k for k in kwargs if k in forbidden]
    if bad:
        raise ConfigError(
            f"{full}: option {', '.join(bad)} is not accepted; autosparse never loads pretrained weights "
            "(pruning at initialisation needs a random init)"
        )
    if len(input_shape) != 3:
        raise ConfigError(
            f"{full} cannot take input shape {input_shape}: {library} models take images (C, H, W) such as "
            "(3, 32, 32) or (1, 28, 28); for 1-D signals use cnn1d or mlp"
        )


def build_torchvision(
    name: str, input_shape: tuple[int, ...], num_classes: int, *, cifar_stem: bool | None = None, **kwargs: Any
) -> nn.Module:
    """Build ``tv:<name>`` for ``input_shape`` (see the module docstring for the adaptations)."""
    import torchvision

    _check_name(name)
    full = TV_PREFIX + name
    check_image_call(full, "torchvision", input_shape, kwargs, _FORBIDDEN)
    c, h, w = input_shape
    cifar_stem = coerce_value(full, "cifar_stem", cifar_stem, None)
    if cifar_stem and not _is_resnet(name):
        raise ConfigError(f"{full}: option cifar_stem applies only to torchvision ResNet/ResNeXt/Wide-ResNet models")
    options = {k: literal(v) for k, v in kwargs.items()}

    def default() -> nn.Module:
        return build_torchvision(name, input_shape, num_classes, cifar_stem=cifar_stem)

    if name.startswith("vit_"):
        patch = int(name.rsplit("_", 1)[1])
        if h != w or h % patch:
            raise ConfigError(
                f"{full} cannot take input shape {input_shape}: it needs square images whose side is a multiple "
                f"of its patch size {patch} (e.g. (3, {2 * patch}, {2 * patch}) or (3, 224, 224))"
            )
        if options.setdefault("image_size", h) != h:
            raise ConfigError(f"{full}: option image_size={options['image_size']} must equal the input size {h}")
    elif name.startswith("maxvit"):
        options.setdefault("input_size", (h, w))
    elif name in ("googlenet", "inception_v3"):
        options.setdefault("aux_logits", False)
        options.setdefault("init_weights", True)

    try:
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **options)
    except TypeError as exc:
        raise keyword_error(
            full,
            options,
            exc,
            builder=f"torchvision.models.{name} (and cifar_stem for ResNets)",
            variant="or build the architecture's torchvision class yourself with the {key} you want and prune that module",
        ) from None
    except ValueError as exc:  # torchvision's own checks, e.g. MaxViT's partition size vs. the input size
        raise option_error(full, input_shape, exc, kwargs, default) or ConfigError(
            f"{full} cannot be built for input shape {input_shape}: {first_line(exc)}"
        ) from None

    if _is_resnet(name) and (cifar_stem if cifar_stem is not None else min(h, w) < SMALL_IMAGE):
        _cifar_stem(model, c)
    _adapt_first_conv(model, full, c)
    check_forward(model, full, input_shape, kwargs, default)
    return model


def _cifar_stem(model: nn.Module, in_channels: int) -> None:
    """3x3 stride-1 stem, no max pool (Synaptic-Flow's CIFAR ResNet-18); He-normal like torchvision's ResNet init."""
    old = model.conv1
    model.conv1 = nn.Conv2d(in_channels, old.out_channels, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()


def _adapt_first_conv(model: nn.Module, full: str, channels: int) -> None:
    first = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ConfigError(f"{full} has no Conv2d to take {channels}-channel images")
    path, old = first
    if old.in_channels == channels:
        return
    if old.groups != 1:
        raise ConfigError(f"{full}: its first convolution is grouped and cannot be adapted to {channels} channels")
    new = nn.Conv2d(
        channels,
        old.out_channels,
        old.kernel_size,  # type: ignore[arg-type]
        stride=old.stride,  # type: ignore[arg-type]
        padding=old.padding,  # type: ignore[arg-type]
        dilation=old.dilation,  # type: ignore[arg-type]
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    with torch.no_grad():
        std = float(old.weight.std()) * math.sqrt(old.in_channels / channels)
        new.weight.normal_(0.0, std)
        if old.bias is not None:
            new.bias.copy_(old.bias)  # type: ignore[union-attr]
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, new)


def check_forward(
    model: nn.Module,
    full: str,
    input_shape: tuple[int, ...],
    options: dict[str, Any] | None = None,
    default: Callable[[], nn.Module] | None = None,
) -> None:
    """One forward on a zero batch, so a model too small for its input fails at build time.

    A forward can also fail on a bad option value (timm reads ``drop_rate`` only in the forward);
    ``default`` rebuilds the model without the user's ``options`` so the error blames the options
    when the model runs without them, not the input shape.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError, AssertionError, IndexError) as exc:
        raise option_error(full, input_shape, exc, options, default) or ConfigError(
            f"{full} cannot take input shape {input_shape} ({first_line(exc)}); it was designed for larger images "
            "(e.g. 224x224): shrink its stem with --model-kwargs where the model has such an option "
            """(timm ConvNeXt: '{"patch_size": 1}'), or pick another model"""
        ) from None
    finally:
        model.train(was_training)


def option_error(
    full: str,
    input_shape: tuple[int, ...],
    exc: BaseException,
    options: dict[str, Any] | None,
    default: Callable[[], nn.Module] | None,
) -> ConfigError | None:
    """The error that blames the user's options, if the model builds and runs on ``input_shape`` without them."""
    if not options or default is None:
        return None
    try:
        default()
    except Exception:  # the model fails without the options too: they are not the cause
        return None
    given = ", ".join(f"{k}={v!r}" for k, v in sorted(options.items()))
    return ConfigError(
        f"{full} fails with option(s) {given} ({first_line(exc)}); without them it builds and runs on input "
        f"shape {input_shape}: check those values (--model-kwargs / model_kwargs)"
    )


def keyword_error(full: str, options: dict[str, Any], exc: TypeError, *, builder: str, variant: str) -> ConfigError:
    """Name the one option the library refused, and why, instead of every option given.

    Why: a variant such as timm's mixer_s16_224 or torchvision's vit_b_16 fixes its size (``patch_size``,
    ``num_layers``…) itself, so the builder says "multiple values for keyword argument 'patch_size'";
    listing every option given blamed ``image_size`` too, which that model takes (helper). ``variant``
    says what to do instead, with ``{key}`` for the option.
    """
    found = re.search(r"keyword argument '(\w+)'", str(exc))
    key = found.group(1) if found else None
    if key in options:
        if "multiple values" in str(exc):
            return ConfigError(
                f"{full} sets option {key} itself (the variant name fixes it): drop {key}, {variant.format(key=key)}"
            )
        return ConfigError(f"{full} does not take option {key} ({first_line(exc)}); drop it from the model options")
    return ConfigError(
        f"{full} does not accept option(s) {', '.join(sorted(options))}: {first_line(exc)}. Valid options are "
        f"the keyword arguments of {builder}"
    )


def first_line(exc: BaseException) -> str:
    """The first line of an error, for a one-line ConfigError."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
