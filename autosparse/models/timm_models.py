"""Any timm model as ``timm:<name>``, randomly initialised and fitted to the data (timm is an optional extra).

``timm.create_model(name, pretrained=False, num_classes=..., in_chans=...)`` builds the network:
pretrained weights are never loaded and nothing is downloaded (a ``pretrained``/``checkpoint_path``
option is an error), since pruning happens *at initialisation*. timm adapts the first convolution
to the data's channels itself (``in_chans``). Models that take an image size (ViT, DeiT, Swin...)
get ``img_size`` equal to the input's, so ``timm:deit_tiny_patch16_224`` runs on 32x32 images as
2x2 patches; for the others the option is left out. Other options go to ``timm.create_model``
unchanged (CLI strings are read as Python literals: ``depth="2"`` -> 2), e.g. ``depth=2`` or
``embed_dim=96`` to shrink a ViT for a quick run.

Every model is checked with one forward pass on a zero batch at build time, as ``tv:`` models
are, so a model that cannot take the input size fails here with a ConfigError naming the shape.
List the names with ``autosparse models timm:`` (about 1,400; ``autosparse models 'timm:convnext*'`` filters).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

import torch
from torch import nn

from autosparse.core.errors import ConfigError, UnknownNameError, closest_name
from autosparse.models.info import TIMM_PREFIX, ModelInfo
from autosparse.models.torchvision_models import (
    check_forward,
    check_image_call,
    first_line,
    keyword_error,
    literal,
    option_error,
)

_FORBIDDEN = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "weights", "cache_dir")
_EXAMPLES = ("resnet18", "convnext_atto", "efficientnet_b0", "mobilenetv3_small_050", "deit_tiny_patch16_224")
INSTALL_HINT = "install the optional extra: pip install 'autosparse[timm]' (or pip install timm)"


def _timm() -> ModuleType:
    try:
        import timm
    except ImportError:
        raise ConfigError(f"{TIMM_PREFIX}<name> models need timm, which is not installed; {INSTALL_HINT}") from None
    return timm


@cache
def timm_names() -> list[str]:
    """Every architecture timm can build (``timm.list_models()``, without pretrained tags)."""
    return list(_timm().list_models())


def _check_name(name: str) -> None:
    if not _timm().is_model(name.split(".", 1)[0]):
        near = difflib.get_close_matches(name, timm_names(), n=8, cutoff=0.6)
        # the family first (`resnet_nonexist` is closer in letters to test_convnext than to resnet18), and the
        # likely meaning only from within it; a family is the name's first word without its digits (vit, not vitamin)
        family = [n for n in timm_names() if _family(n) == _family(name)]
        close: str | bool = closest_name(name, family) or False if family else True
        family = difflib.get_close_matches(name, family, n=4, cutoff=0) or sorted(family, key=len)[:4]
        near = (family + [n for n in near if n not in family])[:8]
        raise UnknownNameError(  # the near names only: all ~1,400 would bury the message
            "timm model",
            name,
            near or list(_EXAMPLES),
            listed="similar timm names" if near else "no similar timm name; for example",
            hint=f"write it as {TIMM_PREFIX}<name>; list the names with `autosparse models 'timm:GLOB'`, e.g. "
            "`autosparse models 'timm:convnext*'`",
            suggest=close,
            ordered=True,
        )


def _family(name: str) -> str:
    """``resnet`` for resnet18 and resnet_nonexist, ``vit`` for vit_tiny_patch16_224 (not vitamin_small)."""
    return re.sub(r"\d+$", "", name.lower().split("_", 1)[0])


def timm_info(name: str) -> ModelInfo:
    """Registry entry for ``timm:<name>`` (built on demand: timm has ~1,400 architectures)."""
    _check_name(name)
    return ModelInfo(
        TIMM_PREFIX + name,
        f"timm {name}, randomly initialised (never pretrained, nothing downloaded); options go to timm.create_model",
        ("image",),
        {},
        open_options=True,
    )


def _keyword_error(full: str, name: str, options: dict[str, Any], exc: TypeError) -> ConfigError:
    return keyword_error(
        full,
        options,
        exc,
        builder=f"timm's {name}",
        variant=f"or pick the timm variant with the {{key}} you want (`autosparse models 'timm:{_family(name)}*'` lists them)",
    )


def build_timm(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
    """Build ``timm:<name>`` for ``input_shape`` (see the module docstring)."""
    timm = _timm()
    _check_name(name)
    full = TIMM_PREFIX + name
    check_image_call(full, "timm", input_shape, kwargs, _FORBIDDEN)
    c, h, w = input_shape
    if "in_chans" in kwargs:
        raise ConfigError(
            f"{full}: option in_chans is set from the data ({c} channel{'s' if c != 1 else ''} here); "
            "drop it from the model options"
        )
    options = {k: literal(v) for k, v in kwargs.items()}

    def default() -> nn.Module:
        return build_timm(name, input_shape, num_classes)

    def create(**extra: Any) -> nn.Module:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=c, **options, **extra)

    try:
        if "img_size" in options:
            model = create()
        else:
            try:
                model = create(img_size=(h, w))
            except TypeError as exc:
                if "img_size" not in str(exc):
                    raise
                model = create()  # a model without a fixed image size (CNNs)
    except TypeError as exc:
        raise _keyword_error(full, name, options, exc) from None
    except (ValueError, AssertionError, RuntimeError) as exc:
        raise option_error(full, input_shape, exc, kwargs, default) or ConfigError(
            f"{full} cannot be built for input shape {input_shape}: {first_line(exc)}"
        ) from None

    def takes_patch(size: int) -> bool:
        """Whether a build with ``patch_size=size`` works (Mixers set it themselves): on the meta device, so
        a refused ViT-L is not built twice in memory (review), and over a patch_size the user gave."""
        trial = {**options, "patch_size": size}
        if "img_size" not in trial:
            trial["img_size"] = (h, w)
        try:
            with torch.device("meta"):
                timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=c, **trial)
        except (TypeError, ValueError, AssertionError, RuntimeError):  # how timm refuses an option
            return False
        return True

    _check_patches(model, full, (h, w), takes_patch)
    check_forward(model, full, input_shape, kwargs, default)
    return model


def _check_patches(model: nn.Module, full: str, size: tuple[int, int], takes_patch: Callable[[int], bool]) -> None:
    """Refuse a patch embedding that would never read part of the image.

    Why: timm's ViTs and Mixers cut the image into whole patches and drop the rest, so
    ``timm:deit_tiny_patch16_224`` on 28×28 Fashion-MNIST read only its top-left 16×16 pixels, with
    no word (helper); torchvision's ViTs refuse such a size themselves.
    """
    h, w = size
    for module in model.modules():
        patch = getattr(module, "patch_size", None)
        if type(module).__name__ != "PatchEmbed" or getattr(module, "dynamic_img_pad", False):
            continue
        if not (isinstance(patch, tuple) and len(patch) == 2 and all(isinstance(p, int) and p > 0 for p in patch)):
            continue
        ph, pw = patch
        read = (h // ph) * ph * ((w // pw) * pw)
        if read < h * w:
            side = math.gcd(h, w)
            fits = max(d for d in range(1, min(ph, side) + 1) if side % d == 0)
            fix = (
                f"or set it: --model-kwargs '{{\"patch_size\": {fits}}}'"
                if takes_patch(fits)
                else f"or resize the data to sides that are multiples of {ph} (this model sets its patch size itself)"
            )
            raise ConfigError(
                f"{full} reads its input in {ph}×{pw} patches, so {h * w - read} of the {h}×{w} input's {h * w} "
                f"pixels would never be read: pick a variant whose patch size divides the image, {fix}"
            )
