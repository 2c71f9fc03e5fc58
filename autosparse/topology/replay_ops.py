"""How the unit replay classifies each fx op: which ops move data, resample, reduce, mix or make constants.

A table, not code paths, so that teaching the replay a new op is one line here; the replay
(:mod:`autosparse.topology.replay`) decides what each class does to unit labels. An op found in
no table (nor ``F.pad`` or scaled-dot-product attention, which the replay handles by name) is
treated as element-wise when its output has the broadcast shape of its inputs, and sends the
model to the chain fallback otherwise.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _words(text: str) -> list[str]:
    return text.split()


def _fns(mod: Any, names: Iterable[str]) -> set[Callable[..., Any]]:
    return {f for f in (getattr(mod, n, None) for n in names) if f is not None}


_MOVE_NAMES = _words(
    "flatten unflatten reshape view view_as reshape_as permute transpose swapaxes swapdims movedim moveaxis "
    "squeeze unsqueeze cat concat concatenate stack hstack vstack chunk split tensor_split unbind narrow select "
    "flip roll t expand expand_as broadcast_to repeat tile repeat_interleave contiguous"
)
MOVE_FUNCS = _fns(torch, _MOVE_NAMES) | _fns(F, ["pixel_shuffle", "pixel_unshuffle", "channel_shuffle"])
MOVE_FUNCS |= _fns(torch, ["pixel_shuffle", "pixel_unshuffle", "channel_shuffle"]) | {operator.getitem, getattr}
MOVE_METHODS = set(_MOVE_NAMES)

_POOL_NAMES = [
    f"{p}{d}d" for p in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool", "lp_pool") for d in (1, 2, 3)
]
RESAMPLE_FUNCS = _fns(F, [*_POOL_NAMES, "interpolate", "upsample", "upsample_nearest", "upsample_bilinear"])
RESAMPLE_FUNCS |= _fns(torch, _POOL_NAMES)
_REDUCE_NAMES = _words("mean sum amax amin max min std var norm logsumexp prod nansum nanmean")
REDUCE_FUNCS = _fns(torch, _REDUCE_NAMES)
REDUCE_METHODS = set(_REDUCE_NAMES)
_MIX_NAMES = _words("matmul mm bmm einsum baddbmm addmm addbmm tensordot inner outer kron")
MIX_FUNCS = _fns(torch, _MIX_NAMES) | _fns(F, ["linear", "bilinear", "conv1d", "conv2d", "conv3d"])
MIX_FUNCS |= _fns(F, ["conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "embedding"]) | {operator.matmul}
MIX_METHODS = {*_MIX_NAMES, "__matmul__", "index_select", "gather", "take", "scatter", "masked_select"}
CONST_FUNCS = _fns(torch, ["zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like"])
CONST_FUNCS |= _fns(torch, ["randint_like"])
CONST_METHODS = {"new_zeros", "new_ones", "new_full", "new_empty", "new_tensor"}
SETITEM = {operator.setitem}

RESAMPLE_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.pooling._LPPoolNd,
    nn.Upsample,
    nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd,
)
MOVE_MODULES: tuple[type[nn.Module], ...] = (
    nn.Flatten,
    nn.Unflatten,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.ChannelShuffle,
)
MIX_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.Bilinear,
    nn.RNNBase,
    nn.RNNCellBase,
    nn.Transformer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
)
