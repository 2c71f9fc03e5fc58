"""The functional ops of a forward pass, read as the path graph: :class:`PathMode`.

:mod:`autosparse.topology.path_modules` swaps the *modules* that are not linear maps of
non-negative signals (norms, activations, pools). Much of a modern network is functional
instead, and run literally on the path network it is wrong:

* a multiplicative gate — squeeze-excitation's ``scale * input`` (torchvision, timm), timm's
  ``x * hard_sigmoid(x)`` — *multiplies* two path counts, so every gated block squares the
  count: MobileNet-v3 overflowed, then underflowed to a false "no path at all";
* attention written as ``q @ k.transpose(-2, -1)`` / ``attn @ v`` or
  ``F.scaled_dot_product_attention`` (timm ViTs) multiplies signals the same way;
* a constant operand (``x + 3`` inside a hard-sigmoid, ``x + pos_embed``, a concatenated class
  token) creates "paths" that start mid-network, and ``1 - x`` can cancel real ones.

Inside :class:`PathMode` (a ``TorchFunctionMode``, so it sees every op a forward runs, whatever
the model's Python does — no tracing needed) each op on a *signal* (a tensor computed from the
input) takes its meaning on the computation DAG, where a path is a chain of edges from an input
element to an output element and a node reading several operands has an edge from each:

* two signals joined element-wise (``*``, ``+``, ``-``, ``/``, maximum...): paths add, ``a + b``;
  ``addcmul`` / ``addcdiv`` are that rule twice (the product, then the sum);
* ``A @ B`` with two signals: ``C_ij`` reads ``A_ik`` and ``B_kj`` for every ``k``, so
  ``A @ 1 + 1 @ B``; scaled-dot-product attention is that rule applied to ``(q kᵀ) v``;
* a constant operand is dropped (a python number, or a tensor not computed from the input, in
  a sum); a product with a constant tensor (layer scale) keeps its ``|value|``, as before;
* element-wise activations, normalisations, dropout and softmax are the identity;
* a reduction that selects or spreads its window (``amax``, ``max(dim)``, ``std``, ``var``,
  ``norm``, ``prod``, ``logsumexp``) and a functional max pool are read as the window's sum: every
  element is an edge to the result. Run literally, an all-ones input's std is 0 and a max keeps one
  operand, and a head fed by either was reported collapsed.

Everything else (reshapes, convolutions, average pools, sums and means) runs unchanged: on non-negative
signals it already is its path graph. Ops on a signal that are in none of these tables, and the
3-d max pools (run literally), are recorded in :attr:`PathMode.unmodelled`; the counts are then an approximation, and the callers
say so instead of reporting a collapse they cannot prove.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from autosparse.topology.path_modules import AdaptiveSumPool, SumPool
from autosparse.topology.replay_ops import (
    CONST_FUNCS,
    CONST_METHODS,
    MIX_FUNCS,
    MIX_METHODS,
    MOVE_FUNCS,
    MOVE_METHODS,
    REDUCE_FUNCS,
    REDUCE_METHODS,
    RESAMPLE_FUNCS,
)


def _words(text: str) -> list[str]:
    return text.split()


#: element-wise ops that are the identity on the path graph (by name, so the function, the
#: Tensor method and the in-place variant all match). ``relu`` is not among them: on the
#: non-negative signals here it already *is* the identity in value, and run literally its zero
#: gradient at 0 keeps the pinned masks of NPB/DPaI/autos on the zoo exactly as they were.
IDENTITY_OPS = frozenset(
    _words(
        "relu6 hardtanh leaky_relu prelu rrelu gelu silu mish hardswish hardsigmoid sigmoid tanh elu selu "
        "celu softplus softsign logsigmoid tanhshrink threshold clamp clip clamp_min abs "
        "softmax log_softmax softmin dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout "
        "layer_norm batch_norm group_norm instance_norm rms_norm local_response_norm normalize "
        "float double half to type_as clone detach contiguous"
    )
)
#: reductions that *select* or combine their window non-linearly (a max, a spread, a product):
#: every element of the window is an edge to the result, so on the path graph each is a sum.
#: Run literally on an all-ones input, a std is 0 and a max picks one operand: false collapses.
SELECT_REDUCTIONS = frozenset(_words("amax amin max min std var norm prod logsumexp"))
#: functional max pools (``F.max_pool2d``, as in PyTorch's MNIST example), read as their window sums
#: exactly as :class:`~autosparse.topology.path_modules.SumPool` reads the modules
MAX_POOLS = frozenset(
    _words(
        "max_pool1d max_pool2d max_pool1d_with_indices max_pool2d_with_indices "
        "adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool1d_with_indices adaptive_max_pool2d_with_indices"
    )
)
#: 3-d max pools run literally (a volume's window sum is not written): their counts are approximate
MAX_POOLS_3D = frozenset(
    _words("max_pool3d max_pool3d_with_indices adaptive_max_pool3d adaptive_max_pool3d_with_indices")
)
#: element-wise joins of two operands
JOIN_OPS = frozenset(_words("add sub subtract mul multiply div divide true_divide maximum minimum fmax fmin rsub"))
MATMUL_OPS = frozenset(_words("matmul mm bmm"))
#: ops that run unchanged on signals without making the counts approximate
_PLAIN_FUNCS = MOVE_FUNCS | RESAMPLE_FUNCS | REDUCE_FUNCS | MIX_FUNCS | CONST_FUNCS
_MIX = MIX_FUNCS | MIX_METHODS
_PLAIN_METHODS = MOVE_METHODS | REDUCE_METHODS | MIX_METHODS | CONST_METHODS
_PLAIN_NAMES = frozenset(
    _words(
        "relu pad size dim numel shape getitem setitem len iter bool format repr get set hash contains "
        "requires_grad_ retain_grad sum mean cumsum zero_ fill_ new_ones new_zeros unfold fold "
        "conv1d conv2d conv3d linear adaptive_avg_pool1d adaptive_avg_pool2d avg_pool1d avg_pool2d max_pool1d "
        "max_pool2d max_pool1d_with_indices max_pool2d_with_indices adaptive_max_pool2d interpolate "
        "eq ne lt le gt ge isfinite isnan any all item tolist data_ptr is_floating_point element_size"
    )
)
#: marks a tensor computed from the path network's input
SIGNAL_ATTR = "_autosparse_path_signal"


def mark_signal(t: torch.Tensor) -> torch.Tensor:
    """Tag ``t`` as computed from the input (the seed of every signal the mode tracks)."""
    setattr(t, SIGNAL_ATTR, True)
    return t


def is_signal(x: object) -> bool:
    return isinstance(x, torch.Tensor) and getattr(x, SIGNAL_ATTR, False)


def op_name(func: Callable[..., Any]) -> str:
    """``mul`` for ``torch.mul``, ``Tensor.mul``, ``Tensor.__mul__``, ``Tensor.__rmul__``, ``mul_``, ``__imul__``."""
    name = getattr(func, "__name__", "") or ""
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name.startswith("i") and name[1:] in {"add", "sub", "mul", "truediv", "div", "matmul"}:
            name = name[1:] + "_"
        elif name.startswith("r") and name[1:] in {"add", "sub", "mul", "truediv", "div", "matmul"}:
            name = name[1:]
    if name == "truediv":
        name = "div"
    return name


class PathMode(TorchFunctionMode):
    """Run a forward with every op on a signal read as its path graph (see the module doc)."""

    def __init__(self, watch: Mapping[int, str] | None = None) -> None:
        super().__init__()
        self.unmodelled: set[str] = set()
        self.watch = dict(watch or {})  # id of a weight tensor -> its name: which ones an op on a signal read
        self.read: set[str] = set()
        self.paused = False  # ops run plainly (a hook's own bookkeeping, not the model's forward)

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: tuple[type, ...],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        flat, _ = tree_flatten((args, kwargs))
        if not any(is_signal(a) for a in flat):
            return func(*args, **kwargs)
        if self.watch:  # a weight the signal meets, whether or not its layer was called (Swin's qkv.weight)
            self.read.update(self.watch[id(a)] for a in flat if isinstance(a, torch.Tensor) and id(a) in self.watch)
        name = op_name(func)
        base = name.rstrip("_")
        inplace = name.endswith("_") and not name.startswith("_")
        out: Any
        if base in IDENTITY_OPS and is_signal(args[0] if args else None):
            # a cast too: the path network stays float64; `contiguous` must give contiguous strides (a
            # `.view` follows it: Swin, MaxViT, ShuffleNet), which a plain clone of a permuted tensor keeps
            fmt = torch.contiguous_format if base == "contiguous" else torch.preserve_format
            out = args[0] if inplace else args[0].clone(memory_format=fmt)
        elif base in JOIN_OPS and len(args) >= 2:
            out = _join(func, base, inplace, args, kwargs)
        elif base in ("addcmul", "addcdiv") and len(args) >= 3:
            out = _add_product(base, inplace, args)
        elif base in MATMUL_OPS and len(args) >= 2 and is_signal(args[0]) and is_signal(args[1]):
            out = _matmul_paths(args[0], args[1])
        elif func is F.scaled_dot_product_attention:
            out = attention_paths(*args[:3])
        elif base in ("max", "min") and len(args) >= 2 and isinstance(args[1], torch.Tensor):
            out = _join(func, base, inplace, args, kwargs)  # torch.max(a, b): element-wise, as maximum
        elif base in SELECT_REDUCTIONS and is_signal(args[0] if args else None):
            out = _reduction_paths(func, base, args, kwargs)
            if out is None:
                self.unmodelled.add(name)
                out = func(*args, **kwargs)
        elif base.lstrip("_") in MAX_POOLS and is_signal(args[0] if args else None):
            out = _max_pool_paths(func, base.lstrip("_"), args, kwargs)
        elif base in ("cat", "concat", "concatenate", "stack") and args:
            out = func([t if is_signal(t) else torch.zeros_like(t) for t in args[0]], *args[1:], **kwargs)
        else:
            known = func in _PLAIN_FUNCS or name in _PLAIN_METHODS or base in _PLAIN_NAMES or name in _PLAIN_NAMES
            mixes_signals = (func in _MIX or name in _MIX) and sum(is_signal(a) for a in flat) > 1
            literal_max = base.lstrip("_") in MAX_POOLS_3D  # one operand per window, as the 1-d/2-d ones were
            if not known or mixes_signals or literal_max:  # e.g. einsum of two signals: a product, not a path sum
                self.unmodelled.add(name or repr(func))
            out = func(*args, **kwargs)
        return tree_map(lambda t: mark_signal(t) if isinstance(t, torch.Tensor) else t, out)


def _join(
    func: Callable[..., Any], base: str, inplace: bool, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> torch.Tensor:
    a, b = args[0], args[1]
    sa, sb = is_signal(a), is_signal(b)
    if base in ("rsub",):  # torch.rsub(a, b) = b - a
        a, b, sa, sb = b, a, sb, sa
    if sa and sb:  # a node reading two signals: an edge from each
        return a.add_(b) if inplace else a + b
    sig, other = (a, b) if sa else (b, a)
    if inplace and not sa:  # constant.mul_(signal): the result must still be the signal's paths
        return sig + torch.zeros_like(a)
    if base in ("mul", "multiply") and isinstance(other, torch.Tensor):
        return sig.mul_(other.abs()) if inplace and sa else sig * other.abs()  # layer scale: |γ| weights its edge
    if isinstance(other, torch.Tensor) and other.dim() > 0:  # a constant tensor: keep the broadcast shape
        z = torch.zeros_like(other)
        return sig.add_(z) if inplace and sa else sig + z
    return sig if inplace and sa else sig.clone()  # a constant number adds no path and scales none


def _add_product(base: str, inplace: bool, args: tuple[Any, ...]) -> torch.Tensor:
    """``addcmul(input, t1, t2)`` = ``input + value·t1·t2`` (``t1/t2`` for ``addcdiv``): the product's
    node by the join rule, then the sum's; ``value``, a number, scales no path.

    Why: ResMLP's affine layers are ``addcmul(β, α, x)``; run literally, the constant ``β`` adds
    paths that start mid-network, and the counts of every ResMLP were only approximate.
    """
    inp, t1, t2 = args[:3]
    op = "mul" if base == "addcmul" else "div"
    if is_signal(t1) or is_signal(t2):
        prod = mark_signal(_join(getattr(torch, op), op, False, (t1, t2), {}))
    else:  # a constant product adds no path; it keeps the broadcast shape
        prod = torch.zeros_like(torch.broadcast_tensors(t1, t2)[0])
    return _join(torch.add, "add", inplace, (inp, prod), {})


def _matmul_paths(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``C = A @ B`` on the path graph: ``C_ij`` reads ``A_ik`` and ``B_kj`` for every ``k``."""
    return a @ torch.ones_like(b) + torch.ones_like(a) @ b


def attention_paths(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q kᵀ) v`` on the path graph, softmax read element-wise (shapes ``(..., L, E)``)."""
    scores = _matmul_paths(q, k.transpose(-2, -1))
    return _matmul_paths(scores, v)


def _reduction_paths(func: Callable[..., Any], base: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A max/min/std/var/norm/prod/logsumexp reduction read as a sum over the same window.

    Returns None where the arguments do not say which window (the caller then runs the op
    literally and calls the counts approximate). A ``max(dim=...)`` keeps its literal indices.
    """
    x = args[0]
    ref = func(*args, **kwargs)
    values = ref[0] if isinstance(ref, tuple) else ref
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        return ref  # a reduced mask or index (``(x > 0).amax(1)``) is no path count: its literal value
    at = 2 if base == "norm" else 1  # norm(input, p, dim, keepdim)
    dim = kwargs.get("dim", args[at] if len(args) > at else None)
    if isinstance(dim, bool):  # std(input, unbiased)
        dim = None
    keep_at = 3 if base in ("std", "var", "norm") else 2
    keepdim = kwargs.get("keepdim", args[keep_at] if len(args) > keep_at else False)
    if not isinstance(keepdim, bool) or not (dim is None or isinstance(dim, (int, tuple, list))):
        return None
    whole = dim is None or (isinstance(dim, (tuple, list)) and not dim)  # amax(dim=()) reduces everything
    summed = x.sum() if whole else x.sum(dim=dim, keepdim=keepdim)
    if summed.shape != values.shape:
        if summed.numel() != values.numel():
            return None
        summed = summed.reshape(values.shape)
    return type(ref)((summed, *ref[1:])) if isinstance(ref, tuple) else summed


_POOL_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")


def _max_pool_paths(func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A functional max pool as its window sum (the module's :class:`SumPool`); indices stay literal."""
    dims = 1 if "1d" in name else 2
    adaptive = name.startswith("adaptive")
    names = ("output_size", "return_indices") if adaptive else _POOL_ARGS
    given = {**dict(zip(names, args[1:])), **kwargs}
    with_indices = bool(given.pop("return_indices", False)) or name.endswith("_with_indices")
    if not adaptive and not given.get("stride"):  # None or [] (F.max_pool2d's "the kernel size")
        given["stride"] = None
    if adaptive:
        pool: torch.nn.Module = (torch.nn.AdaptiveMaxPool1d if dims == 1 else torch.nn.AdaptiveMaxPool2d)(**given)
        summed = AdaptiveSumPool(pool)(args[0])
    else:
        pool = (torch.nn.MaxPool1d if dims == 1 else torch.nn.MaxPool2d)(**given)
        summed = SumPool(pool)(args[0])
    if with_indices:
        return summed, func(*args, **kwargs)[1]
    return summed
