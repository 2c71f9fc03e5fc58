"""synflow: path-product scores by hand, layer conservation, input shapes, 100-round exp schedule."""

from __future__ import annotations

import pytest
import torch
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
from autosparse.core.errors import ConfigError
from autosparse.pruners import get_pruner, prune

W1 = torch.tensor([[0.5, -1.0, 0.2], [-0.3, 0.8, -0.1]])
W2 = torch.tensor([[1.5, -0.5], [-0.2, 0.4], [0.9, -1.1], [0.05, 0.6]])
W3 = torch.tensor([[-0.7, 0.3, 0.2, -1.4]])


def _chain(activation: type[nn.Module] | None = None) -> nn.Module:
    act = [activation()] if activation is not None else []
    model = nn.Sequential(
        nn.Linear(3, 2, bias=False), *act, nn.Linear(2, 4, bias=False), *act, nn.Linear(4, 1, bias=False)
    )
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, w in zip(linears, (W1, W2, W3)):
            lin.weight.copy_(w)
    return model


def _hand_scores() -> tuple[list[torch.Tensor], float]:
    """score_l[i, j] = (1ᵀ|W_L|…|W_{l+1}|)_i · |W_l|_ij · (|W_{l-1}|…|W_1| 1)_j, R = 1ᵀ|W3||W2||W1|1."""
    a1, a2, a3 = W1.double().abs(), W2.double().abs(), W3.double().abs()
    ones_in = torch.ones(3, dtype=torch.float64)
    h1 = a1 @ ones_in
    h2 = a2 @ h1
    out_ones = torch.ones(1, dtype=torch.float64)
    d3 = out_ones
    d2 = a3.T @ d3
    d1 = a2.T @ d2
    s1 = d1[:, None] * a1 * ones_in[None, :]
    s2 = d2[:, None] * a2 * h1[None, :]
    s3 = d3[:, None] * a3 * h2[None, :]
    return [s1, s2, s3], float((a3 @ h2).sum())


@pytest.mark.parametrize("activation", [None, nn.ReLU])
def test_one_shot_scores_match_hand_path_products(activation: type[nn.Module] | None) -> None:
    model = _chain(activation)
    scores = get_pruner("synflow")(input_shape=(3,)).scores(model, None)
    names = list(scores)
    hand, _ = _hand_scores()
    for n, h in zip(names, hand):
        assert scores[n].dtype == torch.float64 and scores[n].device.type == "cpu"
        torch.testing.assert_close(scores[n], h, rtol=1e-12, atol=0)


def test_layer_conservation_on_a_linear_chain() -> None:
    """Bias-free chain: every layer's total score equals R (synaptic-flow conservation)."""
    scores = get_pruner("synflow")(input_shape=(3,)).scores(_chain(nn.ReLU), None)
    _, r = _hand_scores()
    for s in scores.values():
        assert float(s.sum()) == pytest.approx(r, rel=1e-12)
    torch.manual_seed(0)
    deep = nn.Sequential(*[nn.Linear(8, 8, bias=False) for _ in range(5)])
    sums = [float(s.sum()) for s in get_pruner("synflow")(input_shape=(8,)).scores(deep, None).values()]
    assert max(sums) == pytest.approx(min(sums), rel=1e-10)


def test_input_shape_from_config_data_or_model_attribute() -> None:
    model = lenet()
    x, y = lenet_data(4)
    from_config = prune(model, "synflow", density=0.01, data=None, input_shape=(1, 28, 28), rounds=5)
    from_data = prune(model, "synflow", density=0.01, data=(x, y), rounds=5)
    model.input_shape = (1, 28, 28)
    from_attr = prune(model, "synflow", density=0.01, rounds=5)
    for n in from_config:
        assert torch.equal(from_config[n], from_data[n]) and torch.equal(from_config[n], from_attr[n])
    del model.input_shape
    with pytest.raises(ConfigError, match="input_shape"):
        prune(model, "synflow", density=0.01)
    assert get_pruner("synflow")(input_shape=[1, 28, 28]).config.input_shape == (1, 28, 28)  # YAML lists


def test_defaults_follow_reference() -> None:
    cls = get_pruner("synflow")
    cfg = cls.Config()
    assert cfg.rounds == 100 and cfg.schedule == "exp" and cfg.scope == "global" and cfg.float64
    assert not cls.data_dependent
    with pytest.raises(ConfigError):
        cls(rounds=0)
    with pytest.raises(ConfigError):
        cls(schedule="cosine")


def test_one_round_is_one_shot_allocation() -> None:
    model = lenet()
    one = prune(model, "synflow", density=0.05, input_shape=(784,), rounds=1)
    expected = allocate(get_pruner("synflow")(input_shape=(784,)).scores(model, None), 0.05)
    assert all(torch.equal(one[n], expected[n]) for n in one)


def test_100_round_exp_keeps_every_layer_at_999_sparsity_exact_count_and_determinism() -> None:
    model = lenet()
    a = prune(model, "synflow", sparsity=0.999, input_shape=(1, 28, 28), seed=0)  # the default 100 rounds
    assert a.meta["method"] == "synflow"
    assert a.total == LENET_TOTAL and a.kept == KEEP_AT_999
    assert a.empty_layers() == []
    b = prune(model, "synflow", sparsity=0.999, input_shape=(1, 28, 28), seed=0, rounds=10)
    c = prune(model, "synflow", sparsity=0.999, input_shape=(1, 28, 28), seed=1, rounds=10)
    assert b.kept == KEEP_AT_999
    assert all(torch.equal(b[n], c[n]) for n in b)  # data- and seed-free, so fully deterministic


def test_batchnorm_model_scored_in_eval_mode_regardless_of_caller_mode() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)
    )
    with torch.no_grad():
        model[1].running_var.uniform_(0.5, 2.0)
    pruner = get_pruner("synflow")(input_shape=(1, 5, 5))
    model.train()
    in_train = pruner.scores(model, None)
    model.eval()
    in_eval = pruner.scores(model, None)
    for n in in_train:
        assert torch.equal(in_train[n], in_eval[n]) and torch.isfinite(in_train[n]).all()
        assert (in_train[n] > 0).all()


def test_scores_leave_model_unchanged() -> None:
    check_scores_leave_model_unchanged("synflow", None, input_shape=(6,), rounds=10)
    check_scores_leave_model_unchanged("synflow", bn_data(), rounds=10)


def test_scores_on_a_torch_pruned_model() -> None:
    check_scores_on_torch_pruned_model("synflow", None, input_shape=(6,))


class _CastsToFloat32(nn.Module):
    """As timm's EfficientViT attention does (q.float()): a float32 step inside a float64 copy."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().to(x.dtype)


def _deep(cast: bool) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False), nn.Linear(4, 2, bias=False)]
    with torch.no_grad():
        for layer in layers[:2]:
            layer.weight.mul_(1e20)  # the flow of an all-ones input passes float32's 3.4e38 after two layers
    return nn.Sequential(layers[0], layers[1], *([_CastsToFloat32()] if cast else []), layers[2])


def test_a_flow_that_overflows_inside_the_model_is_taken_at_a_smaller_input() -> None:
    """timm's efficientvit_b0: SynFlow (and autos, which reads its one-shot scores) failed with
    'all scores are NaN' (review); a smaller all-equal input keeps the ranking (no biases here)."""
    from autosparse.pruners.synflow import synflow_scores

    got = synflow_scores(_deep(cast=True), (4,))
    want = synflow_scores(_deep(cast=False), (4,))  # float64 throughout: no overflow, the reference
    for g, w in zip(got.values(), want.values(), strict=True):  # the same layers; the cast shifts one name
        assert torch.isfinite(g).all()
        ratio = g / w
        assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-6)  # one scale for all


def test_thin_by_flow_drops_weights_that_feed_a_dead_unit_first() -> None:
    # IRP's flow criterion: hidden unit 0 of this trained net has no kept outgoing weight, so the
    # weights into it carry no path flow, whatever their size, and go before any live weight
    from autosparse.pruners.synflow import thin_by_flow

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[0].weight[0] = 10.0  # the largest weights of the net: magnitude would keep them
    masks = {"0.weight": torch.ones(3, 4, dtype=torch.bool), "2.weight": torch.ones(2, 3, dtype=torch.bool)}
    masks["2.weight"][:, 0] = False
    with torch.no_grad():
        net[2].weight[:, 0] = 0.0  # pruned weights are zero in a net trained under the mask
    keep = 18 - 2 - 4  # 18 weights, 2 pruned already; the 4 into the dead unit go
    out = thin_by_flow(net, masks, keep, final_density=0.1, input_shape=(4,))
    assert sum(int(m.sum()) for m in out.values()) == keep
    assert not bool(out["0.weight"][0].any())
    assert bool(out["0.weight"][1:].all()) and torch.equal(out["2.weight"], masks["2.weight"])


def test_a_round_decided_by_position_among_zero_scores_is_said() -> None:
    """A branch behind a zero-initialised norm scale scores exactly 0: SNIP said that most of its
    mask was chosen by position, the iterative methods kept the same share in silence (helper)."""
    import warnings

    class TwoBranches(nn.Module):
        def __init__(self, gamma: float) -> None:
            super().__init__()
            self.a1, self.bn, self.a2 = nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 4)
            nn.init.constant_(self.bn.weight, gamma)
            self.b = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a2(torch.relu(self.bn(self.a1(x)))) + self.b(x)

    said = {}
    for gamma in (0.0, 1.0):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prune(TwoBranches(gamma), "synflow", density=0.5, input_shape=(8,), rounds=5)
        said[gamma] = [str(w.message) for w in caught if "chosen by position" in str(w.message)]
    assert not said[1.0]
    assert len(said[0.0]) == 1 and "spread evenly over the layers' order" in said[0.0][0]
    assert "zero_init_residual" in said[0.0][0]  # the cause of exact zeros, and the fix


def test_a_weight_a_parametrization_computes_is_taken_positive_where_it_is_used() -> None:
    # a Householder-orthogonal weight rebuilt from |original| keeps its signs: its ReLU outputs were all zero,
    # so every score was 0 and the call failed blaming "a layer whose weight is all zero"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    nn.utils.parametrizations.orthogonal(model[2], orthogonal_map="householder")
    # the same network with that layer's computed weight stored as a buffer: also left dense, and
    # SynFlow takes |·| of every buffer, so both must give the same masks
    frozen = nn.Linear(16, 16)
    del frozen.weight
    frozen.register_buffer("weight", model[2].weight.detach().clone())
    frozen.bias = model[2].bias
    reference = nn.Sequential(model[0], model[1], frozen, model[3], model[4])
    chain = len(model[2].parametrizations.weight)
    masks = prune(model, "synflow", density=0.1, input_shape=(20,))
    expected = prune(reference, "synflow", density=0.1, input_shape=(20,))
    assert sorted(masks) == ["0.weight", "4.weight"]
    assert all(torch.equal(masks[name], expected[name]) for name in masks)
    assert len(model[2].parametrizations.weight) == chain  # the caller's chain is left as it was
