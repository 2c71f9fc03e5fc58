"""Does a network add two computed tensors (a residual or skip connection)?

Why: the density guard compares a target with its nearest source layers, and layer descriptors
(kind, fan-in, share of the weights, depth) describe a layer, not the network around it — a
wide ResNet's convs look like a VGG's. On the sources, what decides whether IMP or SynFlow is the
better teacher at extreme density is exactly this: IMP beat SynFlow by 5-28 points on every
residual source and lost by 57-72 on the deep plain VGG-11 (docs/SCORER.md). So a target only
listens to sources of its own kind, plain or residual.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

_ADDS = {operator.add, operator.iadd, torch.add}
_ADD_METHODS = {"add", "add_"}


def _is_tensor(arg: object) -> bool:
    return isinstance(arg, fx.Node) and "tensor_meta" in arg.meta


def has_residual_adds(model: nn.Module, input_shape: Sequence[int]) -> bool | None:
    """True if the forward pass adds two tensors computed from the input (a skip connection),
    False if it never does, None if the model cannot be traced symbolically (dynamic control flow)."""
    was_training = model.training
    model.eval()  # the probe must not move BatchNorm's running statistics
    try:
        graph = fx.symbolic_trace(model)
        first = next(model.parameters())
        probe = torch.zeros(2, *input_shape, dtype=first.dtype, device=first.device)
        with torch.no_grad():
            ShapeProp(graph).propagate(probe)
    except Exception:  # any tracing failure means "cannot tell", never a crash
        return None
    finally:
        model.train(was_training)
    for node in graph.graph.nodes:
        adds = (node.op == "call_function" and node.target in _ADDS) or (
            node.op == "call_method" and node.target in _ADD_METHODS
        )
        if adds and sum(_is_tensor(a) for a in node.args[:2]) == 2:
            return True
    return False
