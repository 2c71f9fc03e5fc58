"""The MLP ranker and the layer heads' network (the allocator, the unit head, an ensemble of allocators).

The GNN ranker is :mod:`autosparse.scorer.gnn_net`.

Why two: a per-weight regressor with a global top-k empties whole layers (DESIGN §7) because
"how many weights does this layer keep" is a property of the layer, while "which weights" is a
property of the weight relative to its layer. So the ranker is trained *within* layers and the
allocator predicts each layer's density at the target density, from layer descriptors, as IMP
would have allocated it. Both are small MLPs.

The ranker's first layer is linear, so at prune time it is *folded*: the contribution of row,
column and layer features is computed once per unit / layer and gathered, and only the few
weight-level features are multiplied per weight. On a 11M-weight ResNet-18 that is the
difference between a fraction of SNIP's time and several times it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from autosparse.core.parallel import map_layers, single_threaded_torch
from autosparse.features import SPECS, LayerFeatures

ALLOCATOR_EXTRA = ("log_density",)
SCORE_CHUNK = 1 << 14  # weights per block in Ranker.score_layer: its (block, hidden) activations fit in L2


def safe_std(std: torch.Tensor) -> torch.Tensor:
    """Per-feature scale for normalisation; a feature constant in the training data gets an
    infinite scale, so it normalises to 0 at prune time whatever its value.

    Why: an MLP-only store has ``kind_conv == 0`` everywhere. Clamping its std to a tiny value
    would turn a conv layer's ``kind_conv == 1`` into an input of 1e6 and garbage scores; a
    feature the scorer never saw vary carries no information it could have learned, so it must
    not move the output.
    """
    return torch.where(std < 1e-6, torch.full_like(std, float("inf")), std)


def mlp_layers(sizes: Sequence[int]) -> nn.Sequential:
    """Linear → ReLU → … → Linear. One definition for every head here and in the GNN ranker, because
    the checkpoints' state-dict keys (``rest.1.0.weight``, ``net.2.bias``…) follow this layout."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def rest_forward(rest: nn.Sequential, z: torch.Tensor) -> torch.Tensor:
    """``rest`` (ReLU, then the MLP after the first layer) on first-layer pre-activations, in place.

    ``z`` is overwritten: the ReLUs run in place and each Linear is one ``addmm``, so a block
    allocates one (n, hidden) buffer per layer and nothing else.
    """
    z = z.relu_()
    for m in rest[1]:
        if isinstance(m, nn.Linear):
            z = torch.addmm(m.bias, z, m.weight.T)
        else:
            z = z.relu_() if isinstance(m, nn.ReLU) else m(z)
    return z.squeeze(-1)


class Ranker(nn.Module):
    """Per-weight score from its features (higher = keep). Trained with a within-layer loss."""

    def __init__(self, features: Sequence[str], hidden: Sequence[int] = (32, 16)) -> None:
        super().__init__()
        self.features = tuple(features)
        self.hidden = tuple(hidden)
        n = len(self.features)
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))
        self.first = nn.Linear(n, hidden[0])
        self.rest = nn.Sequential(nn.ReLU(), mlp_layers([*hidden, 1]))

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(safe_std(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F) raw features (in ``self.features`` order) -> (N,) scores."""
        return self.rest(self.first((x - self.mean) / self.std)).squeeze(-1)

    @torch.no_grad()
    def score_layer(self, lf: LayerFeatures, chunk: int = SCORE_CHUNK) -> torch.Tensor:
        """Scores of every weight of one layer, folded and chunked (bounded memory).

        Equal to ``forward`` on the layer's dense feature rows up to float rounding. Only the
        weight-level features are multiplied per weight; the layer, row and column terms of the
        first linear layer are computed once per unit and added by broadcasting over a block of
        whole rows, so nothing of size (numel, features) or (numel, hidden) is ever built and
        each block's (rows, in, kernel, hidden) activations stay in cache.
        """
        with single_threaded_torch():  # the per-weight part is parallel over blocks (map_layers)
            return self._score_layer(lf, chunk)

    def _score_layer(self, lf: LayerFeatures, chunk: int) -> torch.Tensor:
        W = self.first.weight / self.std  # fold the normalisation into the first layer
        bias = self.first.bias - W @ self.mean
        idx = {
            g: [i for i, f in enumerate(self.features) if SPECS[f].group == g]
            for g in ("weight", "row", "col", "layer")
        }

        def term(group: str, values: dict[str, torch.Tensor]) -> torch.Tensor | None:
            cols = idx[group]
            if not cols:
                return None
            x = torch.stack([values[self.features[i]].to(torch.float32) for i in cols], dim=1)
            return x @ W[:, cols].T

        hidden = W.shape[0]
        layer_vals = {k: torch.tensor([v]) for k, v in lf.layer.items()}
        layer_term = bias + (term("layer", layer_vals)[0] if idx["layer"] else 0.0)
        out_units = lf.shape[0]
        in_units = lf.shape[1] if len(lf.shape) > 1 else 1
        kernel = lf.kernel
        row = term("row", lf.row)
        row = layer_term.expand(out_units, hidden) if row is None else row + layer_term  # (out, h)
        col = term("col", lf.col)  # (in, h) or None
        w_cols = idx["weight"]
        Ww = W[:, w_cols].T.contiguous() if w_cols else None  # (Fw, h)
        weight_feats = [lf.weight[self.features[i]] for i in w_cols]
        per_row = in_units * kernel
        rows_per_chunk = max(1, chunk // per_row)
        out = torch.empty(lf.numel)

        def block(a: int) -> None:
            b = min(out_units, a + rows_per_chunk)
            s, e = a * per_row, b * per_row
            with torch.no_grad():  # grad mode is per thread: a worker does not inherit the decorator's
                unit = row[a:b, None, :] if col is None else row[a:b, None, :] + col  # (rows, in | 1, h)
                if Ww is not None:
                    xw = torch.stack([f[s:e].to(torch.float32) for f in weight_feats])  # (Fw, n): contiguous rows
                    z = torch.mm(xw.T, Ww).view(b - a, -1, kernel, hidden)
                    z += unit[:, :, None, :]
                else:
                    z = unit[:, :, None, :].expand(b - a, in_units, kernel, hidden).clone()
                out[s:e] = rest_forward(self.rest, z.view(-1, hidden))

        map_layers(block, range(0, out_units, rows_per_chunk))
        return out


class LayerHead(nn.Module):
    """A layer-level regressor read at prune time: one row of layer descriptors + log(density) per layer.

    Subclasses define ``features`` and ``forward`` (rows -> log of the predicted ratio); the
    allocator and the unit head only differ in what that log ratio means.
    """

    features: tuple[str, ...]

    @torch.no_grad()
    def layer_densities(self, layers: Sequence[LayerFeatures], density: float) -> list[float]:
        """Predicted density of each layer at global ``density`` (before exact-count rounding)."""
        ratio = self.forward(self._inputs(layers, density)).exp()
        return (ratio * density).clamp(max=1.0).tolist()

    @torch.no_grad()
    def unit_fractions(self, layers: Sequence[LayerFeatures], density: float) -> list[float]:
        """As a *unit head* (trained on log alive-unit fractions): each layer's share of output units to keep."""
        return self.forward(self._inputs(layers, density)).exp().clamp(max=1.0).tolist()

    def _inputs(self, layers: Sequence[LayerFeatures], density: float) -> torch.Tensor:
        """One row per layer: its descriptors in ``self.features`` order, then log(density)."""
        return torch.tensor(
            [[lf.layer[f] for f in self.features] + [math.log(density)] for lf in layers], dtype=torch.float32
        )


class Allocator(LayerHead):
    """Predicts log(layer density / global density) from layer descriptors and log(density)."""

    def __init__(self, features: Sequence[str], hidden: Sequence[int] = (32, 32)) -> None:
        super().__init__()
        self.features = tuple(features)
        self.hidden = tuple(hidden)
        n = len(self.features) + len(ALLOCATOR_EXTRA)
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))
        self.net = mlp_layers([n, *hidden, 1])

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(safe_std(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F+1) layer features with log density last -> (N,) log density ratio."""
        return self.net((x - self.mean) / self.std).squeeze(-1)


class AllocatorEnsemble(LayerHead):
    """The mean log density ratio of allocators trained alike from different initial weights.

    Why: outside its sources the allocator extrapolates, and where it does, its answer is largely
    the draw of its initial weights. The default's recipe retrained with five seeds kept 17 to 49
    weights in the last conv of VGG-11 w0.125 at 1%; under the most funnelled draw the net trained
    to chance on a third of its seeds (docs/SCORER.md, "How much of the funnel is the allocator's
    training seed?"). Averaging the log ratios keeps what the draws agree on and shrinks what one
    draw invented; the exact-count allocation then renormalises the shares to the budget.
    """

    def __init__(self, members: Sequence[Allocator]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an allocator ensemble needs at least one member")
        if len({(m.features, m.hidden) for m in members}) > 1:
            raise ValueError("the members of an allocator ensemble must read the same features with the same widths")
        self.features = members[0].features
        self.hidden = members[0].hidden
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F+1) layer features with log density last -> (N,) mean log density ratio."""
        return torch.stack([m(x) for m in self.members]).mean(0)
