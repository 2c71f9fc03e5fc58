"""The MLP ranker as an architecture: one row of features per weight in, one score out.

It needs nothing of a run beyond the per-layer groups ``train-scorer`` has already sampled
(:func:`autosparse.scorer.data.load_samples`), so its training data is those groups, and at prune
time it scores each layer on its own (:meth:`autosparse.scorer.nets.Ranker.score_layer`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from autosparse.features import FeatureTable
from autosparse.scorer.archs.base import Arch, RankerData, TrainingSplit
from autosparse.scorer.archs.registry import register_arch
from autosparse.scorer.checkpoint import Card
from autosparse.scorer.config import ScorerConfig
from autosparse.scorer.data import LayerGroup, RunSamples
from autosparse.scorer.nets import Ranker
from autosparse.store import StoreReader

ROW_CHUNK = 65536  # weights per forward call when scoring whole layers without the fold (bounded memory)


@register_arch("mlp")
class MlpArch(Arch):
    def new_ranker(self, cfg: ScorerConfig) -> nn.Module:
        return Ranker(cfg.ranker_features, cfg.hidden)

    def from_card(self, card: Card) -> nn.Module:
        return Ranker(card.ranker["features"], card.ranker["hidden"])

    def training_data(self, ranker: nn.Module, split: TrainingSplit, cfg: ScorerConfig) -> RankerData:
        assert isinstance(ranker, Ranker)
        allx = torch.cat([g.features for r in split.train_runs for g in r.groups])
        ranker.set_normalisation(allx.mean(0), allx.std(0))
        groups = [g for r in split.train_runs for g in r.groups if g.label.numel() >= 2]
        return RankerData(train=groups, monitor=split.val_runs or split.train_runs)

    def sample_batch(
        self, ranker: nn.Module, train: list[LayerGroup], cfg: ScorerConfig, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pick = torch.randint(len(train), (cfg.groups_per_step,), generator=gen)
        xs, ys = [], []
        for i in pick.tolist():
            g = train[i]
            idx = torch.randint(g.label.numel(), (cfg.group_size,), generator=gen)
            xs.append(g.features[idx])
            ys.append(g.label[idx])
        x, y = torch.stack(xs), torch.stack(ys)
        return ranker(x.reshape(-1, x.shape[-1])).reshape(y.shape), y

    def monitor_scores(self, ranker: nn.Module, item: RunSamples) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return _group_scores(ranker, item), [g.label for g in item.groups]

    def score_run(self, ranker: nn.Module, reader: StoreReader | None, run: RunSamples) -> list[torch.Tensor]:
        if run.full_features is None:
            return _group_scores(ranker, run)
        with torch.no_grad():
            out = []
            for i in range(len(run.groups)):
                x = run.full_features[run.layer_slice(i)]
                out.append(torch.cat([ranker(x[s : s + ROW_CHUNK]) for s in range(0, len(x), ROW_CHUNK)]))
            return out

    def score_layers(
        self, ranker: nn.Module, table: FeatureTable, model: nn.Module | None, input_shape: Sequence[int] | None
    ) -> dict[str, torch.Tensor]:
        assert isinstance(ranker, Ranker)
        return {lf.name: ranker.score_layer(lf).reshape(lf.shape) for lf in table.layers}


def _group_scores(ranker: nn.Module, run: RunSamples) -> list[torch.Tensor]:
    """Scores of the (possibly subsampled) weights of each layer group of ``run``."""
    with torch.no_grad():
        out = []
        for g in run.groups:
            out.append(torch.cat([ranker(g.features[s : s + ROW_CHUNK]) for s in range(0, g.label.numel(), ROW_CHUNK)]))
        return out
