"""The pruner interface: masks-only methods vs scoring methods, and the helpers every method shares."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from autosparse.core.allocation import allocate
from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.data.pruning_data import PruningData
from autosparse.pruners import (
    Pruner,
    PrunerConfig,
    ScoringPruner,
    as_scoring,
    available,
    get_pruner,
    make_pruner,
    make_scoring_pruner,
    prune,
    scoring_methods,
)
from autosparse.pruners.inputs import input_shape_of, require_data
from autosparse.pruners.weights import effective_weight
from autosparse.pruners.workspace import working_copy

MASKS_ONLY = {"imp", "npb", "dpai"}


def tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_exactly_the_masks_only_methods_lack_scores() -> None:
    for name in available():
        cls = get_pruner(name)
        assert issubclass(cls, Pruner)
        assert issubclass(cls, ScoringPruner) == (name not in MASKS_ONLY), name
        assert hasattr(cls, "scores") == (name not in MASKS_ONLY), name
    assert set(available()) - set(scoring_methods()) == MASKS_ONLY


@pytest.mark.parametrize("name", sorted(MASKS_ONLY))
def test_asking_a_masks_only_method_for_scores_is_one_clear_error(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"{name} .*no per-weight scores.*prune\(model, '{name}', density=") as err:
        make_scoring_pruner(name)
    assert "snip" in str(err.value)  # names methods that do score
    with pytest.raises(ConfigError, match="no per-weight scores"):
        as_scoring(make_pruner(name))


def test_make_scoring_pruner_passes_hyperparameters() -> None:
    pruner = make_scoring_pruner("synflow", {"rounds": 3}, input_shape=(12,))
    assert isinstance(pruner, ScoringPruner)
    assert pruner.config.rounds == 3 and pruner.config.input_shape == (12,)


def test_another_methods_config_is_refused_naming_the_fix() -> None:
    """SynFlow's config given to random was recorded as random's settings; to snip, an AttributeError."""
    for name, config in (("random", make_pruner("synflow").config), ("snip", PrunerConfig(scope="erk"))):
        with pytest.raises(ConfigError, match=rf"{name} takes a \w+Config, got a \w+: pass its hyperparameters"):
            make_pruner(name, config)
    assert make_pruner("synflow", make_pruner("synflow", rounds=4).config).config.rounds == 4


def test_a_scoring_pruner_masks_by_scores_then_allocation() -> None:
    class Ramp(ScoringPruner):
        data_dependent = False

        def scores(self, model, data, *, seed=0):
            return {
                la.name: torch.arange(la.parameter.numel(), dtype=torch.float32).reshape(la.shape)
                for la in prunable_layers(model)
            }

    model = tiny()
    for scope in ("global", "uniform", "erk"):
        pruner = Ramp(scope=scope)
        expected = allocate(pruner.scores(model, None), 0.3, scope=scope)
        got = pruner.masks(model, None, 0.3)
        assert all(torch.equal(got[n], expected[n]) for n in expected)


def test_an_incomplete_method_cannot_be_built() -> None:
    class NoMasks(Pruner):
        pass

    class NoScores(ScoringPruner):
        pass

    for cls in (NoMasks, NoScores):
        with pytest.raises(TypeError):
            cls()


def test_robust_over_a_masks_only_base_prunes_but_has_no_scores() -> None:
    model = tiny()
    masks = prune(model, "robust", density=0.3, scope="erk", base_method="npb", base_config={"input_shape": (12,)})
    assert masks.kept == round(0.3 * masks.total) and masks.meta["base_method"] == "npb"
    with pytest.raises(ConfigError, match=r"npb .*no per-weight scores"):
        make_pruner("robust", base_method="npb", scope="erk").scores(model, None)


def test_data_dependent_methods_say_how_to_pass_data() -> None:
    with pytest.raises(ConfigError, match=r"snip needs data: pass data=\(inputs, targets\)"):
        prune(tiny(), "snip", density=0.5)
    with pytest.raises(ConfigError, match="grasp needs data"):
        require_data(None, "grasp")
    x, y = torch.randn(4, 12), torch.tensor([0, 1, 2, 0])
    assert isinstance(require_data((x, y), "grasp"), PruningData)


# ----------------------------------------------------------------------------- shared helpers


def test_working_copy_keeps_or_sets_modes_casts_only_the_copy_and_drops_grads() -> None:
    model = tiny()
    model.train()
    model[2].eval()
    model[1].weight.grad = torch.ones_like(model[1].weight)
    kept = working_copy(model)
    assert [m.training for m in kept.modules()] == [m.training for m in model.modules()]
    assert all(p.grad is None for p in kept.parameters()) and model[1].weight.grad is not None
    assert not any(m.training for m in working_copy(model, train_mode=False).modules())
    assert all(m.training for m in working_copy(model, train_mode=True).modules())
    cast = working_copy(model, dtype=torch.float64)
    assert cast[1].weight.dtype == torch.float64 and model[1].weight.dtype == torch.float32


def test_working_copy_and_effective_weight_on_a_torch_pruned_model() -> None:
    model = tiny()
    masks = prune(model, "random", density=0.5, seed=0, apply=True)
    copy = working_copy(model)
    for layer in prunable_layers(copy):
        w = effective_weight(layer)
        assert torch.equal(w != 0, masks[layer.name])
        assert torch.equal(w, (layer.module.weight_orig * layer.module.weight_mask).detach())
    assert copy is not model and copy[1].weight_orig is not model[1].weight_orig


def test_input_shape_precedence_is_explicit() -> None:
    model = tiny()
    data = PruningData([(torch.randn(2, 3, 4), torch.tensor([0, 1]))], 2)
    assert input_shape_of("synflow", (12,), data, model) == (12,)
    assert input_shape_of("ntk_sap", (12,), data, model, data_first=True) == (3, 4)
    assert input_shape_of("ntk_sap", (12,), None, model, data_first=True) == (12,)
    assert input_shape_of("synflow", None, data, model) == (3, 4)
    assert input_shape_of("synflow", (), data, model) == (3, 4)  # empty = not given
    model.input_shape = (1, 12)
    assert input_shape_of("synflow", None, None, model) == (1, 12)
    del model.input_shape
    with pytest.raises(ConfigError, match=r"input_shape=.*prune\(model, 'npb'"):
        input_shape_of("npb", None, None, model)


@pytest.mark.parametrize("method", ["synflow", "ntk_sap", "npb", "dpai", "autos"])
def test_methods_with_inputs_of_their_own_refuse_a_model_that_reads_token_ids(method: str) -> None:
    # they run the model on float inputs of their own; an nn.Embedding cannot take them
    import autosparse

    model = nn.Sequential(nn.Embedding(50, 16), nn.Flatten(), nn.Linear(6 * 16, 4))
    data = (torch.randint(0, 50, (20, 6)), torch.arange(20) % 4)
    with pytest.raises(ConfigError, match=rf"^{method} runs the model on float inputs.*: grasp, iter_snip, .*snip$"):
        autosparse.prune(model, method, density=0.3, data=data)
    assert autosparse.prune(model, "snip", density=0.3, data=data).kept == round(0.3 * (6 * 16 * 4))


@pytest.mark.parametrize("method", ["ntk_sap", "npb"])
def test_integer_images_the_model_converts_itself_still_work(method: str) -> None:
    import autosparse

    class U8(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(16, 8), nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(x.float() / 255)))

    data = (torch.randint(0, 255, (20, 16), dtype=torch.uint8), torch.arange(20) % 4)
    assert autosparse.prune(U8(), method, density=0.3, data=data).kept == round(0.3 * 160)


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)),
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)),
    ],
    ids=["linear", "conv"],
)
def test_inputs_the_model_cannot_take_are_one_error_naming_their_shape(model: nn.Module) -> None:
    import autosparse

    data = (torch.randn(10, 3, 32, 32), torch.arange(10))
    with pytest.raises(ConfigError, match=r"^snip could not run the model on inputs of shape \(N, 3, 32, 32\): .*"):
        autosparse.prune(model, "snip", density=0.1, data=data)
    with pytest.raises(ConfigError, match=r"^synflow could not run the model on input_shape=\(3, 32, 32\)"):
        autosparse.prune(model, "synflow", density=0.1, input_shape=(3, 32, 32), rounds=2)
    # batches of several shapes: the first one's was named where another had failed (helper)
    mixed = [data, (torch.randn(4, 3, 28, 28), torch.arange(4))]
    with pytest.raises(ConfigError, match=r"several input shapes, \(N, 3, 32, 32\), \(N, 3, 28, 28\)"):
        autosparse.prune(model, "snip", density=0.1, data=mixed)


@pytest.mark.parametrize("method", ["snip", "synflow", "autos"])
def test_flattened_inputs_to_a_conv_net_are_the_same_one_error(method: str, caplog: pytest.LogCaptureFixture) -> None:
    # torch words these failures differently ("Expected 3D (unbatched) or 4D", BatchNorm's ValueError
    # "expected 4D input (got 2D input)"); each used to escape as a raw traceback, and autos warned first
    import autosparse

    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
    )
    data = (torch.randn(10, 784), torch.arange(10))
    with pytest.raises(ConfigError, match=rf"^{method} could not run the model on inputs of shape \(N, 784\): "):
        autosparse.prune(model, method, density=0.1, data=data)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with pytest.raises(ConfigError, match=r"could not run the model on input_shape=\(28, 28\): expected 4D input"):
        autosparse.prune(
            nn.Sequential(nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(784, 10)),
            "synflow",
            density=0.1,
            input_shape=(28, 28),
        )


def test_a_model_name_instead_of_a_model_names_the_builder() -> None:
    import autosparse

    with pytest.raises(ConfigError, match=r"prune takes the model itself .* autosparse\.build_model\("):
        autosparse.prune("resnet18", "random", density=0.1)


def test_python_keywords_are_typed_as_the_yaml_and_the_cli_type_them() -> None:
    # a wrong type used to surface as a bare ValueError from inside the method
    with pytest.raises(ConfigError, match=r"synflow\.rounds must be int, got 'ten'"):
        make_pruner("synflow", rounds="ten")
    with pytest.raises(ConfigError, match=r"synflow\.rounds must be a whole number, got 2\.5"):
        make_pruner("synflow", rounds=2.5)
    with pytest.raises(ConfigError, match=r"synflow\.float64 must be true or false"):
        make_pruner("synflow", float64="perhaps")
    cfg = make_pruner("synflow", rounds="3", float64="no", input_shape=(1, 4)).config
    assert (cfg.rounds, cfg.float64, cfg.input_shape) == (3, False, (1, 4))  # a tuple passes as given


@pytest.mark.parametrize("method", ["snip", "grasp", "prospr", "autos"])
def test_targets_past_the_last_class_are_named(method: str) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    data = (torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 4]))
    with pytest.raises(ConfigError, match=r"targets run from 0 to 4, but the model outputs 3 classes"):
        prune(model, method, density=0.5, data=data)


@pytest.mark.parametrize("method", ["snip", "grasp", "prospr", "autos"])
def test_logits_per_token_are_one_error_naming_the_pooling_wrapper(method: str) -> None:
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))  # (batch, tokens, classes)
    data = (torch.randn(5, 4, 8), torch.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(ConfigError, match=r"logits have shape \(5, 4, 3\) for targets of shape \(5,\).*out\.mean\(1\)"):
        prune(model, method, density=0.5, data=data)


def test_ignored_targets_are_not_classes() -> None:
    from autosparse.core.model_io import class_targets

    y = torch.tensor([0, 2, -100, 1])  # cross-entropy's ignore_index
    assert class_targets(torch.zeros(4, 3), y) is y
    with pytest.raises(ConfigError, match="run from -1 to 0"):
        class_targets(torch.zeros(2, 3), torch.tensor([-1, 0]))


def test_inputs_given_as_a_tuple_or_dict_name_the_wrapper_to_write() -> None:
    """data=((x, z), y) read as a batch of two tensors ("inputs and targets of shapes (20, 32) and
    (20, 32)") and a dict as "item 0 is dict" (review): one error saying how to wrap the model."""
    x, z, y = torch.randn(6, 4), torch.randn(6, 4), torch.arange(6) % 3
    for data in [((x, z), y), ({"pixel_values": x}, y), [((x, z), y)]]:
        with pytest.raises(ConfigError, match=r"runs the model on one input tensor\. Wrap the model"):
            PruningData.coerce(data)


def test_every_method_takes_input_shape_and_a_wrapped_model_is_named() -> None:
    """magnitude, random and phew refused input_shape where synflow took it, so one loop over the
    data-free methods broke; DataParallel gave torch's "stateless API" error (review)."""
    from autosparse.pruners import prune

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    for method in ["magnitude", "random", "phew", "synflow"]:
        masks = prune(model, method, density=0.2, input_shape=(3, 2, 2))
        assert masks.kept == round(0.2 * masks.total) and masks.meta["diagnostics"]["paths"] == "exact"
    with pytest.raises(ConfigError, match=r"prune model.module"):
        prune(nn.DataParallel(model), "magnitude", density=0.2)


def test_a_compiled_or_meta_model_is_one_error_and_wrapped_names_get_the_unwrapping_fix() -> None:
    from autosparse.core.errors import MaskError
    from autosparse.core.masks import Masks
    from autosparse.pruners import prune

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    compiled = torch.compile(model)  # building the wrapper compiles nothing yet
    with pytest.raises(ConfigError, match=r"compiled \(torch.compile\): prune model._orig_mod"):
        prune(compiled, "magnitude", density=0.2)
    masks = prune(model, "magnitude", density=0.2)
    with pytest.raises(MaskError, match=r"wrapped by torch.compile.*apply them to model._orig_mod"):
        masks.apply(compiled)
    with pytest.raises(MaskError, match=r"made on a DataParallel wrapper.*prune model.module instead"):
        Masks({f"module.{n}": m for n, m in masks.items()}).apply(model)
    with torch.device("meta"):
        on_meta = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ConfigError, match=r"meta device.*to_empty\(device='cpu'\)"):
        prune(on_meta, "random", density=0.5)


def test_layers_left_dense_by_type_are_named_once(caplog: pytest.LogCaptureFixture) -> None:
    from autosparse.pruners import prune

    model = nn.Sequential(nn.Conv3d(1, 8, 3), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(1, 1, 4, 4, 4))  # materialise the lazy layer
    with caplog.at_level("WARNING", logger="autosparse"):
        masks = prune(model, "magnitude", density=0.5)
        prune(model, "magnitude", density=0.5)
    assert caplog.text.count("weights in Conv3d layers are not pruned") == 1
    assert f"the masks keep {masks.kept} of {masks.total} prunable weights, {masks.kept + 216}" in caplog.text


def test_inputs_the_model_cannot_take_are_one_error_naming_what_to_pass() -> None:
    """torch's "must match the size of tensor" (a fixed position embedding) and uint8 images into a
    model that does not convert them came through raw (review)."""
    from autosparse.pruners import prune

    class Positional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.pos, self.o = nn.Linear(4, 4), nn.Parameter(torch.zeros(1, 49, 4)), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.o((self.a(x) + self.pos).mean(1))

    with pytest.raises(ConfigError, match=r"inputs of shape \(N, 4, 4\).*of the shape the model takes"):
        prune(Positional(), "snip", density=0.5, data=(torch.randn(6, 4, 4), torch.arange(6) % 3))
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(144, 3))
    images = torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(ConfigError, match=r"torch.uint8 inputs, which it does not convert.*x.float\(\) / 255"):
        prune(conv, "snip", density=0.5, data=(images, torch.arange(6) % 3))


def test_integer_targets_of_any_width_are_class_indices() -> None:
    """int32 targets crashed SNIP, GraSP and the rest with torch's "expected target dtype to be
    Long or Byte" (autos took them): the pruning data holds them as int64 (review)."""
    from autosparse.pruners import prune

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(6, 3, 2, 2)
    for dtype in (torch.int32, torch.int16, torch.int8):
        y = (torch.arange(6) % 3).to(dtype)
        assert PruningData.coerce((x, y)).batches[0][1].dtype == torch.int64
        for method in ("snip", "grasp"):
            assert prune(model, method, density=0.3, data=(x, y)).kept == round(0.3 * 120)


def test_a_zero_initialised_head_is_named_and_a_flat_signal_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    """torchvision's ViT and timm's MLP-Mixer zero their heads: SNIP and SynFlow scored every weight
    0, and the mask was the first weights in layer order, with a generic collapse warning (review)."""
    from autosparse.core.errors import ScoreError
    from autosparse.pruners import prune

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    nn.init.zeros_(model[3].weight)
    data = (torch.randn(6, 3, 2, 2), torch.arange(6) % 3)
    for method in ("snip", "synflow"):
        with (
            caplog.at_level("WARNING", logger="autosparse"),
            pytest.raises(ScoreError, match="all 120 scores are equal"),
        ):
            prune(model, method, density=0.2, data=data)
        assert "3.weight: all zero at initialisation" in caplog.text
        caplog.clear()
    assert prune(model, "phew", density=0.2, data=data).kept == 24  # a method that does not multiply through it


def test_non_finite_weights_are_named_and_half_precision_gets_the_float32_signal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from autosparse.pruners import prune

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[1].weight[0, 0] = float("inf")
    with caplog.at_level("WARNING", logger="autosparse"):
        prune(model, "random", density=0.5)
    assert "1.weight: NaN or infinite weights at initialisation" in caplog.text
    if hasattr(torch, "float8_e4m3fn"):  # a dtype without isfinite is not refused
        eight = nn.Sequential(nn.Linear(6, 4)).to(torch.float8_e4m3fn)
        assert prune(eight, "random", density=0.5).kept == 12
    # GraSP's Hessian-gradient products underflowed in float16 and it kept the first weights by index
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))
    data = (torch.randn(30, 3, 2, 2), torch.arange(30) % 3)
    full = prune(model, "grasp", density=0.1, data=data)
    half = prune(model.half(), "grasp", density=0.1, data=(data[0].half(), data[1]))
    assert all(torch.equal(full[n], half[n]) for n in full)


def test_ntk_sap_takes_its_sample_count_from_the_model_and_runs_in_its_dtype() -> None:
    """It followed the batch's labels (one class: a tenth of the samples) and a float64 model crashed."""
    from autosparse.pruners.ntk_sap import NTKSAP

    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5))
    x = torch.randn(4, 6)
    for y in (torch.zeros(4, dtype=torch.long), torch.arange(4)):
        assert NTKSAP()._plan(model, (x, y)) == ((6,), 50)
    masks = prune(model.double(), "ntk_sap", density=0.3, input_shape=(6,), rounds=1, num_samples=4)
    assert masks.kept == round(0.3 * masks.total)

    class Scaled(nn.Module):  # a float32 logit scale ahead of float64 layers: the probe meets the weights' dtype
        def __init__(self) -> None:
            super().__init__()
            self.temperature = nn.Parameter(torch.ones(()))
            self.fc1, self.fc2 = nn.Linear(6, 8).double(), nn.Linear(8, 3).double()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.fc1(x))) * self.temperature.to(x.dtype)

    assert NTKSAP()._plan(Scaled(), (x.double(), torch.arange(4) % 3)) == ((6,), 30)


def test_uint8_inputs_a_linear_model_cannot_take_are_one_error_naming_the_cast() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    data = (torch.randint(0, 255, (6, 3, 2, 2), dtype=torch.uint8), torch.arange(6) % 3)
    with pytest.raises(ConfigError, match=r"torch.uint8 inputs, which it does not convert.*x.float\(\) / 255"):
        prune(model, "snip", density=0.5, data=data)
    # token ids are right for an embedding: a dtype clash further in is the model's, and told as torch's
    tokens = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 3).double())
    with pytest.raises(RuntimeError, match="must have the same dtype") as told:
        prune(tokens, "snip", density=0.5, data=(torch.randint(0, 10, (6, 3)), torch.arange(6) % 3))
    assert not isinstance(told.value, ConfigError)


def _conv_bn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


@pytest.mark.parametrize("method", ["snip", "synflow", "npb", "grasp"])
def test_a_callers_no_grad_or_inference_mode_changes_nothing(method: str) -> None:
    """Set-up code often runs under torch.no_grad(): the gradient methods raised there, and NPB under
    inference_mode returned a mask with no path at all."""
    data = (torch.randn(20, 1, 8, 8), torch.arange(20) % 10)
    ref = prune(_conv_bn(), method, density=0.1, data=data)
    with torch.no_grad():
        assert prune(_conv_bn(), method, density=0.1, data=data) == ref
    with torch.inference_mode():
        made_here = (torch.randn(20, 1, 8, 8), torch.arange(20) % 10)  # inference tensors
        assert prune(_conv_bn(), method, density=0.1, data=data) == ref
        assert prune(_conv_bn(), method, density=0.1, data=made_here).kept == ref.kept
        assert torch.is_inference_mode_enabled()  # the caller's mode is back
    assert torch.is_grad_enabled()
    # with apply=True, in any mode, the model deep-copies and trains afterwards
    import copy

    for mode in (torch.no_grad, torch.inference_mode, torch.enable_grad):
        model = _conv_bn()  # (one built under inference_mode could never train: its tensors are frozen)
        with mode():
            prune(model, method, density=0.1, data=data, apply=True)
        copy.deepcopy(model)
        torch.nn.functional.cross_entropy(model(data[0]), data[1]).backward()
        assert model[0].weight_orig.grad is not None


@pytest.mark.parametrize("method", ["prospr", "autos", "robust"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_float32_data_prunes_a_model_of_another_dtype(method: str, dtype: torch.dtype) -> None:
    """ProsPr's inner steps and the normalization probe of the rescaling methods fed float32 data as it
    came; every other pass casts it to the model's dtype."""
    data = (torch.randn(20, 1, 8, 8), torch.arange(20) % 10)
    hp = {"rescale_normalized": False} if method == "robust" else {}
    masks = prune(_conv_bn().to(dtype), method, density=0.05, data=data, **hp)
    assert masks.kept == round(0.05 * (36 + 1440))


def test_a_bad_seed_or_an_empty_batch_is_one_error() -> None:
    data = (torch.randn(20, 1, 8, 8), torch.arange(20) % 10)
    with pytest.raises(ConfigError, match="seed must be an integer"):
        prune(_conv_bn(), "snip", density=0.1, data=data, seed=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pruning data item 0 holds no examples"):
        prune(_conv_bn(), "snip", density=0.1, data=(data[0][:0], data[1][:0]))


def test_fewer_weights_than_layers_keeps_one_per_layer_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 4), nn.ReLU(), nn.Linear(4, 10))
    with caplog.at_level(logging.WARNING, logger="autosparse.pruners.entry"):
        masks = prune(model, "random_erk", density=1e-4, input_shape=(784,))
    assert masks.kept == 2 and all(bool(m.any()) for m in masks.values())
    assert any("kept 2 weights, not the 1 asked for" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autosparse.pruners.entry"):
        assert prune(model, "random", density=1e-4, input_shape=(784,)).kept == 1  # global: the count as asked
    assert not any("asked for" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("method", sorted(scoring_methods()))
def test_scores_take_a_plain_batch_as_prune_does(method: str) -> None:
    """ntk_sap's scores() raised "'tuple' object has no attribute 'input_shape'" on (x, y) (audit)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    fast = {"synflow": {"rounds": 2}, "iter_snip": {"rounds": 2}, "ntk_sap": {"rounds": 1, "num_samples": 4}}
    x, y = torch.randn(6, 3, 2, 2), torch.arange(6) % 3
    scores = make_scoring_pruner(method, **fast.get(method, {})).scores(model, (x, y))
    assert set(scores) == {"1.weight", "3.weight"}
    assert all(s.shape == p.shape for s, p in zip(scores.values(), (model[1].weight, model[3].weight), strict=True))


def test_prune_and_build_model_leave_the_callers_cuda_streams_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.manual_seed reseeds every CUDA generator, which fork_rng(devices=[]) does not restore: on a GPU
    machine the caller's CUDA stream came back reset to the seed. A CPU model touches no CUDA generator."""
    import autosparse
    from autosparse.models import build_model

    calls: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    model = build_model("mlp", (1, 4, 4), 3, seed=5, widths=(8,))
    masks = autosparse.prune(model, "snip", density=0.3, seed=7, data=(torch.randn(6, 1, 4, 4), torch.arange(6) % 3))
    assert calls == [] and masks.meta["torch_threads"] == torch.get_num_threads()


def test_masks_from_python_record_every_hyperparameter(tmp_path) -> None:
    # only the CLI recorded them: a saved non-default mask read as a default one (hunt)
    import json

    import autosparse
    from autosparse.models import build_model

    model = build_model("mlp", (1, 4, 4), 3, seed=5, widths=(8,))
    masks = autosparse.prune(model, "synflow", density=0.3, input_shape=(1, 4, 4), rounds=3)
    assert masks.meta["hparams"]["rounds"] == 3 and masks.meta["hparams"]["schedule"] == "exp"  # given and default
    masks.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "report.json").read_text())["meta"]["hparams"]["rounds"] == 3


@pytest.mark.parametrize(
    "method,hparams,fix",
    [
        ("imp", {"prune_fraction": 0.0, "dataset": "digits"}, r"prune_fraction must be in \(0, 1\)"),
        ("imp", {"prune_fraction": float("nan"), "dataset": "digits"}, r"prune_fraction must be in \(0, 1\)"),
        ("grasp", {"eps": -1.0}, "eps must be >= 0"),
        ("prospr", {"rounds": 0}, "rounds must be a positive integer"),
        ("prospr", {"schedule": "foo"}, "unknown schedule 'foo'"),
        ("prospr", {"inner_lr": float("nan")}, "inner_lr must be a finite number > 0"),
        ("prospr", {"inner_lr": float("inf")}, "inner_lr must be a finite number > 0"),  # all NaN scores (hunt)
        ("grasp", {"temperature": float("inf")}, "temperature must be a finite number > 0"),  # "all scores equal"
        ("prospr", {"inner_momentum": 5.0}, r"inner_momentum must be in \[0, 1\)"),
        ("ntk_sap", {"epsilon": float("nan"), "rounds": 2}, "epsilon must be a finite number > 0"),
        ("ntk_sap", {"epsilon": float("inf"), "rounds": 2}, "epsilon must be a finite number > 0"),
        ("dpai", {"lr": float("nan"), "steps": 3}, "lr must be a finite number > 0"),
        ("dpai", {"log_every": -5}, "log_every must be >= 0"),
        ("npb", {"time_limit": float("nan")}, "time_limit must be > 0"),
        ("npb", {"mip_rel_gap": -1.0}, r"mip_rel_gap must be in \[0, 1\)"),
        ("npb", {"beta": float("nan")}, "beta must be >= 0"),
        ("npb", {"conv_chunk_threshold": -1}, "chunk_threshold must be >= 1"),
    ],
)
def test_a_hyperparameter_out_of_its_range_is_one_error(method: str, hparams: dict, fix: str) -> None:
    """Each was accepted, or failed deep inside (ZeroDivisionError, NaN scores, Adam's own check) (helper)."""
    data = (torch.randn(20, 1, 8, 8), torch.arange(20) % 10)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with pytest.raises(ConfigError, match=fix):
        prune(model, method, density=0.1, data=data, check=False, **hparams)


@pytest.mark.parametrize("name", [None, 3, object])
def test_a_method_that_is_no_string_is_refused_in_one_line(name: object) -> None:
    """None or a class crashed with an AttributeError in the did-you-mean lookup (helper)."""
    from autosparse.pruners.registry import get_pruner

    with pytest.raises(ConfigError, match="named by a string such as 'snip'"):
        get_pruner(name)  # type: ignore[arg-type]


def test_prune_refuses_flags_that_are_not_bools_and_leaves_the_model_alone() -> None:
    """apply="False" is true to Python: the masks were attached to the caller's model, which
    prune without apply=True promises never to change (helper)."""
    from autosparse.api import prune

    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 4))
    for key in ("apply", "check"):
        with pytest.raises(ConfigError, match=f"{key} takes True or False, got 'False'"):
            prune(model, "random", density=0.5, **{key: "False"})
    assert not hasattr(model[1], "weight_mask")


def test_a_compiled_part_of_the_model_is_refused_naming_it() -> None:
    """Only a compiled whole model was caught; a compiled child reached torch, where GraSP's double
    backward failed on "donated buffers" and the other methods spent seconds recompiling (helper)."""
    from autosparse.api import prune

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8))
    model.body = torch.compile(nn.Sequential(nn.Linear(8, 4)))  # registered, never called: no compile runs
    with pytest.raises(ConfigError, match=r"part of the model is compiled \(torch.compile\): body; prune"):
        prune(model, "random", density=0.5)


def test_a_train_mode_pass_on_one_example_says_what_to_give() -> None:
    """A DataLoader's last batch of one example failed in BatchNorm with torch's bare ValueError (helper)."""
    from autosparse.api import prune

    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(1, 6), torch.tensor([1])
    with pytest.raises(ConfigError, match=r"batch of one example.*two or more examples.*drop_last=True"):
        prune(model, "iter_snip", density=0.2, data=(x, y), rounds=2)


def test_attention_with_its_own_key_width_says_its_projections_stay_dense(caplog: pytest.LogCaptureFixture) -> None:
    """With kdim/vdim, nn.MultiheadAttention holds q/k/v_proj_weight instead of in_proj_weight: they
    stayed dense without a word, and the density read as if they were pruned (helper)."""
    from autosparse.api import prune

    class Net(nn.Module):
        def __init__(self, kdim: int) -> None:
            super().__init__()
            self.att = nn.MultiheadAttention(16, 2, kdim=kdim, vdim=kdim, batch_first=True)
            self.kv = nn.Linear(16, kdim)
            self.fc = nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            kv = self.kv(x)
            return self.fc(self.att(x, kv, kv)[0].mean(1))

    data = (torch.randn(4, 5, 16), torch.tensor([0, 1, 2, 0]))
    with caplog.at_level(logging.WARNING, logger="autosparse"):
        prune(Net(16), "random", density=0.5, data=data)
    assert "not pruned" not in caplog.text  # in_proj_weight is pruned
    with caplog.at_level(logging.WARNING, logger="autosparse"):
        prune(Net(8), "random", density=0.5, data=data)
    assert "512 weights in MultiheadAttention layers are not pruned" in caplog.text


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_model_is_scored_in_float32(dtype: torch.dtype) -> None:
    """Half-precision scores tie and underflow: iter_snip kept 366 of 521 weights other than on the
    same weights in float32 (helper). The model handed in stays as it was."""
    from autosparse.api import prune

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(dtype)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    wide.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    x, y = torch.randn(20, 64), torch.arange(20) % 10
    for method, hp in (("snip", {}), ("iter_snip", {"rounds": 3})):
        half, full = (prune(m, method, density=0.1, data=(x, y), **hp) for m in (model, wide))
        assert all(torch.equal(half[n], full[n]) for n in full), method
    assert all(p.dtype == dtype for p in model.parameters())
