"""Sanity-check transforms for pruning at initialisation (Frankle et al., ICLR 2021,
"Pruning Neural Networks at Initialization: Why are We Missing the Mark?").

Frankle et al. showed that SNIP, GraSP and SynFlow masks keep their accuracy when the kept
positions are shuffled within each layer, or when the kept weights are re-initialised: what
those methods really choose is *how many weights per layer*, not *which*. A learned scorer
that claims to pick which weights matter has to fail these checks where IMP fails them, so
the bench needs them for every method:

* :func:`shuffle_within_layers` — same per-layer counts, random positions;
* :func:`reinitialize` — same mask, fresh weights from each layer's init distribution;
* :func:`invert` — keep the lowest-scored weights instead of the highest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks

ReinitMethod = Literal["permute", "normal"]
REINIT_METHODS: tuple[str, ...] = ("permute", "normal")


def shuffle_within_layers(masks: Masks, seed: int = 0) -> Masks:
    """The same number of kept weights in every layer, at uniformly random positions.

    Layers are shuffled in the mask's (layer) order from one seeded generator, so a seed
    reproduces the shuffle bit for bit.
    """
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for name, m in masks.items():
        flat = m.reshape(-1)
        out[name] = flat[torch.randperm(flat.numel(), generator=gen)].reshape(m.shape)
    return Masks(out, meta={**masks.meta, "transform": "shuffle_within_layers", "transform_seed": int(seed)})


def reinitialize(model: nn.Module, seed: int = 0, *, method: ReinitMethod = "permute") -> nn.Module:
    """Re-draw every prunable weight of ``model`` in place (and return it); biases are kept.

    The toolkit cannot know which distribution a model was initialised from, so it uses the
    layer's own weights as the estimate of it:

    * ``permute`` (default): a random permutation of the layer's values. Marginally this is a
      draw from exactly the original i.i.d. distribution (uniform, normal or truncated alike)
      with exactly the same per-layer std, but unrelated to the positions a mask chose.
    * ``normal``: fresh N(mean, std²) draws with the layer's mean and std — matches the scale
      but not the shape of a non-Gaussian init.

    Call it *before* applying a mask (or on a torch-pruned model: the trainable
    ``weight_orig`` is re-drawn and the mask stays). Use it on the model the mask will train,
    not on the one it was computed from.
    """
    if method not in REINIT_METHODS:
        raise ConfigError(f"unknown reinitialisation method {method!r}; use one of {', '.join(REINIT_METHODS)}")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for layer in prunable_layers(model):
            p = layer.parameter
            w = p.detach().to("cpu", torch.float64).reshape(-1)
            if method == "permute":
                new = w[torch.randperm(w.numel(), generator=gen)]
            else:
                std = float(w.std()) if w.numel() > 1 else 0.0
                new = torch.randn(w.numel(), generator=gen, dtype=torch.float64) * std + float(w.mean())
            p.copy_(new.reshape(p.shape).to(device=p.device, dtype=p.dtype))
    return model


def invert(scores: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Scores whose ranking is reversed, so an allocation keeps the *least* salient weights.

    Negation rather than Synaptic-Flow's ``1/score``: a reciprocal reverses the order only of
    positive scores, whereas GraSP's scores are signed; negation reverses any order exactly
    (ties keep their index order under the stable top-k).
    """
    return {name: -s.detach().to(torch.float64) for name, s in scores.items()}
