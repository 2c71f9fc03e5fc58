from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from autosparse.core.allocation import allocate
from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks
from autosparse.data import load_dataset
from autosparse.models import build_model
from autosparse.training.trainer import TrainConfig, evaluate, train


@pytest.fixture(scope="module")
def small_fmnist():
    return load_dataset("fashion-mnist", n_train=3000, n_test=1000, seed=0)


def _masks(model, density: float) -> Masks:
    g = torch.Generator().manual_seed(0)
    scores = {layer.name: torch.rand(layer.shape, generator=g) for layer in prunable_layers(model)}
    return allocate(scores, density, scope="erk")


def test_dense_training_learns(small_fmnist) -> None:
    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=0)
    before = evaluate(model, small_fmnist.x_test, small_fmnist.y_test)
    result = train(model, small_fmnist, TrainConfig(epochs=2))
    assert result.test_accuracy > 0.7 > before
    assert len(result.history) == 2


def test_masks_stay_exact_and_training_is_deterministic(small_fmnist) -> None:
    accs, weights = [], []
    for _ in range(2):
        model = build_model("lenet_300_100", (1, 28, 28), 10, seed=0)
        masks = _masks(model, 0.05)
        result = train(model, small_fmnist, TrainConfig(epochs=1, seed=3), masks=masks)
        for layer in prunable_layers(model):
            assert torch.all(layer.weight[~masks[layer.name]] == 0)
        accs.append(result.test_accuracy)
        weights.append(model.state_dict()["fc1.weight"].clone())
    assert accs[0] == accs[1]
    assert torch.equal(weights[0], weights[1])


def test_a_diverging_masked_run_warns_as_a_dense_one_does(small_fmnist, caplog: pytest.LogCaptureFixture) -> None:
    """NaN gradients times the mask's 0 are NaN: the run ended on "pruned weights are non-zero after
    training" (an AssertionError) where the same run without masks warned "training diverged"."""
    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=0)
    masks = _masks(model, 0.05)
    with caplog.at_level("WARNING", logger="autosparse.training.trainer"):
        result = train(model, small_fmnist, TrainConfig(epochs=1, lr=1e6, seed=3), masks=masks)
    assert result.train_loss != result.train_loss or result.train_loss == float("inf")
    assert any("training diverged" in r.getMessage() for r in caplog.records)
    for layer in prunable_layers(model):
        assert torch.all(layer.weight[~masks[layer.name]] == 0)


def test_a_loss_that_blew_up_but_stayed_finite_is_called_divergence(caplog: pytest.LogCaptureFixture) -> None:
    """Adam at lr 1 ended at a finite loss and chance accuracy with no warning; the rule reads the
    epochs' losses against chance's ln C, so a healthy run (lr 0.1, first epoch above ln C) says nothing."""
    data = load_dataset("fashion-mnist", n_train=1024, n_test=256, seed=0)
    said = {}
    # Adam at lr 1 blows up; SGD at 0.1 is healthy; a deep plain conv net starts at 2-3x chance's loss,
    # so one short epoch ends above twice chance, healthy all the same (the first rule's false alarm)
    for name, lr, optimizer, epochs in (
        ("lenet_300_100", 1.0, "adam", 2),
        ("lenet_300_100", 0.1, "sgd", 2),
        ("conv6", 0.001, "sgd", 1),
    ):
        model = build_model(name, (1, 28, 28), 10, seed=1)
        caplog.clear()
        with caplog.at_level("WARNING", logger="autosparse.training.trainer"):
            result = train(model, data, TrainConfig(epochs=epochs, lr=lr, optimizer=optimizer))
        assert all(r["train_loss"] == r["train_loss"] for r in result.history)  # finite: not the NaN case
        said[name + optimizer] = [r.getMessage() for r in caplog.records if "diverged" in r.getMessage()]
        assert (result.diverged is not None) == bool(said[name + optimizer])
    assert len(said["lenet_300_100adam"]) == 1 and "100x above where it began" in said["lenet_300_100adam"][0], said
    assert said["lenet_300_100sgd"] == [] and said["conv6sgd"] == [], said


def test_dropout_draws_are_seeded_by_the_recipe_and_the_callers_stream_is_kept(small_fmnist) -> None:
    # dropout drew from torch's global generator: the same cell trained differently after other work
    results = []
    for noise in (1, 2):
        torch.manual_seed(0)  # the same initial weights each time
        model = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(784, 64),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.5),
            torch.nn.Linear(64, 10),
        )
        torch.manual_seed(noise)  # whatever ran before in this process
        state = torch.random.get_rng_state()
        result = train(model, small_fmnist, TrainConfig(epochs=0.5, seed=3))
        assert torch.equal(torch.random.get_rng_state(), state)  # the caller's stream goes on where it was
        results.append((result.test_accuracy, model[1].weight.detach().clone()))
    assert results[0][0] == results[1][0] and torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "step", "constant"])
def test_every_schedule_runs(small_fmnist, schedule: str) -> None:
    model = build_model("mlp", (1, 28, 28), 10, seed=0, widths=(32,))
    result = train(model, small_fmnist, TrainConfig(epochs=0.5, schedule=schedule))
    assert 0.0 <= result.test_accuracy <= 1.0


def test_on_step_sees_every_step(small_fmnist) -> None:
    seen: list[int] = []
    model = build_model("mlp", (1, 28, 28), 10, seed=0, widths=(16,))
    result = train(model, small_fmnist, TrainConfig(epochs=1, batch_size=500), on_step=lambda s, m: seen.append(s))
    assert seen == list(range(result.steps)) and result.steps == 6


def test_bad_recipe_values() -> None:
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="linear")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=0)
    with pytest.raises(ConfigError, match=r"num_threads must be >= 0 \(0: OMP_NUM_THREADS, else every core\), got -1"):
        TrainConfig(num_threads=-1)  # was taken silently as "every core"
    # torch refused these mid-run (label smoothing at the first loss, eval_batch_size after training) or
    # trained nonsense with them (momentum 5): refused when the recipe is built, so `--check` sees them
    for bad, match in [
        ({"label_smoothing": 2}, r"label_smoothing must be in \[0, 1\)"),
        ({"weight_decay": -1}, "weight_decay must be >= 0"),
        ({"weight_decay": float("inf")}, "weight_decay must be >= 0 and finite"),  # trained NaN (helper)
        ({"eval_batch_size": 0}, "eval_batch_size must be >= 1"),
        ({"momentum": 5}, r"momentum must be in \[0, 1\)"),
        ({"warmup_fraction": 1.5}, "warmup_fraction"),
        ({"step_gamma": -1}, "step_gamma must be > 0"),
        ({"step_milestones": (0.5, 1.5)}, r"step_milestones must be fractions of training in \(0, 1\)"),
    ]:
        with pytest.raises(ConfigError, match=match):
            TrainConfig(**bad)
    TrainConfig(momentum=0)  # plain SGD stays allowed (the trainer drops Nesterov without momentum)
    TrainConfig(optimizer="adam", momentum=5)  # Adam reads no momentum


def _hook_masked_training(model, dataset, cfg: TrainConfig, masks: Masks) -> dict[str, torch.Tensor]:
    """The reference: torch's pruning hooks during training (what train() did before), same loop."""
    import math

    import torch.nn.functional as F

    from autosparse.core.masks import remove_masks
    from autosparse.training.trainer import _lr_lambda, set_threads

    set_threads(cfg.num_threads)  # the same GEMM blocking as train(): thread count changes rounding
    masks.apply(model)
    n = len(dataset.x_train)
    total = max(1, int(round(cfg.epochs * math.ceil(n / cfg.batch_size))))
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total))
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    model.train()
    while step < total:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            if step >= total:
                break
            idx = perm[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(dataset.x_train[idx]), dataset.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
    remove_masks(model)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("model_name,kwargs", [("lenet_300_100", {}), ("resnet20", {"width": 0.25})])
def test_masked_training_is_bit_identical_to_torch_pruning_hooks(small_fmnist, model_name, kwargs) -> None:
    """Masking weights once and gradients every step changes the cost, not the trajectory."""
    cfg = TrainConfig(epochs=0.3, seed=5, batch_size=256, num_threads=1)
    ref_model = build_model(model_name, (1, 28, 28), 10, seed=1, **kwargs)
    masks = _masks(ref_model, 0.1)
    ours = build_model(model_name, (1, 28, 28), 10, seed=1, **kwargs)
    reference = _hook_masked_training(ref_model, small_fmnist, cfg, masks)
    train(ours, small_fmnist, cfg, masks=masks)
    got = ours.state_dict()
    assert set(got) == set(reference)
    for k, v in reference.items():
        assert torch.equal(got[k], v), k


def test_keep_masks_attached_leaves_torch_pruning_in_place(small_fmnist) -> None:
    model = build_model("mlp", (1, 28, 28), 10, seed=0, widths=(16,))
    masks = _masks(model, 0.2)
    train(model, small_fmnist, TrainConfig(epochs=0.2), masks=masks, keep_masks_attached=True)
    assert torch.equal(model.fc1.weight_mask.bool(), masks["fc1.weight"])
    assert torch.all(model.fc1.weight[~masks["fc1.weight"]] == 0)


def test_training_input_in_the_wrong_form_is_one_error_naming_the_fix() -> None:
    import autosparse

    model = build_model("mlp", (1, 28, 28), 10, widths=[16])
    x, y = torch.randn(64, 1, 28, 28), torch.arange(64) % 10
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    for wrong in (loader, (x, y)):
        with pytest.raises(ConfigError, match=r"train needs an autosparse Dataset.*autosparse\.load_dataset"):
            train(model, wrong, TrainConfig(epochs=1))
    with pytest.raises(ConfigError, match="integer class indices"):
        autosparse.Dataset("mine", x, y.float(), x, y, 10, (1, 28, 28))
    with pytest.raises(ConfigError, match=r"classes 0\.\.9, outside \[0, 5\)"):
        autosparse.Dataset("mine", x, y, x, y, 5, (1, 28, 28))
    data = autosparse.Dataset("mine", x, y, x, y, 10, (1, 28, 28))
    result = train(model.double(), data, TrainConfig(epochs=1, batch_size=32))  # float64 model, float32 data
    assert 0.0 <= result.test_accuracy <= 1.0
    per_token = torch.nn.Sequential(torch.nn.Flatten(1, 2), torch.nn.Linear(28, 10))  # (batch, 28 rows, classes)
    with pytest.raises(ConfigError, match=r"logits have shape \(32, 28, 10\).*pool over its tokens"):
        train(per_token, data, TrainConfig(epochs=1, batch_size=32))


def test_a_device_is_checked_by_name_with_the_choices_in_the_error() -> None:
    from autosparse.core.errors import ConfigError
    from autosparse.training.trainer import resolve_device

    assert resolve_device("CPU").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    for bad in ("gpu", "meta", "cuda:x"):
        with pytest.raises(ConfigError, match="use auto, cpu, cuda, cuda:N or mps"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cpu"):
            resolve_device("cuda:0")


def test_training_leaves_the_callers_thread_count_as_it_was() -> None:
    """train() set torch's global thread count to every core and left it there (audit)."""
    import autosparse

    x, y = torch.randn(64, 8), torch.arange(64) % 3
    data = autosparse.Dataset("mine", x, y, x, y, 3, (8,))
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    torch.set_num_threads(other)
    try:
        train(build_model("mlp", (8,), 3, widths=[8]), data, TrainConfig(epochs=1, num_threads=0))
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)


def test_a_killed_training_resumes_bit_identical_from_its_checkpoint(tmp_path) -> None:
    """A long masked training lost every finished epoch to a kill; now each epoch is kept."""
    from autosparse.training.resume import STATE_FILE

    data = load_dataset("digits")
    cfg = TrainConfig(epochs=3, batch_size=64, num_threads=1)

    def fresh() -> torch.nn.Module:
        return build_model("mlp", data.input_shape, data.num_classes, widths=[32], seed=0)

    masks = _masks(fresh(), 0.3)
    straight = fresh()
    whole = train(straight, data, cfg, masks=masks)

    class Killed(Exception):
        pass

    def kill_in_epoch_two(step: int, _model: torch.nn.Module) -> None:
        if step == -(-len(data.y_train) // 64) + 3:
            raise Killed

    state = tmp_path / STATE_FILE
    with pytest.raises(Killed):
        train(fresh(), data, cfg, masks=masks, checkpoint=state, on_step=kill_in_epoch_two)
    assert state.is_file()
    resumed_model = fresh()
    resumed = train(resumed_model, data, cfg, masks=masks, checkpoint=state)
    assert resumed.test_accuracy == whole.test_accuracy and resumed.history == whole.history
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed_model.state_dict().values()))
    assert not state.exists()  # finished: nothing left to resume
    # a checkpoint of another training is refused, never continued
    with pytest.raises(Killed):
        train(fresh(), data, cfg, masks=masks, checkpoint=state, on_step=kill_in_epoch_two)
    with pytest.raises(ConfigError, match=r"another, unfinished training \(after epoch 1.*differs in train.lr"):
        train(fresh(), data, TrainConfig(epochs=3, batch_size=64, lr=0.05), masks=masks, checkpoint=state)
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".{STATE_FILE}.{gone.stdout.strip()}.deadbeef.tmp"  # a save killed midway
    stale.write_bytes(b"half")
    live = tmp_path / f".{STATE_FILE}.{os.getpid()}.cafe0000.tmp"  # another trainer's save in progress
    live.write_bytes(b"half")
    moved = TrainConfig(epochs=3, batch_size=64, num_threads=1, device="cpu")  # another device spelling resumes
    assert train(fresh(), data, moved, masks=masks, checkpoint=state).history == whole.history
    assert not stale.exists() and live.exists()


def test_a_resume_at_another_thread_count_says_so(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """The thread count orders float sums: a run killed at 1 thread and resumed at 2 matched neither."""
    from autosparse.training.resume import STATE_FILE

    data = load_dataset("digits")
    model = build_model("mlp", data.input_shape, data.num_classes, widths=[16], seed=0)
    steps_per_epoch = -(-len(data.y_train) // 64)

    class Killed(Exception):
        pass

    def kill(step: int, _model: torch.nn.Module) -> None:
        if step == steps_per_epoch + 1:
            raise Killed

    state = tmp_path / STATE_FILE
    with pytest.raises(Killed):
        train(model, data, TrainConfig(epochs=2, batch_size=64, num_threads=1), checkpoint=state, on_step=kill)
    saved = torch.load(state, weights_only=True)
    assert saved["threads"] == 1 and saved["start_loss"] > 0  # the first step's loss: divergence is judged as unbroken
    fresh = build_model("mlp", data.input_shape, data.num_classes, widths=[16], seed=0)
    with caplog.at_level("WARNING", logger="autosparse.training.trainer"):
        train(fresh, data, TrainConfig(epochs=2, batch_size=64, num_threads=2), checkpoint=state)
    assert "resuming at 2 torch threads where the epochs before ran at 1" in caplog.text


def test_evaluate_refuses_what_it_would_score_wrongly() -> None:
    """(N, 1) targets broadcast to an "accuracy" of 36.4; 256 inputs against 359 labels, batch_size -1 and no
    examples all gave a number (review)."""
    d = load_dataset("digits")
    model = build_model("mlp", d.input_shape, 10, seed=0, widths=[16])
    for x, y, bs in (
        (d.x_test, d.y_test[:, None], 1024),
        (d.x_test[:256], d.y_test, 128),
        (d.x_test, d.y_test, -1),
        (d.x_test[:0], d.y_test[:0], 1024),
    ):
        with pytest.raises(ConfigError):
            evaluate(model, x, y, batch_size=bs)
    assert 0.0 <= evaluate(model, d.x_test, d.y_test) <= 1.0


@pytest.mark.parametrize(
    "change",
    [{"nesterov": "false"}, {"epochs": "1"}, {"batch_size": 2.5}, {"seed": 1.5}, {"step_milestones": "0.5,0.75"}],
)
def test_a_recipe_built_in_python_takes_values_of_its_types(change: dict) -> None:
    """nesterov="false" trained with Nesterov on; "1" and 2.5 failed inside torch, mid-run (review)."""
    with pytest.raises(ConfigError, match=f"TrainConfig.{next(iter(change))} must be"):
        TrainConfig(**change)


def test_a_model_width_must_be_finite() -> None:
    with pytest.raises(ConfigError, match="finite number"):
        build_model("conv2", (1, 8, 8), 10, width="inf")


def test_a_model_built_for_other_inputs_is_named_at_the_first_batch() -> None:
    model = build_model("mlp", (1, 8, 8), 10, seed=0, widths=[16])
    data = load_dataset("fake:fashion-mnist", n_train=64, n_test=32)
    with pytest.raises(ConfigError, match=r"build it for the dataset's input_shape \(1, 28, 28\)"):
        train(model, data, TrainConfig(epochs=1, num_threads=1))


class _NanOnLastStep(torch.nn.Module):
    """A net whose gradients turn NaN on one chosen training step while its loss stays finite: on that
    step it adds 0 × Σ sqrt(|w|), whose gradient at a pruned (zero) weight is 0/0."""

    def __init__(self, nan_step: int, *, kept_too: bool) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(784, 32), torch.nn.Linear(32, 10)
        self.nan_step, self.kept_too, self.steps = nan_step, kept_too, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc2(torch.relu(self.fc1(x.flatten(1))))
        if self.training:
            self.steps += 1
            if self.steps == self.nan_step:
                w = self.fc1.weight
                out = out + 0.0 * w.abs().sqrt().sum()
                if self.kept_too:  # a NaN gradient on every weight, kept ones included
                    out = out + _NanGradient.apply(w)
        return out


class _NanGradient(torch.autograd.Function):
    """Zero forward, NaN gradient backward: a finite loss whose step ruins every weight."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        ctx.shape = w.shape
        return w.new_zeros(())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return torch.full(ctx.shape, float("nan"))


@pytest.mark.parametrize("kept_too", [False, True])
def test_nan_gradients_on_the_last_step_are_no_false_mask_leak(
    kept_too: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A timm MobileNet's last step gave NaN gradients with a finite loss: the run ended on "73 pruned
    weights are non-zero after training" (an AssertionError), and a bench cell failed on every rerun
    (helper). Now NaN on pruned positions only is set back to zero, and NaN in kept weights is divergence."""
    data = load_dataset("fashion-mnist", n_train=256, n_test=128, seed=0)
    model = _NanOnLastStep(nan_step=4, kept_too=kept_too)  # 256 / 64 = 4 steps: the last one
    masks = _masks(model, 0.2)
    with caplog.at_level("WARNING", logger="autosparse.training.trainer"):
        result = train(model, data, TrainConfig(epochs=1, batch_size=64, seed=0), masks=masks)
    for layer in prunable_layers(model):
        assert torch.all(layer.weight[~masks[layer.name]] == 0)
    said = [r.getMessage() for r in caplog.records if "training diverged" in r.getMessage()]
    assert (result.diverged is not None) == kept_too == bool(said)
    assert model.steps == 4 and result.train_loss == result.train_loss  # the loss stayed finite throughout


@pytest.mark.parametrize("content", [b"not a checkpoint", b"pickle"])
def test_a_damaged_checkpoint_is_named_without_advice_to_unpickle_it(tmp_path, content: bytes) -> None:
    """torch's error advised `weights_only=False`, which would run whatever code the file holds (helper)."""
    import pickle

    from autosparse.training.resume import load_state

    path = tmp_path / "train-state.pt"
    path.write_bytes(pickle.dumps(os.getcwd) if content == b"pickle" else content)
    with pytest.raises(ConfigError, match=r"is damaged .*; delete it") as err:
        load_state(path, "fingerprint", {})
    assert "weights_only" not in str(err.value)


def test_train_takes_its_recipe_as_a_mapping_as_prune_takes_one() -> None:
    """`train(model, data, {"epochs": 1})` failed on a missing attribute of the dict (helper)."""
    data = load_dataset("digits", n_train=200, n_test=100)
    model = build_model("mlp", (1, 8, 8), 10, seed=0)
    assert train(model, data, {"epochs": 1, "num_threads": 1}).history[-1]["epoch"] == 1
    with pytest.raises(ConfigError, match="did you mean epochs"):
        train(model, data, {"epochz": 1})


def test_evaluate_names_inputs_of_another_shape_and_targets_that_are_no_class_indices() -> None:
    """Both passed silently or as a raw torch error, where train() said them in one line (helper)."""
    model = build_model("mlp", (1, 8, 8), 10, seed=0)
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6)
    assert 0.0 <= evaluate(model, x, y) <= 1.0
    with pytest.raises(ConfigError, match=r"cannot take inputs of shape \(1, 7, 7\)"):
        evaluate(model, torch.randn(6, 1, 7, 7), y)
    with pytest.raises(ConfigError, match=r"class indices.*pass y.long\(\)"):
        evaluate(model, x, y.float())
    assert model.training  # the mode it had, back after a refusal too


def test_evaluate_refuses_sequence_logits_and_labels_past_the_classes() -> None:
    """(batch, tokens, classes) logits scored an "accuracy" of 1.4, labels 50 or -1 scored 0 (helper)."""
    tokens = nn.Sequential(nn.Unflatten(1, (4, 5)), nn.Linear(5, 10))
    with pytest.raises(ConfigError, match=r"logits have shape \(10, 4, 10\).*pool over its tokens"):
        evaluate(tokens, torch.randn(10, 20), torch.randint(0, 10, (10,)))
    for label in (50, -1):
        with pytest.raises(ConfigError, match=rf"targets run from {label} to {label}, but the model outputs 10"):
            evaluate(nn.Linear(20, 10), torch.randn(8, 20), torch.full((8,), label))


def test_a_last_batch_of_one_example_is_left_out_for_a_batchnorm_model(caplog: pytest.LogCaptureFixture) -> None:
    """17 examples in batches of 16 ended the run in a raw torch ValueError at the first epoch's end (helper)."""
    from types import SimpleNamespace

    x, y = torch.randn(17, 8), torch.arange(17) % 3
    data = SimpleNamespace(name="m", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8], num_classes=3)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16, momentum=0.01), nn.ReLU(), nn.Linear(16, 3))
    with caplog.at_level("WARNING", logger="autosparse.training.trainer"):
        result = train(model, data, {"epochs": 2, "batch_size": 16, "num_threads": 1})
    assert len(result.history) == 2 and 0.0 <= result.test_accuracy <= 1.0
    assert sum("leave a last batch of one" in r.getMessage() for r in caplog.records) == 1  # said once
    one = SimpleNamespace(name="m", x_train=x[:1], y_train=y[:1], x_test=x[:8], y_test=y[:8], num_classes=3)
    with pytest.raises(ConfigError, match="every batch here is one: give batch_size"):
        train(model, one, {"epochs": 1, "batch_size": 16, "num_threads": 1})
    before = [p.clone() for p in model.parameters()]  # batches of one everywhere trained nothing, in silence (review)
    with pytest.raises(ConfigError, match=r"give batch_size \(--batch-size\) 2 or more"):
        train(model, data, {"epochs": 1, "batch_size": 1, "num_threads": 1})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_frozen_model_and_a_checkpoint_folder_are_refused_before_training(tmp_path: Path) -> None:
    """torch's "optimizer got an empty parameter list"; a checkpoint= folder failed with IsADirectoryError
    once the whole training had run, its result lost (helper)."""
    from types import SimpleNamespace

    x, y = torch.randn(32, 8), torch.arange(32) % 3
    data = SimpleNamespace(name="m", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8], num_classes=3)
    with pytest.raises(ConfigError, match=r"no parameter of the model requires grad.*requires_grad_\(\)"):
        train(nn.Linear(8, 3).requires_grad_(False), data, {"epochs": 1, "num_threads": 1})
    with pytest.raises(ConfigError, match=r"checkpoint .* is a folder; give the path of a file there"):
        train(nn.Linear(8, 3), data, {"epochs": 1, "num_threads": 1}, checkpoint=tmp_path)
    with pytest.raises(ConfigError, match=r"on_step is called as on_step\(step, model\)"):
        train(nn.Linear(8, 3), data, {"epochs": 1, "num_threads": 1}, on_step=5)  # type: ignore[arg-type]


def test_train_refuses_float_targets_of_a_plain_dataset_before_training() -> None:
    """A duck-typed dataset with float y_test trained the whole run, then failed in evaluate() (review)."""
    from types import SimpleNamespace

    x, y = torch.randn(64, 8), torch.arange(64) % 3
    data = SimpleNamespace(name="m", x_train=x, y_train=y, x_test=x[:32], y_test=y[:32].float(), num_classes=3)
    model = nn.Sequential(nn.Linear(8, 3))
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ConfigError, match=r"y_test are torch.float32; train needs class indices"):
        train(model, data, {"epochs": 1, "num_threads": 1})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_train_takes_masks_as_a_mapping_and_refuses_a_non_model_and_string_flags() -> None:
    """masks.to_dict() failed on a missing attribute, a string model deep inside, and
    keep_masks_attached="no" (true to Python) kept the masks attached (helper)."""
    from autosparse.data import Dataset

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g)
    data = Dataset("tiny", x, y, x, y, 3, (4,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    masks = Masks({"1.weight": torch.rand(3, 4, generator=torch.Generator().manual_seed(1)) > 0.5})
    train(model, data, {"epochs": 1, "batch_size": 8}, masks=masks.to_dict())
    assert torch.equal(model[1].weight.detach() != 0, masks["1.weight"])
    with pytest.raises(ConfigError, match="train takes the model itself"):
        train("lenet_300_100", data, {"epochs": 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="evaluate takes the model itself"):
        evaluate("lenet_300_100", data.x_test, data.y_test)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="keep_masks_attached takes True or False, got 'no'"):
        train(model, data, {"epochs": 1}, masks=masks, keep_masks_attached="no")  # type: ignore[arg-type]


def test_every_core_means_omp_num_threads_where_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README tells users of a busy machine to set OMP_NUM_THREADS=1; num_threads 0 (the default)
    took every core regardless, in train, gen, bench and imp (helper)."""
    from autosparse.training.trainer import thread_count

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert thread_count(0) == 1
    assert thread_count(3) == 3  # an explicit count wins
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for unusable in ("", "0", "two"):
        monkeypatch.setenv("OMP_NUM_THREADS", unusable)
        assert thread_count(0) == cores
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert thread_count(0) == cores
