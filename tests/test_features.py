from __future__ import annotations

import pytest
import torch
from torch import nn

from autosparse.core.errors import SchemaMismatchError
from autosparse.core.masks import Masks
from autosparse.data import load_dataset, pruning_batch
from autosparse.features import FEATURE_NAMES, FEATURES, SCHEMA_VERSION, check_schema, compute_features
from autosparse.models import build_model


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("fake:fashion-mnist", n_train=200, n_test=50)
    model = build_model("mlp", (1, 28, 28), 10, seed=0, widths=(32, 16))
    return model, pruning_batch(ds, samples_per_class=4)


def test_full_schema_shapes_and_finiteness(setup) -> None:
    model, data = setup
    table = compute_features(model, data)
    dense = table.dense()
    assert dense.shape == (table.n_weights, len(FEATURE_NAMES))
    assert torch.isfinite(dense).all()
    offsets = [e["offset"] for e in table.layer_table()]
    assert offsets == [0, 784 * 32, 784 * 32 + 32 * 16]


def test_features_match_hand_computations(setup) -> None:
    model, data = setup
    table = compute_features(model, data)
    lf = table.layers[1]
    w = [m for m in model.modules() if isinstance(m, nn.Linear)][1].weight.detach()
    assert torch.allclose(lf.column("theta"), w.reshape(-1))
    assert torch.allclose(lf.column("theta_z"), (w / w.std()).reshape(-1), atol=1e-5)
    # row mass = Σ|θ| into each output unit / mean over units, broadcast to the unit's weights
    rows = w.abs().sum(1)
    assert torch.allclose(lf.row["row_mass"], rows / rows.mean(), atol=1e-5)
    assert torch.allclose(lf.column("row_mass").reshape(w.shape)[:, 0], rows / rows.mean(), atol=1e-5)
    cols = w.abs().sum(0)
    assert torch.allclose(lf.column("col_mass").reshape(w.shape)[0], cols / cols.mean(), atol=1e-5)
    ranks = lf.column("abs_theta_rank")
    assert ranks.min() == 0 and ranks.max() == 1
    assert int(ranks.argmax()) == int(w.abs().reshape(-1).argmax())
    assert lf.layer["is_first"] == 0.0 and table.layers[0].layer["is_first"] == 1.0


def test_gradient_features_equal_autograd(setup) -> None:
    model, data = setup
    table = compute_features(model, data, names=["grad", "snip_rank"])
    x = torch.cat([b[0] for b in data])
    y = torch.cat([b[1] for b in data])
    import copy

    m = copy.deepcopy(model).train()
    torch.nn.functional.cross_entropy(m(x), y).backward()
    first = next(p for n, p in m.named_parameters() if n.endswith("weight"))
    assert torch.allclose(table.layers[0].column("grad"), first.grad.reshape(-1), atol=1e-6)


def test_a_frozen_layer_gets_the_gradients_a_trainable_one_would(setup) -> None:
    """autos crashed on a model with a frozen layer ("One of the differentiated Tensors does not
    require grad"), where SNIP and the rest score it; the caller's flag must stay as it was."""
    import copy

    model, data = setup
    frozen = copy.deepcopy(model)
    first = next(p for n, p in frozen.named_parameters() if n.endswith("weight"))
    first.requires_grad_(False)
    want = compute_features(model, data, names=["grad"]).dense()
    assert torch.equal(compute_features(frozen, data, names=["grad"]).dense(), want)
    assert not first.requires_grad


def test_a_bfloat16_model_gets_its_inputs_in_bfloat16(setup) -> None:
    import copy

    model, data = setup
    table = compute_features(copy.deepcopy(model).to(torch.bfloat16), data, names=["grad"])
    assert torch.isfinite(table.dense()).all() and bool((table.dense() != 0).any())


def test_masked_features_see_the_mask(setup) -> None:
    model, data = setup
    from autosparse.core.layers import prunable_layers

    masks = Masks({layer.name: torch.rand(layer.shape) < 0.2 for layer in prunable_layers(model)})
    table = compute_features(model, data, names=["row_log_degree", "layer_density", "theta"], masks=masks)
    lf = table.layers[0]
    assert lf.layer["layer_density"] == pytest.approx(float(masks[lf.name].float().mean()))
    assert torch.allclose(lf.row["row_log_degree"], torch.log1p(masks[lf.name].sum(1).float()))
    assert torch.all(lf.column("theta")[~masks[lf.name].reshape(-1)] == 0)


def test_model_is_untouched(setup) -> None:
    model, data = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    compute_features(model, data)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_descriptors_alone_read_the_model_in_place_and_equal_the_copied_read(setup) -> None:
    """Layer descriptors need no pass, so no copy (the guards ask for them on every `autos` call)."""
    model, data = setup
    names = ["log_fan_in", "log_numel_frac", "rel_depth", "is_last", "kind_conv"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    table = compute_features(model, data, names=names)
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with_pass = compute_features(model, data, names=[*names, "grad"])  # copies: the gradient pass runs
    assert [lf.layer for lf in table.layers] == [{k: lf.layer[k] for k in names} for lf in with_pass.layers]


def test_schema_checks() -> None:
    check_schema(SCHEMA_VERSION, ["theta", "snip_rank"])
    with pytest.raises(SchemaMismatchError, match="retrain"):
        check_schema(SCHEMA_VERSION + 1)
    with pytest.raises(SchemaMismatchError, match="not in schema"):
        check_schema(SCHEMA_VERSION, ["no_such_feature"])
    assert len({f.name for f in FEATURES}) == len(FEATURES)


def test_conv_features() -> None:
    ds = load_dataset("fake:cifar10", n_train=100, n_test=20)
    model = build_model("resnet20", (3, 32, 32), 10, seed=0, width=0.25)
    table = compute_features(model, pruning_batch(ds, samples_per_class=2))
    assert torch.isfinite(table.dense()).all()
    conv = next(lf for lf in table.layers if len(lf.shape) == 4)
    assert conv.layer["log_kernel"] == pytest.approx(torch.log(torch.tensor(9.0)).item())


def test_compute_features_takes_data_as_prune_does_and_names_what_needs_it() -> None:
    """A tuple failed with "no attribute input_shape"; data=None said only "no pruning data was given";
    a misspelt feature was told to regenerate the store (helper)."""
    import autosparse
    from autosparse.core.errors import ConfigError, SchemaMismatchError

    m = autosparse.build_model("lenet_300_100", (1, 28, 28), 10, seed=0)
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 10
    assert len(autosparse.compute_features(m, (x, y), names=["grad", "log_fan_in"]).layers) == 3
    with pytest.raises(ConfigError, match=r"need data \(gradients, GraSP\), so pass data=\(inputs, targets\)"):
        autosparse.compute_features(m, None, input_shape=(1, 28, 28))
    free = autosparse.compute_features(m, None, names=["synflow_rank", "log_fan_in"], input_shape=(1, 28, 28))
    assert len(free.layers) == 3
    with pytest.raises(SchemaMismatchError, match="did you mean 'log_fan_in'"):
        autosparse.compute_features(m, (x, y), names=["fan_in"])


def test_masks_of_another_model_are_refused_naming_the_mismatch() -> None:
    """They failed deep in torch on a size mismatch (helper)."""
    from autosparse.core.errors import MaskError

    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 4))
    masks = Masks({"1.weight": torch.ones(4, 9, dtype=torch.bool)})
    x, y = torch.randn(6, 8), torch.randint(0, 4, (6,))
    with pytest.raises(MaskError, match=r"1\.weight"):
        compute_features(model, (x, y), masks=masks)
    own = Masks({"1.weight": torch.rand(4, 8, generator=torch.Generator().manual_seed(0)) > 0.5})
    assert compute_features(model, (x, y), masks=own.to_dict()).n_weights == 32  # a dict of masks, as before (review)


def test_grasp_features_of_a_hard_sigmoid_net_and_depth_without_data() -> None:
    """gen failed on torchvision's MobileNet-v3: GraSP's Hessian product through its hard sigmoid, which
    the pruner's working copy replaced but the features' did not; and without data, an input_shape
    read the depth descriptors in registration order, not the forward's (hunt)."""
    data = pruning_batch(load_dataset("fashion-mnist", n_train=200, n_test=50, seed=0), samples_per_class=1, seed=0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.Hardswish(), nn.Linear(16, 16), nn.Hardsigmoid())
    net.append(nn.Linear(16, 10))
    table = compute_features(net, data, seed=0, names=["grasp_rank"])
    assert all(torch.isfinite(lf.weight["grasp_rank"]).all() for lf in table.layers)
    assert all("forward" not in vars(m) for m in net.modules())  # the caller's model keeps its own

    class HeadFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head, self.stem = nn.Linear(16, 10), nn.Linear(784, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.stem(x.flatten(1))))

    names = ["rel_depth", "is_first", "is_last"]
    with_data = compute_features(HeadFirst(), data, names=names)
    shape_only = compute_features(HeadFirst(), None, names=names, input_shape=(1, 28, 28))
    assert [lf.layer for lf in shape_only.layers] == [lf.layer for lf in with_data.layers]
    assert shape_only.output_layer == with_data.output_layer == "head.weight"
