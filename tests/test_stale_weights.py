"""Masked weights read without calling their layer (torchvision Swin, attention's out_proj) stay fresh."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autosparse.core.layers import prunable_layers, safe_deepcopy
from autosparse.core.masks import Masks, remove_masks
from autosparse.core.stale_weights import uncalled_layers


class ReadsWeights(nn.Module):
    """Like Swin's attention: passes a child's weight to a functional op, never calls the child."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(F.linear(x, self.inner.weight, self.inner.bias)))


def _masks(model: nn.Module, seed: int = 0) -> Masks:
    g = torch.Generator().manual_seed(seed)
    return Masks({la.name: torch.rand(la.parameter.shape, generator=g) < 0.5 for la in prunable_layers(model)})


def _steps(model: nn.Module, n: int = 3) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(16, 8, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3
    for _ in range(n):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()  # the second backward failed: a stale weight of step one's graph
        opt.step()


def test_a_weight_read_without_its_layer_trains_masked() -> None:
    torch.manual_seed(0)
    model = ReadsWeights()
    masks = _masks(model)
    masks.apply(model)
    _steps(model)
    inner = model.inner
    x = torch.randn(4, 8)
    want = model.head(torch.relu(F.linear(x, inner.weight_orig * inner.weight_mask, inner.bias)))
    assert torch.allclose(model(x), want)  # the forward used the trained weights under the mask, not step one's
    assert bool((model.inner.weight.detach()[~masks["inner.weight"]] == 0).all())
    assert uncalled_layers(model) == ["inner"]


def test_a_model_that_calls_every_layer_refreshes_nothing_after_its_first_forward() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    _masks(model).apply(model)
    model(torch.randn(2, 8))
    assert uncalled_layers(model) == []
    _steps(model)


def test_a_copy_refreshes_its_own_layers_and_removal_ends_it() -> None:
    torch.manual_seed(0)
    model = ReadsWeights()
    _masks(model).apply(model)
    copy = safe_deepcopy(model)
    before = model.inner.weight_orig.detach().clone()
    _steps(copy)
    assert torch.equal(model.inner.weight_orig.detach(), before)  # training the copy left the original alone
    assert not torch.equal(copy.inner.weight_orig.detach(), before)
    remove_masks(copy)
    _steps(copy, 2)  # no masks to refresh: plain parameters again
    assert isinstance(copy.inner.weight, nn.Parameter)


def test_torchvision_swin_trains_masked() -> None:
    """torchvision's Swin passes qkv.weight and proj.weight to shifted_window_attention (the reviewer's case)."""
    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    model = SwinTransformer(
        patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=[2, 2], num_classes=3
    )
    masks = _masks(model)
    masks.apply(model)
    x, y = torch.randn(4, 3, 16, 16), torch.arange(4) % 3
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    uncalled = set(uncalled_layers(model))
    assert any(n.endswith("attn.qkv") for n in uncalled) and any(n.endswith("attn.proj") for n in uncalled)
    for name, _ in model.named_parameters():
        if name.endswith("weight_orig"):
            layer = name[: -len("_orig")]
            weight = model.get_submodule(layer.rsplit(".", 1)[0]).weight
            assert bool((weight.detach()[~masks[layer]] == 0).all())


def test_a_model_that_is_itself_the_layer_is_not_refreshed_twice() -> None:
    model = nn.Linear(4, 3)
    Masks({"weight": torch.rand(3, 4, generator=torch.Generator().manual_seed(0)) < 0.5}).apply(model)
    model(torch.randn(2, 4))
    assert uncalled_layers(model) == []
    _steps_linear(model)


def _steps_linear(model: nn.Module) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(3, 4)).square().sum().backward()
        opt.step()


def test_a_loop_that_calls_the_models_parts_keeps_them_fresh() -> None:
    """A loop that runs the encoder and the head itself (timm's forward_features + forward_head)
    never calls the model: the refresh lives on the module that reads the weight (review)."""
    torch.manual_seed(0)
    model = nn.Sequential(ReadsWeights())
    masks = _masks(model)
    masks.apply(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(16, 8), torch.arange(16) % 3
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model[0](x), y).backward()  # the inner module, not the model
        opt.step()
    assert uncalled_layers(model) == ["0.inner"]
    assert bool((model[0].inner.weight.detach()[~masks["0.inner.weight"]] == 0).all())
