"""grasp: θ ⊙ Hg (higher = keep, the Synaptic-Flow / GraSP convention) against an explicit Hessian."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _classic_pruner_helpers import (
    KEEP_AT_999,
    LENET_TOTAL,
    bn_data,
    check_scores_leave_model_unchanged,
    check_scores_on_torch_pruned_model,
    lenet,
    lenet_data,
)
from torch import nn

from autosparse.core.allocation import allocate
from autosparse.data.pruning_data import PruningData
from autosparse.pruners import get_pruner, prune

T = 200.0


def _net_and_data() -> tuple[nn.Module, PruningData]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    with torch.no_grad():  # explicit, large-ish weights so the T = 200 logits are not all ~0
        model[0].weight.copy_(torch.linspace(-3.0, 2.5, 12, dtype=torch.float64).reshape(4, 3))
        model[2].weight.copy_(torch.linspace(4.0, -3.0, 12, dtype=torch.float64).reshape(3, 4) ** 3)
    g = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(5, 3, generator=g, dtype=torch.float64) * 30, torch.tensor([0, 1, 2, 1, 0])),
        (torch.randn(4, 3, generator=g, dtype=torch.float64) * 30, torch.tensor([2, 2, 0, 1])),
    ]
    return model, PruningData(batches, num_classes=3)


def _hand_theta_hg(model: nn.Module, data: PruningData) -> dict[str, torch.Tensor]:
    """θ ⊙ (H g) with H, g of L(w) = Σ_b (n_b / n̄) CE(f(x_b; w) / T, y_b) w.r.t. the weights, biases fixed."""
    w1, b1, w2, b2 = (p.detach().clone() for p in model.parameters())
    n1 = w1.numel()

    def loss(flat: torch.Tensor) -> torch.Tensor:
        a, c = flat[:n1].reshape(w1.shape), flat[n1:].reshape(w2.shape)
        mean_size = sum(len(y) for _, y in data) / len(data.batches)  # batch means weighted by size
        return sum(len(y) / mean_size * F.cross_entropy((torch.tanh(x @ a.T + b1) @ c.T + b2) / T, y) for x, y in data)

    theta = torch.cat([w1.reshape(-1), w2.reshape(-1)])
    g = torch.autograd.functional.jacobian(loss, theta)
    h = torch.autograd.functional.hessian(loss, theta)
    z = theta * (h @ g)
    return {"0.weight": z[:n1].reshape(w1.shape), "2.weight": z[n1:].reshape(w2.shape)}


def test_defaults_follow_reference() -> None:
    cfg = get_pruner("grasp").Config()
    assert cfg.temperature == 200.0 and cfg.eps == 1e-10 and cfg.scope == "global" and cfg.train_mode is False
    assert get_pruner("grasp").data_dependent


def test_grasp_equals_theta_times_explicit_hessian_gradient() -> None:
    model, data = _net_and_data()
    hand = _hand_theta_hg(model, data)
    assert any((v > 0).any() for v in hand.values()) and any((v < 0).any() for v in hand.values())  # signed
    raw = get_pruner("grasp")(normalize=False).scores(model, data)
    for n, v in hand.items():
        torch.testing.assert_close(raw[n], v, rtol=1e-8, atol=1e-18)
    norm = abs(sum(float(v.sum()) for v in hand.values())) + 1e-10
    scores = get_pruner("grasp")().scores(model, data)
    for n, v in hand.items():
        torch.testing.assert_close(scores[n], v / norm, rtol=1e-8, atol=1e-12)


def test_mask_keeps_largest_theta_hg_as_the_references_do() -> None:
    """GraSP's code removes the top of −θ⊙Hg; Synaptic-Flow keeps the top of θ⊙Hg: the same mask."""
    model, data = _net_and_data()
    hand = _hand_theta_hg(model, data)
    masks = prune(model, "grasp", density=0.25, data=data)
    expected = allocate(hand, 0.25)
    for n in hand:
        assert torch.equal(masks[n], expected[n])
    # and it is *not* the mask of the opposite sign convention
    flipped = allocate({n: -v for n, v in hand.items()}, 0.25)
    assert any(not torch.equal(masks[n], flipped[n]) for n in hand)


def test_temperature_is_applied() -> None:
    model, data = _net_and_data()
    a = get_pruner("grasp")(normalize=False).scores(model, data)
    b = get_pruner("grasp")(normalize=False, temperature=1.0).scores(model, data)
    assert not torch.allclose(a["0.weight"], b["0.weight"])


def test_exact_count_at_999_sparsity_and_determinism() -> None:
    model = lenet()
    data = lenet_data()
    a = prune(model, "grasp", sparsity=0.999, data=data, seed=0)
    b = prune(model, "grasp", sparsity=0.999, data=data, seed=0)
    assert a.total == LENET_TOTAL and a.kept == KEEP_AT_999
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_scores_leave_model_unchanged() -> None:
    check_scores_leave_model_unchanged("grasp", bn_data())


def test_scores_on_a_torch_pruned_model() -> None:
    check_scores_on_torch_pruned_model("grasp", bn_data())
