"""The path graph's modules: what each non-prunable module becomes when a network counts paths.

Path counting (:mod:`autosparse.topology.paths`) needs the network to be a linear map of
non-negative signals, so that an all-ones input's summed output *is* the number of paths.
Normalisation layers and element-wise activations become the identity (on non-negative inputs
a ReLU is the identity), and every pooling window becomes a *sum*: a max-pool window connects
all of its inputs to its output in the graph, even though only one wins on a given image, and
an average's ``1/k`` would count each path ``1/k`` times. Attention and torch's transformer
layers keep their modules but get a path-graph ``forward``: ``nn.MultiheadAttention`` computes
its projections with the (masked) weights and mixes tokens by the rule of
:func:`~autosparse.topology.path_ops.attention_paths`, calling ``out_proj`` as a module so its
path counts are seen; ``nn.TransformerEncoderLayer``/``nn.TransformerEncoder`` run their
math-equivalent slow path (their fused fast path reads ``norm1.eps`` and bypasses every swap).
Which module becomes what is decided here, once, by type. Functional ops are
:mod:`autosparse.topology.path_ops`' job.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autosparse.core.layers import is_weight_standardized
from autosparse.topology.fx_trace import encoder_layer_slow_path, encoder_slow_path

_NORMS: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LocalResponseNorm,
)
_ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
)
_POOLS: tuple[type[nn.Module], ...] = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)
_ADAPTIVE_POOLS: tuple[type[nn.Module], ...] = (
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
)


def _tuple(v: int | Sequence[int], n: int) -> tuple[int, ...]:
    return tuple(int(x) for x in v) if isinstance(v, Sequence) else (int(v),) * n


class SumPool(nn.Module):
    """A pooling layer's window as a sum: each input position in a window is one edge to its output.

    Implemented as a depthwise convolution with an all-ones kernel (exact for every stride,
    padding and dilation); the original pool is kept only to read off the output size it would
    have produced (``ceil_mode``), which the convolution matches by padding on the far side.
    """

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.dims = 1 if isinstance(pool, (nn.MaxPool1d, nn.AvgPool1d)) else 2
        self.pool = pool
        self.kernel = _tuple(pool.kernel_size, self.dims)
        self.stride = _tuple(pool.stride if pool.stride is not None else pool.kernel_size, self.dims)
        self.padding = _tuple(pool.padding, self.dims)
        self.dilation = _tuple(getattr(pool, "dilation", 1), self.dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        target = self.pool(x).shape[-self.dims :]
        pads: list[int] = []
        for d in reversed(range(self.dims)):  # F.pad lists the last dimension first
            size = x.shape[-self.dims + d]
            need = (target[d] - 1) * self.stride[d] + self.dilation[d] * (self.kernel[d] - 1) + 1
            extra = max(0, need - (size + 2 * self.padding[d]))
            pads += [self.padding[d], self.padding[d] + extra]
        x = F.pad(x, pads)
        channels = x.shape[-self.dims - 1]
        weight = torch.ones((channels, 1, *self.kernel), dtype=x.dtype, device=x.device)
        conv = F.conv1d if self.dims == 1 else F.conv2d
        out = conv(x, weight, stride=self.stride, dilation=self.dilation, groups=channels)
        index = (Ellipsis, *(slice(0, t) for t in target))
        return out[index]


class AdaptiveSumPool(nn.Module):
    """Adaptive pooling as a sum over each (possibly uneven) window: the average times its size."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.dims = 1 if isinstance(pool, (nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)) else 2
        size = pool.output_size
        self.output_size = tuple(size) if isinstance(size, Sequence) else (size,) * self.dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_sizes = x.shape[-self.dims :]
        out_sizes = tuple(int(o) if o is not None else int(i) for o, i in zip(self.output_size, in_sizes))
        pool = F.adaptive_avg_pool1d if self.dims == 1 else F.adaptive_avg_pool2d
        out = pool(x, out_sizes if self.dims == 2 else out_sizes[0])
        for d, (n_in, n_out) in enumerate(zip(in_sizes, out_sizes)):
            counts = torch.tensor(
                [math.ceil((i + 1) * n_in / n_out) - (i * n_in) // n_out for i in range(n_out)],
                dtype=out.dtype,
                device=out.device,
            )
            shape = [1] * out.dim()
            shape[out.dim() - self.dims + d] = n_out
            out = out * counts.reshape(shape)
        return out


def path_attention_forward(
    m: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any
) -> tuple[torch.Tensor, None]:
    """``nn.MultiheadAttention.forward`` on the path graph (masks, biases and dropout play no part).

    Why not torch's own forward: it multiplies two signals (``softmax(q kᵀ) v``), takes its fused
    fast path under ``no_grad``, and reads ``out_proj.weight`` without calling ``out_proj``, so
    the out-projection's units would look unreached. The in-projection's input and output are
    left on ``m.path_io`` for the path counts per unit (a module's output here is not them).
    """
    unbatched = query.dim() == 2
    qkv = [t.unsqueeze(0) if unbatched else (t if m.batch_first else t.transpose(0, 1)) for t in (query, key, value)]
    e = m.embed_dim
    w = m.in_proj_weight
    proj = [F.linear(t, w[i * e : (i + 1) * e]) for i, t in enumerate(qkv)]
    if len({t.shape[1] for t in proj}) == 1:  # the in-projection's units, for the path counts per unit
        joined = torch.cat(proj, -1)
        m.path_io = (qkv[0], joined)  # type: ignore[assignment]
        proj = list(joined.split(e, -1))
    heads = [t.unflatten(-1, (m.num_heads, -1)).transpose(1, 2) for t in proj]  # (N, heads, L, head_dim)
    # through F.scaled_dot_product_attention, not attention_paths directly: PathMode turns that call
    # into attention_paths with the mode off, so its all-ones factors are constants; called from
    # here, with the mode on, they would be marked as signals and count paths from nowhere
    out = m.out_proj(F.scaled_dot_product_attention(*heads).transpose(1, 2).flatten(2))
    out = out.squeeze(0) if unbatched else (out if m.batch_first else out.transpose(0, 1))
    return out, None


def mask_graph_conv_forward(m: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A weight-standardised conv's forward on the path graph: the convolution of its stored weight.

    Why: standardising an all-ones (dense) mask gives zeros, so every such layer looked collapsed
    (30 of an NF-ResNet-26's 35 layers, dense). The graph counted is the mask's, as for every other
    layer; that the forward re-centres masked weights is said when pruning
    (:func:`~autosparse.core.layers.is_weight_standardized`). timm's ``...Same`` variants pad as
    TensorFlow's "same" where ``same_pad`` is set.
    """
    if getattr(m, "same_pad", False):
        pads: list[int] = []
        for size, k, s, d in reversed(list(zip(x.shape[-2:], m.kernel_size, m.stride, m.dilation))):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
    return F.conv2d(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)


def to_path_modules(root: nn.Module) -> None:
    """Swap, in place, every module that is not a linear map of non-negative signals."""
    for name, module in list(root.named_modules()):
        if isinstance(module, nn.MultiheadAttention) and module._qkv_same_embed_dim:
            module.forward = functools.partial(path_attention_forward, module)  # type: ignore[method-assign]
        elif isinstance(module, nn.TransformerEncoderLayer):
            module.forward = functools.partial(encoder_layer_slow_path, module)  # type: ignore[method-assign]
        elif isinstance(module, nn.TransformerEncoder):
            module.forward = functools.partial(encoder_slow_path, module)  # type: ignore[method-assign]
        elif is_weight_standardized(module):
            module.forward = functools.partial(mask_graph_conv_forward, module)  # type: ignore[method-assign]
        if not name:
            continue
        new: nn.Module | None = None
        if isinstance(module, (*_NORMS, *_ELEMENTWISE)):
            new = nn.Identity()
        elif isinstance(module, _POOLS):
            new = SumPool(module)
        elif isinstance(module, _ADAPTIVE_POOLS):
            new = AdaptiveSumPool(module)
        if new is not None:
            parent_name, _, attr = name.rpartition(".")
            parent = root.get_submodule(parent_name) if parent_name else root
            setattr(parent, attr, new)
