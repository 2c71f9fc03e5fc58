"""A working copy whose backward pass torch can differentiate again.

GraSP (a Hessian-gradient product), ProsPr (a meta-gradient) and the GraSP features differentiate
through the backward pass; torch's own kernels for ``nn.Hardsigmoid`` and ``nn.Hardswish`` have no
double backward, so MobileNet-v3 or EfficientNet-style squeeze-excitation failed with "derivative for
aten::hardsigmoid_backward is not implemented".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``nn.Hardsigmoid``'s values, with the double backward torch's own kernel lacks."""
    return F.relu6(x + 3.0) / 6.0


def hard_swish(x: torch.Tensor) -> torch.Tensor:
    """``nn.Hardswish``'s values, with a double backward."""
    return x * F.relu6(x + 3.0) / 6.0


def twice_differentiable(work: nn.Module) -> nn.Module:
    """Give the pruner's working copy activations whose backward torch can differentiate.

    GraSP (Hessian-gradient product) and ProsPr (meta-gradient) differentiate through the
    backward pass; on MobileNet-v3 or EfficientNet-style squeeze-excitation they failed with
    "derivative for aten::hardsigmoid_backward is not implemented". Only ``forward`` is replaced,
    with the same values: module types (which features and graphs read) stay, and the caller's
    model is never touched.
    """
    for module in work.modules():
        if isinstance(module, nn.Hardsigmoid):
            module.forward = hard_sigmoid  # type: ignore[method-assign]
        elif isinstance(module, nn.Hardswish):
            module.forward = hard_swish  # type: ignore[method-assign]
    return work
