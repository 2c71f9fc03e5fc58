"""Masked training and evaluation on in-memory datasets.

Everything a bench cell or an IRP round needs: a typed recipe (the config *is* the CLI and the
YAML), exact masks through training (pruned weights zeroed once and their gradients masked every step,
:mod:`autosparse.training.masking`; asserted at the end), and determinism for a seed (batch order from a seeded generator, no DataLoader
workers). Small datasets live as tensors, so an epoch is a loop over index slices rather than
per-sample Python transforms — that is what makes LeNet-300-100 train in seconds on a CPU.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from autosparse.core.config import from_dict
from autosparse.core.config_record import to_dict
from autosparse.core.errors import ConfigError, MaskError, check_flag, check_scalar_types, check_seed
from autosparse.core.layers import require_module
from autosparse.core.masks import Masks, assert_masks_exact, remove_masks
from autosparse.core.model_io import class_targets, is_shape_error, load_weights, logits, model_input, param_dtype
from autosparse.core.parallel import torch_threads
from autosparse.data.dataset import are_class_indices
from autosparse.training.batchnorm import recalibrate_lagging_batchnorm
from autosparse.training.masking import MaskedParameters
from autosparse.training.resume import TrainState, load_state, save_state, training_fingerprint

log = logging.getLogger(__name__)


#: recipe fields that do not change what training computes (how fast, how often it reports): a bench
#: cell's hash and an IRP checkpoint's fingerprint leave them out. The thread count changes the order of
#: float sums, so results agree bit for bit only at one count; a resume at another count is warned about
COSMETIC_TRAIN_FIELDS = ("num_threads", "eval_batch_size", "eval_every_epoch")


@dataclass
class TrainConfig:
    """A training recipe.

    Defaults are the Fashion-MNIST LeNet recipe of the benches (docs/RESULTS.md): SGD with Nesterov momentum and a
    one-cycle schedule, which reaches ~89% in 5 epochs on a dense LeNet-300-100.
    """

    epochs: float = 8  # passes over the training set; fractional epochs are allowed (IRP rounds on subsets use them)
    batch_size: int = 128  # examples per SGD step
    optimizer: Literal["sgd", "adam"] = "sgd"  # sgd (with momentum) or adam
    lr: float = 0.1  # peak learning rate (one-cycle's maximum)
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = True  # Nesterov momentum for SGD
    weight_decay: float = 5e-4  # L2 penalty on every parameter
    schedule: Literal["onecycle", "cosine", "step", "constant"] = "onecycle"  # learning-rate schedule
    step_milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training where "step" multiplies lr by step_gamma
    step_gamma: float = 0.1  # factor of the "step" schedule at each milestone
    warmup_fraction: float = 0.15  # one-cycle's rising phase
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    seed: int = 0  # seed of the batch order and of dropout / stochastic-depth draws
    num_threads: int = 0  # torch threads; 0 = OMP_NUM_THREADS where set, else every core of this machine
    device: str = "auto"  # auto | cpu | cuda
    eval_batch_size: int = 1024  # examples per forward pass when testing
    eval_every_epoch: bool = False  # also measure test accuracy after every epoch (the history), not only at the end

    def __post_init__(self) -> None:
        self._check_types()
        check_seed(self.seed)
        if not (math.isfinite(self.epochs) and self.epochs > 0):
            raise ConfigError(f"epochs must be > 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.num_threads < 0:
            raise ConfigError(f"num_threads must be >= 0 (0: OMP_NUM_THREADS, else every core), got {self.num_threads}")
        if self.schedule not in ("onecycle", "cosine", "step", "constant"):
            raise ConfigError(f"unknown schedule {self.schedule!r}; use onecycle, cosine, step or constant")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use sgd or adam")
        self.step_milestones = tuple(float(m) for m in self.step_milestones)
        self._check_ranges()
        check_device_name(self.device)

    def _check_types(self) -> None:
        """A recipe built in Python takes its values as given (the CLI and YAML convert them first): the
        string "false" read as True for nesterov, and "0.1" or 2.5 failed inside torch, mid-run (review)."""
        check_scalar_types(self)
        if isinstance(self.step_milestones, (str, bytes)) or not isinstance(self.step_milestones, (list, tuple)):
            raise ConfigError(f"TrainConfig.step_milestones must be a list of fractions, got {self.step_milestones!r}")

    def _check_ranges(self) -> None:
        """Values torch would refuse mid-run (after the data loaded, or after a whole IRP round had
        trained, in `gen` and `bench`) or accept and train nonsense with, refused when the recipe
        is built, so `--check` catches them too."""
        checks = [
            (self.optimizer != "sgd" or 0 <= self.momentum < 1, "momentum", "in [0, 1), e.g. 0.9"),  # Adam reads none
            (0 <= self.weight_decay < math.inf, "weight_decay", ">= 0 and finite, e.g. 5e-4"),  # inf trained NaN
            (0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1), e.g. 0.1"),
            (0 <= self.warmup_fraction < 1, "warmup_fraction", "in [0, 1), e.g. 0.15"),
            (self.step_gamma > 0, "step_gamma", "> 0, e.g. 0.1"),
            (self.eval_batch_size >= 1, "eval_batch_size", ">= 1, e.g. 1024"),
            (
                all(0 < m < 1 for m in self.step_milestones),
                "step_milestones",
                "fractions of training in (0, 1), e.g. 0.5,0.75",
            ),
        ]
        for ok, name, want in checks:
            if not ok:
                raise ConfigError(f"{name} must be {want}; got {getattr(self, name)!r}")


@dataclass
class TrainResult:
    test_accuracy: float
    train_loss: float
    seconds: float
    steps: int
    history: list[dict[str, float]] = field(default_factory=list)
    diverged: str | None = None  # what said the run diverged (a NaN, a loss far above chance), or None


#: where to say the device is set: the flag of `train` and of the speed bench, and an accuracy bench's
_DEVICE_FIX = "set it to cpu or auto (--device cpu; in an accuracy bench, --train.device cpu)"


def check_device_name(device: str) -> None:
    """Refuse a device no machine has (``gpu``) when the recipe is built, so ``--check`` says so;
    whether this machine has the GPU is :func:`resolve_device`'s question, asked where it trains."""
    text = str(device).strip().lower()
    if text not in ("auto", "cpu", "cuda", "mps") and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")


def gpus_here() -> int:
    """The GPUs torch sees on this machine: what a local Ray cluster started here offers its jobs."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_job_device(device: str, executor: str, num_gpus: float) -> None:
    """Refuse, before a grid starts, a device its jobs will not have: here (any executor but Ray, whose
    workers may hold a GPU the driver lacks), and on Ray a GPU device with no GPU reserved, which Ray
    never gives a job. Why: ``gen --check`` said valid for a device every run then refused, and a Ray
    grid with ``device: cuda`` and ``num_gpus: 0`` failed every cell (hunt)."""
    if executor != "ray":
        resolve_device(device)
    elif str(device).strip().lower().startswith("cuda") and not num_gpus > 0:
        raise ConfigError(
            f"device {device!r} on Ray with num_gpus 0: Ray hands a job a GPU only when it reserves one; set "
            "num_gpus (e.g. --num-gpus 1), or the device to auto or cpu"
        )


def resolve_device(device: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda``/``cuda:N`` or ``mps`` as a torch device that exists here.

    Why checked by name first: ``torch.device("gpu")`` fails with a list of twenty backend names,
    and one that torch knows but this build lacks (``mps``) fails only at the first tensor moved.
    """
    check_device_name(device)
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but no GPU is visible; {_DEVICE_FIX}")
        index = int(text[5:]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s) are visible; use cuda:0")
        return torch.device(text)
    if not torch.backends.mps.is_available():  # mps, the one name left
        raise ConfigError(f"device 'mps' requested but this torch build has no MPS backend; {_DEVICE_FIX}")
    return torch.device("mps")


def training_steps(cfg: TrainConfig, n_examples: int) -> int:
    """Optimizer steps :func:`train` takes on ``n_examples`` (a fractional epoch rounds to whole steps)."""
    return max(1, int(round(cfg.epochs * max(1, math.ceil(n_examples / cfg.batch_size)))))


def thread_count(num_threads: int = 0) -> int:
    """``num_threads``; for 0, ``OMP_NUM_THREADS`` where it is set, else every core this process may run
    on (its CPU affinity, as in a container).

    Why the variable: the README tells users of a busy machine to set it, and 0 (the default) took
    every core regardless, in train, gen, bench and imp (helper).
    """
    if num_threads > 0:
        return num_threads
    told = os.environ.get("OMP_NUM_THREADS", "").strip()
    if told.isdigit() and int(told) > 0:
        return int(told)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def set_threads(num_threads: int = 0) -> None:
    torch.set_num_threads(thread_count(num_threads))


def _lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Multiplier on the base lr at a step; written out so every schedule is one formula."""
    warm = max(1, int(cfg.warmup_fraction * total_steps))

    def onecycle(step: int) -> float:
        if step < warm:
            return 0.04 + 0.96 * step / warm
        t = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t))) * 0.999 + 1e-3

    def cosine(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total_steps))))

    def step_fn(step: int) -> float:
        frac = step / max(1, total_steps)
        return cfg.step_gamma ** sum(frac >= m for m in cfg.step_milestones)

    return {"onecycle": onecycle, "cosine": cosine, "step": step_fn, "constant": lambda s: 1.0}[cfg.schedule]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy in [0, 1]."""
    require_module(model, "evaluate")
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ConfigError("evaluate takes tensors: evaluate(model, torch.as_tensor(x), torch.as_tensor(y))")
    if y.dim() != 1 or len(x) != len(y) or len(x) == 0:
        # (N, 1) targets broadcast against (N,) predictions to an N x N "accuracy" of 36.4 (review)
        raise ConfigError(
            f"evaluate needs inputs (N, ...) and a 1-D tensor of N class indices, N > 0; got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    if not are_class_indices(y):  # float targets compared equal to class ids by value, silently (helper)
        raise ConfigError(f"evaluate needs class indices as targets (an integer tensor), got {y.dtype}: pass y.long()")
    was_training = model.training
    model.eval()
    device, dtype = next(model.parameters()).device, param_dtype(model)
    correct = 0
    try:
        for i in range(0, len(x), batch_size):
            try:
                out = logits(model(model_input(x[i : i + batch_size], device, dtype)))
            except RuntimeError as exc:
                if i == 0 and is_shape_error(exc):  # as train() says it: a raw torch error before (helper)
                    raise ConfigError(
                        f"the model cannot take inputs of shape {tuple(x.shape[1:])} ({str(exc).splitlines()[0]}): "
                        "evaluate it on inputs of the shape it was built for"
                    ) from exc
                raise
            # (batch, tokens, classes) logits gave an "accuracy" of 1.4, labels past the classes 0 (helper)
            class_targets(out, y[i : i + batch_size])
            correct += int((out.argmax(1).cpu() == y[i : i + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / max(1, len(x))


def _cuda_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose generators the seeded block must restore (none on a CPU run)."""
    return list(range(torch.cuda.device_count())) if device.type == "cuda" else []


def train(
    model: nn.Module,
    dataset: object,
    config: TrainConfig | Mapping[str, Any] | None = None,
    *,
    masks: Masks | Mapping[str, torch.Tensor] | None = None,
    on_step: Callable[[int, nn.Module], None] | None = None,
    desc: str = "train",
    keep_masks_attached: bool = False,
    checkpoint: str | Path | None = None,
    task: Mapping[str, Any] | None = None,
    keep_checkpoint: bool = False,
) -> TrainResult:
    """Train ``model`` (optionally under ``masks``: a Masks, or name -> 0/1 tensor); return a :class:`TrainResult`.

    ``dataset`` is an :class:`autosparse.data.Dataset` (in-memory ``x_train``, ``y_train``,
    ``x_test``, ``y_test``). ``on_step(step, model)`` is called before each optimiser step —
    IRP uses it to save the rewind point θ_k. With masks, θ0 is first prepared as the masks
    prescribe (``masks.prepare``: e.g. rescaled kept weights), and pruned weights stay exactly
    zero (:class:`~autosparse.training.masking.MaskedParameters`); with ``keep_masks_attached``
    the model ends with torch's ``weight_orig`` + ``weight_mask`` attached. With ``checkpoint`` (a
    file path) the state after each epoch is saved there and a rerun resumes from it, bit-identical
    to a run never stopped (:mod:`autosparse.training.resume`); the file is removed at the end unless
    ``keep_checkpoint`` (a caller that writes its result first, then removes it). ``task`` (settings the
    weights do not show, e.g. model options) joins the fingerprint that a checkpoint must match.
    ``config`` may be a mapping of the recipe's fields (``{"epochs": 1}``), read as its YAML would be.
    """
    require_module(model, "train")
    keep_masks_attached = check_flag(keep_masks_attached, "keep_masks_attached")
    if isinstance(config, Mapping):  # as prune() takes one; a dict failed on a missing attribute (helper)
        config = from_dict(TrainConfig, config, where="train config")
    if masks is not None and not isinstance(masks, Masks):  # masks.to_dict() failed on an attribute (helper)
        masks = Masks(masks)
    threads = (config or TrainConfig()).num_threads
    with torch_threads(thread_count(threads)):  # the caller's thread count is restored after
        if not all(hasattr(dataset, a) for a in ("x_train", "y_train", "x_test", "y_test")):
            raise ConfigError(
                f"train needs an autosparse Dataset (in-memory tensors), not {type(dataset).__name__}: "
                "autosparse.load_dataset(NAME) gives one, or wrap your tensors as "
                "autosparse.Dataset(name, x_train, y_train, x_test, y_test, num_classes, input_shape)"
            )
        for split in ("y_train", "y_test"):  # float test targets failed in evaluate() after the whole run (review)
            targets = getattr(dataset, split)
            if isinstance(targets, torch.Tensor) and not are_class_indices(targets):
                raise ConfigError(f"the dataset's {split} are {targets.dtype}; train needs class indices: pass .long()")
        cfg = config or TrainConfig()
        device = resolve_device(cfg.device)
        if on_step is not None and not callable(on_step):  # a TypeError inside the training loop (helper)
            raise ConfigError(f"on_step is called as on_step(step, model) before each step; got {on_step!r}")
        if not any(p.requires_grad for p in model.parameters()):  # torch's "optimizer got an empty parameter list"
            raise ConfigError(
                "no parameter of the model requires grad, so training has nothing to train: model.requires_grad_()"
            )
        state_path = Path(checkpoint) if checkpoint is not None else None
        described = describe_training(cfg, task)
        fp = training_fingerprint(model, masks, described, dataset) if state_path is not None else ""
        resumed = load_state(state_path, fp, described) if state_path is not None else None
        model.to(device)
        dtype = param_dtype(model)  # a float64 model is fed float32 data
        masked: MaskedParameters | None = None
        if masks is not None:
            lost = masks.pruned_before(model)
            if lost:
                raise MaskError(masks.pruned_before_text(lost, "trained under both,"))
            masks.prepare(model)
            masked = MaskedParameters(model, masks)
        x_train, y_train = dataset.x_train, dataset.y_train  # type: ignore[attr-defined]
        n = len(x_train)
        total_steps = training_steps(cfg, n)
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                params,
                lr=cfg.lr,
                momentum=cfg.momentum,
                nesterov=cfg.nesterov and cfg.momentum > 0,
                weight_decay=cfg.weight_decay,
            )
        else:
            opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total_steps))
        if resumed is not None:
            load_weights(model, resumed.model)
            opt.load_state_dict(resumed.optimizer)
            sched.load_state_dict(resumed.scheduler)
            log.info(
                "resuming %s after epoch %d (step %d of %d)", desc, len(resumed.history), resumed.step, total_steps
            )
            if resumed.threads and resumed.threads != torch.get_num_threads():
                log.warning(
                    "resuming at %d torch threads where the epochs before ran at %d: float sums are ordered by the "
                    "thread count, so the result is that of neither count bit for bit (--num-threads %d matches)",
                    torch.get_num_threads(),
                    resumed.threads,
                    resumed.threads,
                )
        # dropout and stochastic depth (torchvision's VGG and MobileNet heads, timm's drop rates) draw from
        # torch's global generator: seeded here, and the caller's stream restored after, so a cell trains the
        # same whatever ran before it in the process
        with torch.random.fork_rng(devices=_cuda_devices(device)):
            torch.random.default_generator.manual_seed(cfg.seed)
            if device.type == "cuda":
                torch.cuda.manual_seed_all(cfg.seed)  # every device's state is restored by fork_rng
            gen = torch.Generator().manual_seed(cfg.seed)
            history: list[dict[str, float]] = []
            start, before = time.perf_counter(), 0.0
            model.train()
            step, running, seen = 0, 0.0, 0
            # a resumed run saw no first step: its checkpoint kept it (an older one: the first epoch's loss)
            start_loss = None
            if resumed is not None:
                first = resumed.history[0]["train_loss"] if resumed.history else None
                start_loss = resumed.start_loss if math.isfinite(resumed.start_loss) else first
            classes = int(getattr(dataset, "num_classes", 0) or 0)
            if resumed is not None:
                torch.random.set_rng_state(resumed.rng)
                gen.set_state(resumed.order_rng)
                if device.type == "cuda" and resumed.cuda_rng:
                    torch.cuda.set_rng_state_all(resumed.cuda_rng)
                step, history, before = resumed.step, list(resumed.history), resumed.seconds
                running, seen = history[-1]["train_loss"], 1
            bar = tqdm(total=total_steps, initial=step, desc=desc, leave=False, disable=None, unit="step")
            one_left_out = False
            while step < total_steps:
                perm = torch.randperm(n, generator=gen)
                epoch_loss, epoch_seen = 0.0, 0
                for i in range(0, n, cfg.batch_size):
                    if step >= total_steps:
                        break
                    idx = perm[i : i + cfg.batch_size]
                    xb = model_input(x_train[idx], device, dtype, non_blocking=True)
                    yb = y_train[idx].to(device, non_blocking=True)
                    if on_step is not None:
                        on_step(step, model)
                    try:
                        out = logits(model(xb))
                    except ValueError as exc:
                        if len(idx) > 1 or "more than 1 value per channel" not in str(exc):
                            raise
                        if n == 1 or cfg.batch_size == 1:  # every batch is one example: nothing would train (review)
                            raise ConfigError(
                                "the model's BatchNorm cannot normalise a batch of one example, and every batch here "
                                "is one: give batch_size (--batch-size) 2 or more, and two or more examples"
                            ) from exc
                        # the last batch of an epoch held one example (n_train % batch_size == 1): a raw torch
                        # error ended the run there (helper); that example is left out of this epoch
                        if not one_left_out:
                            log.warning(
                                "train: %d examples in batches of %d leave a last batch of one, which the model's "
                                "BatchNorm cannot normalise; it is left out of each epoch (another --batch-size "
                                "or --n-train keeps it)",
                                n,
                                cfg.batch_size,
                            )
                        one_left_out = True
                        step += 1
                        bar.update(1)
                        continue
                    except RuntimeError as exc:
                        if step == 0 and any(w in str(exc) for w in ("shape", "size", "channels", "dimension")):
                            # a model built for other inputs: torch's "mat1 and mat2 shapes cannot be multiplied"
                            raise ConfigError(
                                f"the model cannot take this data's inputs, of shape {tuple(xb.shape[1:])} "
                                f"({str(exc).splitlines()[0]}): build it for the dataset's input_shape "
                                f"{tuple(dataset.input_shape)}"  # type: ignore[attr-defined]
                            ) from exc
                        raise
                    if step == 0:  # one clear error for (batch, tokens, classes) logits or labels past the classes
                        class_targets(out, yb)
                    loss = F.cross_entropy(out, yb, label_smoothing=cfg.label_smoothing)
                    if step == 0:  # where the run began, what divergence is measured against
                        start_loss, classes = loss.item(), int(out.shape[-1])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if masked is not None:
                        masked.mask_gradients()
                    opt.step()
                    sched.step()
                    step += 1
                    epoch_loss += loss.item() * len(idx)
                    epoch_seen += len(idx)
                    bar.update(1)
                running, seen = epoch_loss, epoch_seen
                record = {"epoch": len(history) + 1, "train_loss": running / max(1, seen)}
                if cfg.eval_every_epoch:
                    recalibrate_lagging_batchnorm(model, x_train, cfg.batch_size, device, dtype, seed=cfg.seed)
                    record["test_accuracy"] = evaluate(model, dataset.x_test, dataset.y_test, cfg.eval_batch_size)  # type: ignore[attr-defined]
                history.append(record)
                bar.set_postfix(loss=f"{record['train_loss']:.3f}")
                if state_path is not None and step < total_steps:
                    state = TrainState(
                        fp,
                        step,
                        total_steps,
                        before + time.perf_counter() - start,
                        history,
                        model.state_dict(),
                        opt.state_dict(),
                        sched.state_dict(),
                        torch.random.get_rng_state(),
                        gen.get_state(),
                        torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                        described,
                        torch.get_num_threads(),
                        start_loss if start_loss is not None else float("nan"),
                    )
                    save_state(state_path, state)
            bar.close()
        finite = _weights_finite(model)
        if not finite and masked is not None:
            masked.zero_pruned()  # NaN gradients times 0 are NaN; see zero_pruned
            finite = _weights_finite(model)  # NaN on pruned positions only is no divergence
        said = _divergence(history, running / max(1, seen), start_loss, classes)
        if said is None and not finite:
            # the last step's gradients were NaN while its loss was still finite (a timm MobileNet's
            # fourth step of four, helper): the loss alone called this run healthy
            said = "the weights turned NaN or infinite in the last steps, with the loss still finite"
        if said:
            log.warning("training diverged (%s); lower --lr", said)
        if masks is not None:
            assert_masks_exact(model, masks)
            if keep_masks_attached:
                masks.without_init().apply(model)
            else:
                remove_masks(model)  # a model the caller had pruned with torch's hooks comes back plain
        # running statistics that average over more steps than this recipe has (torchvision's mobile nets)
        recalibrate_lagging_batchnorm(model, x_train, cfg.batch_size, device, dtype, seed=cfg.seed)
        acc = evaluate(model, dataset.x_test, dataset.y_test, cfg.eval_batch_size)  # type: ignore[attr-defined]
        seconds = before + time.perf_counter() - start
        if state_path is not None and not keep_checkpoint:
            state_path.unlink(missing_ok=True)  # finished: the caller's result replaces it
        return TrainResult(acc, running / max(1, seen), seconds, step, history, said)


def _weights_finite(model: nn.Module) -> bool:
    """Every parameter finite: one sum per tensor (a NaN or inf anywhere makes it non-finite)."""
    with torch.no_grad():
        return all(
            bool(torch.isfinite(p.sum(dtype=torch.float64))) for p in model.parameters() if p.is_floating_point()
        )


def _divergence(history: list[dict[str, float]], final_loss: float, start: float | None, classes: int) -> str | None:
    """What says a run diverged, or None. Not only a NaN: a loss that blew up to 4e13 and came back to
    chance, or Adam at lr 1 ending at loss 6.5 and 10% accuracy, trained to chance with no warning.
    Measured against where the run began (``start``, the first step's loss; a deep plain net at init
    starts at 2-3x chance, so a short healthy run ends above it, review) and chance's ln C (a net that
    cannot learn sits at ln C)."""
    if not math.isfinite(final_loss):
        return f"loss {final_loss}"
    chance = math.log(classes) if classes >= 2 else 0.0
    ref = max(chance, start if start is not None and math.isfinite(start) else 0.0)
    if ref <= 0:
        return None
    peak = max(history, key=lambda r: r["train_loss"], default=None)
    if peak is not None and peak["train_loss"] > 100 * ref:
        return f"the loss reached {peak['train_loss']:.3g} in epoch {peak['epoch']}, 100x above where it began"
    if start is not None and final_loss > max(2 * chance, 1.5 * start):
        return f"the last epoch's loss {final_loss:.3g} ended above where it began ({start:.3g}) and twice chance's"
    return None


def describe_training(config: TrainConfig, task: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings a training's fingerprint hashes: the recipe without its cosmetic fields (and the
    device: a run moved to another device resumes) and what the caller knows of the task."""
    recipe = {k: v for k, v in to_dict(config).items() if k not in (*COSMETIC_TRAIN_FIELDS, "device")}
    return {**{f"train.{k}": v for k, v in recipe.items()}, **dict(task or {})}


def train_fingerprint(
    model: nn.Module, masks: Masks | None, config: TrainConfig, dataset: object, task: Mapping[str, Any] | None = None
) -> str:
    """What a training computes from, as a digest (:func:`~autosparse.training.resume.training_fingerprint`):
    a checkpoint or a finished result carries it, so a rerun knows whether it is the same training."""
    return training_fingerprint(model, masks, describe_training(config, task), dataset)
