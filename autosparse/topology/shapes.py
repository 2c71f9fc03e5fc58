"""Every intermediate shape of a traced model, from one cheap forward pass.

The unit replay runs on label tensors that must have the activations' shapes, and it must know
what each op *would* return (a tensor, a tuple of tensors, a size) without running arithmetic on
labels; so the traced graph is run once on the example input first, on fake tensors where
possible, and each node's value is recorded as a *shape tree*: the value's structure with
tensors replaced by their shapes and anything else by :data:`NOT_TENSOR`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, fx, nn

from autosparse.core.errors import ConfigError
from autosparse.topology.fx_trace import Untraceable, short_error

logger = logging.getLogger(__name__)

#: what a shape tree holds in place of a value that is not a tensor (an int, a dtype, None...)
NOT_TENSOR = object()


class _DropAll(logging.Filter):
    """Drops every record of the logger it is added to, for as long as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def record_shapes(model: nn.Module, gm: fx.GraphModule, example: Tensor) -> dict[fx.Node, Any]:
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

                # torch logs a failed fake kernel's traceback at ERROR, ~20 lines before our own one-line
                # error for an input of the wrong shape (helper); the real pass below says what failed
                # (a filter of this call's own, not the shared level: two threads' save and restore of a
                # level left it silenced for good; review)
                quiet, drop = logging.getLogger("torch._subclasses.fake_tensor"), _DropAll()
                quiet.addFilter(drop)
                try:
                    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
                        Recorder(gm).run(mode.from_tensor(example))
                finally:
                    quiet.removeFilter(drop)
                return shapes
            except Exception as exc:  # a missing fake kernel is not the user's problem
                logger.debug("fake-tensor shape pass failed (%s); running real tensors", short_error(exc))
                shapes.clear()
            try:
                Recorder(gm).run(example)
            except Exception as exc:
                try:
                    model(example)
                except Exception:
                    pass
                else:  # the model runs, its traced graph does not: a tracing limitation, not the user's error
                    raise Untraceable(f"the traced graph fails to run ({short_error(exc)})") from exc
                raise ConfigError(
                    f"{type(model).__name__} cannot run on an input of shape {tuple(example.shape)} "
                    f"({type(exc).__name__}: {short_error(exc)}); pass the shape of ONE sample without the batch "
                    "dimension, e.g. input_shape=(3, 32, 32) for CIFAR or (1, 28, 28) for MNIST"
                ) from exc
    finally:
        for m, was_training in modes.items():
            m.training = was_training
        for m, saved in attrs.items():
            for k, v in saved.items():
                setattr(m, k, v)
    return shapes


def is_shape(x: Any) -> bool:
    """A leaf of a shape tree: a plain tuple of ints (a named tuple such as ``torch.return_types`` is a node)."""
    return isinstance(x, tuple) and all(isinstance(v, int) for v in x) and not hasattr(x, "_fields")


def _shape_tree(value: Any) -> Any:
    """A value's structure with tensors replaced by their shapes and anything else by NOT_TENSOR."""
    if isinstance(value, Tensor):
        return tuple(int(s) for s in value.shape)
    if isinstance(value, (tuple, list)):
        return tuple(_shape_tree(v) for v in value)
    if isinstance(value, dict):
        return {k: _shape_tree(v) for k, v in value.items()}
    return NOT_TENSOR


def map_shapes(tree: Any, fn: Callable[[tuple[int, ...]], Any]) -> Any:
    """Build a value of the recorded structure, one ``fn(shape)`` per tensor (``None`` for the rest)."""
    if is_shape(tree):
        return fn(tree)
    if isinstance(tree, tuple):
        return tuple(map_shapes(v, fn) for v in tree)
    if isinstance(tree, dict):
        return {k: map_shapes(v, fn) for k, v in tree.items()}
    return None


def contains_shape(x: Any) -> bool:
    """Whether an op returned any tensor at all (sizes, dims and asserts do not carry units)."""
    if is_shape(x):
        return True
    if isinstance(x, (tuple, list)):
        return any(contains_shape(v) for v in x)
    if isinstance(x, dict):
        return any(contains_shape(v) for v in x.values())
    return False
