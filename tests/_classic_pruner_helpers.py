"""Small models and checks shared by the classic-pruner tests (random … iter_snip)."""

from __future__ import annotations

import torch
from torch import nn

from autosparse.pruners import get_pruner

LENET_TOTAL = 784 * 300 + 300 * 100 + 100 * 10  # 266_200 prunable weights
KEEP_AT_999 = 266  # round(0.001 * 266_200)


def lenet(seed: int = 0) -> nn.Module:
    """The 784-300-100-10 MLP (LeNet-300-100) on 1×28×28 inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def lenet_data(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def bn_mlp(seed: int = 0) -> nn.Module:
    """A tiny MLP with BatchNorm and Dropout, in a *mixed* train/eval state."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(6, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(8, 5),
        nn.BatchNorm1d(5),
        nn.Linear(5, 3),
    )
    with torch.no_grad():  # non-trivial running statistics, so eval and train mode differ
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.train()
    model[5].eval()
    return model


def bn_data(n: int = 10, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[bool], list[bool]]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    grads = [p.grad is not None for p in model.parameters()]
    return state, modes, grads


def assert_untouched(model: nn.Module, before: tuple[dict[str, torch.Tensor], list[bool], list[bool]]) -> None:
    state, modes, grads = before
    after = model.state_dict()
    assert set(after) == set(state)
    for k, v in state.items():
        assert after[k].dtype == v.dtype, k
        assert torch.equal(after[k], v), f"{k} changed"
    assert [m.training for m in model.modules()] == modes
    assert [p.grad is not None for p in model.parameters()] == grads
    assert all(p.dtype == torch.float32 for p in model.parameters())


def check_scores_leave_model_unchanged(method: str, data: object = None, **hparams: object) -> None:
    """``Pruner.scores`` called directly (as the feature extractor will) must not change the model."""
    model = bn_mlp()
    before = snapshot(model)
    pruner = get_pruner(method)(**hparams)
    scores = pruner.scores(model, data, seed=3)
    assert_untouched(model, before)
    for layer_name, w in [("0.weight", model[0].weight), ("4.weight", model[4].weight), ("6.weight", model[6].weight)]:
        s = scores[layer_name]
        assert s.shape == w.shape and s.is_floating_point() and s.device.type == "cpu"
        assert torch.isfinite(s).all()
    masks = pruner.masks(model, data, 0.3, seed=3)
    assert masks.kept == round(0.3 * sum(m.numel() for m in masks.values()))
    assert_untouched(model, before)


def check_scores_on_torch_pruned_model(method: str, data: object = None, **hparams: object) -> None:
    """On a model already pruned the torch way, masked weights score zero and nothing changes."""
    from autosparse.core.masks import Masks
    from autosparse.pruners import prune

    model = bn_mlp()
    applied: Masks = prune(model, "random", density=0.5, seed=0, apply=True)
    before = snapshot(model)
    scores = get_pruner(method)(**hparams).scores(model, data, seed=0)
    assert_untouched(model, before)
    for name, mask in applied.items():
        assert (scores[name][~mask] == 0).all(), name
        assert (scores[name][mask] != 0).any(), name
