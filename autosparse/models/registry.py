"""The model registry: one place where a model name becomes an ``nn.Module``.

Model names come from the CLI, YAML configs and the bench, so everything here accepts the
loose forms those produce (``widths="500,150"``, ``width="0.25"``) and turns every mistake
into an :class:`~autosparse.core.errors.AutosparseError` whose message lists what *would* work.

A builder is a plain function ``builder(input_shape, num_classes, *, option=default, ...)``
decorated with :func:`register_model`. Its keyword-only parameters *are* the model's
options: their defaults document them, drive string coercion, and are what an unknown-option
error lists, so an option can never be accepted by one path and rejected by another.

Any torchvision classification model is available as ``tv:<name>`` (see
:mod:`autosparse.models.torchvision_models`) and, with the optional ``timm`` extra, any timm
model as ``timm:<name>`` (:mod:`autosparse.models.timm_models`); each library is imported only
when such a name is used, because importing it costs seconds at CLI start-up.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from autosparse.core.errors import ConfigError, UnknownNameError, check_class_count, check_seed
from autosparse.core.seeding import seeded as core_seeded
from autosparse.models.info import INPUT_KINDS, TIMM_PREFIX, TV_PREFIX, ModelInfo, coerce_options
from autosparse.models.timm_models import build_timm, timm_info
from autosparse.models.torchvision_models import build_torchvision, torchvision_info, torchvision_names

Builder = Callable[..., nn.Module]
B = TypeVar("B", bound=Builder)


@dataclass(frozen=True)
class _Entry:
    builder: Builder
    info: ModelInfo


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str, *, inputs: Sequence[str] = ("image",), description: str | None = None
) -> Callable[[B], B]:
    """Decorator: make ``builder`` available as ``build_model(name, ...)``.

    ``inputs`` declares which input kinds (see :data:`INPUT_KINDS`) the model accepts; the
    registry rejects any other shape before the builder runs. ``description`` defaults to the
    first line of the builder's docstring.
    """
    bad = [k for k in inputs if k not in INPUT_KINDS]
    if bad:
        raise ValueError(f"model {name!r}: unknown input kinds {bad}; use {sorted(INPUT_KINDS)}")
    if name.startswith((TV_PREFIX, TIMM_PREFIX)):
        raise ValueError(f"model names starting with {TV_PREFIX!r} or {TIMM_PREFIX!r} are reserved for library models")

    def deco(builder: B) -> B:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"model {name!r} registered twice")
        desc = description or (inspect.getdoc(builder) or name).splitlines()[0]
        _REGISTRY[name] = _Entry(builder, ModelInfo(name, desc, tuple(inputs), builder_options(builder)))
        return builder

    return deco


def builder_options(builder: Callable[..., Any]) -> dict[str, Any]:
    """The keyword-only parameters of ``builder`` and their defaults: the model's options."""
    return {
        p.name: p.default
        for p in inspect.signature(builder).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def available_models(*, include_torchvision: bool = False) -> list[str]:
    """Names of the zoo models; with ``include_torchvision`` also every ``tv:<name>``.

    torchvision names are left out by default because listing them imports torchvision
    (slow) and every one of them is accepted as ``tv:<name>`` anyway.
    """
    names = sorted(_REGISTRY)
    if include_torchvision:
        names += [TV_PREFIX + n for n in torchvision_names()]
    return names


def _unknown(name: str) -> UnknownNameError:
    return UnknownNameError(
        "model",
        name,
        _REGISTRY,
        hint=f"or use {TV_PREFIX}<name> for any torchvision classification model (e.g. {TV_PREFIX}resnet18), "
        f"or {TIMM_PREFIX}<name> for any timm model (e.g. {TIMM_PREFIX}convnext_atto; needs the timm extra)",
    )


def _check_name(name: object, what: str) -> None:
    """A model's name, not the model: ``build_model(my_net, …)`` failed in ``str.startswith`` (helper)."""
    if not isinstance(name, str):
        raise ConfigError(
            f"{what} takes a model's name (`autosparse models` lists them; tv:<name>, timm:<name>), got a "
            f"{type(name).__name__}; a model you built yourself needs no building: pass it to prune or train as it is"
        )


def model_info(name: str) -> ModelInfo:
    """Description, accepted input kinds and options (with defaults) of a model."""
    _check_name(name, "model_info")
    if name.startswith(TV_PREFIX):
        return torchvision_info(name[len(TV_PREFIX) :])
    if name.startswith(TIMM_PREFIX):
        return timm_info(name[len(TIMM_PREFIX) :])
    if name not in _REGISTRY:
        raise _unknown(name)
    return _REGISTRY[name].info


def build_model(
    name: str, input_shape: Sequence[int], num_classes: int, *, seed: int | None = None, **kwargs: Any
) -> nn.Module:
    """Build a freshly initialised (never pretrained) model for inputs of ``input_shape``.

    ``input_shape`` excludes the batch dimension. With ``seed`` the initial weights are a pure
    function of (name, shape, classes, options, seed) and the global RNG is left exactly as it
    was, so building a model never shifts the data order of a run that follows. ``kwargs`` are
    the model's options (see :func:`model_info`); strings such as ``"0.5"`` or ``"500,150"`` are
    coerced to the option's type because they arrive from the CLI and YAML.
    """
    _check_name(name, "build_model")
    if not name.startswith((TV_PREFIX, TIMM_PREFIX)) and name not in _REGISTRY:
        raise _unknown(name)
    shape = _check_shape(name, input_shape)
    num_classes = check_class_count(num_classes)  # numpy and 0-d tensor integers too (y.max() + 1)
    if name.startswith(TV_PREFIX):

        def make() -> nn.Module:
            return build_torchvision(name[len(TV_PREFIX) :], shape, num_classes, **kwargs)

    elif name.startswith(TIMM_PREFIX):

        def make() -> nn.Module:
            return build_timm(name[len(TIMM_PREFIX) :], shape, num_classes, **kwargs)

    else:
        entry = _REGISTRY[name]
        _check_kind(entry.info, shape)
        options = coerce_options(name, entry.info.options, kwargs)

        def make() -> nn.Module:
            return entry.builder(shape, num_classes, **options)

    with seeded(seed):
        model = make()
    return model


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block on a private CPU RNG stream seeded with ``seed`` (no-op for ``None``).

    Module constructors draw from the global generator and offer no ``generator=`` argument,
    so forking the global state is the only way to make them reproducible without side effects.
    Models are built on the CPU, so only the CPU generator is forked.
    """
    if seed is None:
        yield
        return
    try:
        if isinstance(seed, bool):
            raise TypeError
        value = operator.index(seed)  # accepts numpy integers, rejects floats
    except TypeError:
        raise ConfigError(f"seed must be an integer, got {seed!r}") from None
    check_seed(value)
    # the generator of the device modules are built on (the CPU, unless the caller set another default);
    # the caller's other streams are not touched
    default = getattr(torch, "get_default_device", None)  # torch >= 2.3; before it, modules were built on the CPU
    with core_seeded(value, default() if default is not None else None):
        yield


def _check_shape(name: str, input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ConfigError(
            f"input_shape for {name} must be a sequence of positive integers without the batch "
            f"dimension, e.g. (1, 28, 28); got {input_shape!r}"
        ) from None
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(
            f"input_shape for {name} must be non-empty positive sizes without the batch dimension, "
            f"e.g. (1, 28, 28); got {input_shape!r}"
        )
    return shape


def input_kind(shape: tuple[int, ...]) -> str | None:
    """The most specific kind a shape is: ``signal`` for 1-/2-D, ``image`` for 3-D."""
    return {1: "signal", 2: "signal", 3: "image"}.get(len(shape))


def _check_kind(info: ModelInfo, shape: tuple[int, ...]) -> None:
    if "flat" in info.inputs:
        return
    kind = input_kind(shape)
    if kind not in info.inputs:
        accepted = "; ".join(INPUT_KINDS[k] for k in info.inputs)
        raise ConfigError(
            f"{info.name} cannot take input shape {shape}: it supports {accepted}. "
            f"Pick a model made for this data (see `autosparse models`)"
        )
