"""Iterative rewind pruning (lottery-ticket IMP with rewinding), producing per-weight labels.

Round r = 0…R: train the masked network from the rewind point θ_k, record its test accuracy,
then (for r < R) prune a fraction of the *remaining* weights by the criterion and rewind the
survivors. A weight's label is the round in which it was pruned, R if it survived every round.
The accuracies after each round, at the densities the schedule passed through, are the IMP
baseline the bench compares against.

Each round is checkpointed (masks, labels so far, accuracies, the rewind point) so a killed run
resumes at its last finished round; every round's training is seeded by (seed, round), so a
resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file
from torch import nn

from autosparse.core.allocation import topk_mask
from autosparse.core.config_record import to_dict
from autosparse.core.errors import CheckpointError, ConfigError, check_scalar_types
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks
from autosparse.core.model_io import load_weights, logits
from autosparse.core.seeding import seeded
from autosparse.core.tensor_files import save_tensors
from autosparse.core.text import count_of
from autosparse.training.trainer import COSMETIC_TRAIN_FIELDS, TrainConfig, train, training_steps

try:  # POSIX advisory locks guard a workdir against two concurrent resumers
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: Labels are int8 (the store's label dtype), and R itself is a label value.
_MAX_ROUNDS = 127


@dataclass
class IRPConfig:
    """How the labels are made. Defaults: 10 rounds of 50% global magnitude pruning (density
    0.1% after the last), rewinding to initialisation: the lottery-ticket procedure at twice its
    pace and with the output layer in the global pool (docs/BASELINES.md, ``imp``), so that one
    source run labels every density down to 0.1% in ten trainings."""

    rounds: int = 10  # pruning rounds after the dense training (labels 0..rounds)
    prune_fraction: float = 0.5  # of the remaining weights, per round
    criterion: Literal["magnitude", "snip", "flow"] = "magnitude"  # what each round prunes by, after training
    """magnitude: |θ| (IMP); snip: |θ·g| on the pruning batch; flow: SynFlow's path flow of the *trained*
    network, re-scored as it thins (docs/SCORER.md, "A teacher above SynFlow")"""
    scope: Literal["global", "layerwise"] = "global"  # rank weights across the whole model or within each layer
    rewind_step: int = 0  # 0 rewinds to θ0; k > 0 to the weights after k steps of the dense run
    target_densities: tuple[float, ...] = ()
    """explicit schedule instead of a fixed fraction: round r prunes to target_densities[r] (of all
    prunable weights); sets rounds. The bench uses it so IMP passes through exactly its densities"""

    def __post_init__(self) -> None:
        check_scalar_types(self)  # IRPConfig(rounds="2") failed in a comparison (Python-jobs hunt)
        self.target_densities = tuple(float(d) for d in self.target_densities)
        if self.target_densities:
            ds = self.target_densities
            if any(not 0.0 < d < 1.0 for d in ds) or any(b >= a for a, b in itertools.pairwise(ds)):
                raise ConfigError(f"target_densities must be strictly decreasing values in (0, 1), got {list(ds)}")
            if self.rounds not in (len(ds), _DEFAULT_ROUNDS):  # a rounds the user set, which the schedule overrules
                raise ConfigError(
                    f"target_densities sets the rounds ({len(ds)}), but rounds={self.rounds} was given; "
                    "drop rounds (from the config file too), or give that many densities"
                )
            self.rounds = len(ds)
        if self.rounds < 1:
            raise ConfigError(f"IRP needs at least one round, got rounds={self.rounds}")
        if self.rounds > _MAX_ROUNDS:
            raise ConfigError(f"rounds={self.rounds} does not fit the int8 labels; use at most {_MAX_ROUNDS} rounds")
        if not 0.0 < self.prune_fraction < 1.0:
            raise ConfigError(f"prune_fraction must be in (0, 1), got {self.prune_fraction}")
        if self.criterion not in ("magnitude", "snip", "flow"):
            raise ConfigError(f"unknown IRP criterion {self.criterion!r}; use magnitude, snip or flow")
        if self.scope not in ("global", "layerwise"):
            raise ConfigError(f"unknown IRP scope {self.scope!r}; use global or layerwise")
        if self.criterion == "flow" and self.scope != "global":
            raise ConfigError("the flow criterion ranks the whole network's path flow: use scope global with it")
        if self.rewind_step < 0:
            raise ConfigError("rewind_step must be >= 0")

    def densities(self) -> list[float]:
        """Nominal density trained in each round (R + 1 entries, the first is 1)."""
        if self.target_densities:
            return [1.0, *self.target_densities]
        return [(1.0 - self.prune_fraction) ** r for r in range(self.rounds + 1)]


_DEFAULT_ROUNDS: int = IRPConfig.__dataclass_fields__["rounds"].default  # type: ignore[assignment]


def check_rewind_step(rewind_step: int, train: TrainConfig, n_examples: int | None) -> None:
    """Refuse a rewind step past round 0's training, from the recipe and the training set's size.

    Why before the run: :func:`run_irp` can only tell after round 0 has trained, and a grid
    (``gen``, a bench's imp row) then failed every run that way.
    """
    if rewind_step <= 0 or n_examples is None:
        return
    steps = training_steps(train, n_examples)
    # the rewind point is taken after a step of round 0 and before its last one ends (steps 0..steps-1)
    if rewind_step >= steps:
        raise ConfigError(
            f"rewind_step={rewind_step} is beyond the {steps} steps of round 0's training "
            f"({count_of(train.epochs, 'epoch')} of {n_examples} examples in batches of {train.batch_size}); "
            f"pass 1..{steps - 1}"
        )


@dataclass
class IRPResult:
    labels: dict[str, torch.Tensor]  # int8, the round each weight was pruned in (R = survived)
    accuracies: list[float]  # test accuracy after training in round r (R + 1 entries; R with train_last=False)
    densities: list[float]  # actual density trained in round r
    layer_densities: list[dict[str, float]]  # per-layer density in round r
    seconds_train: float
    seconds_total: float
    rounds: int
    history: list[dict[str, object]] = field(default_factory=list)

    def masks_at_round(self, r: int) -> Masks:
        """The IMP mask trained in round r (weights with label >= r)."""
        return Masks({n: lab >= r for n, lab in self.labels.items()})


def _criterion_scores(
    model: nn.Module, cfg: IRPConfig, batch: tuple[torch.Tensor, torch.Tensor] | None, seed: int = 0
) -> dict:
    layers = prunable_layers(model)
    if cfg.criterion == "magnitude":
        return {layer.name: layer.weight.detach().abs().cpu() for layer in layers}
    if batch is None:
        raise ConfigError("IRP criterion 'snip' needs a pruning batch")
    model.zero_grad(set_to_none=True)
    x, y = batch
    # in the mode the trained net is in (train: BatchNorm's batch statistics, as the labels always were), on
    # streams seeded by the round and given back: its dropout drew on the caller's stream, so the labels
    # followed that stream, not the run's seed, and a resumed run differed from an uninterrupted one (hunt)
    with seeded(seed, next(model.parameters()).device):
        torch.nn.functional.cross_entropy(logits(model(x)), y).backward()
    return {
        # no gradient: a layer the forward never uses scores zero
        layer.name: (layer.weight.detach() * layer.parameter.grad.detach()).abs().cpu()
        if layer.parameter.grad is not None
        else torch.zeros_like(layer.weight, device="cpu")
        for layer in layers
    }


def _keep_count(cfg: IRPConfig, r: int, alive: int, numel: int) -> int:
    """How many of ``numel`` weights (``alive`` of them left) round ``r`` keeps."""
    if cfg.target_densities:
        return max(1, int(round(cfg.target_densities[r] * numel)))
    return max(1, int(round(alive * (1.0 - cfg.prune_fraction))))


#: A criterion that is more than a score per weight: ``step(net, masks, keep, final_density, input_shape)``
#: returns the ``keep`` survivors of ``masks`` in the trained ``net`` (``final_density``: the run's last).
RoundStep = Callable[[nn.Module, dict[str, torch.Tensor], int, float, tuple[int, ...]], dict[str, torch.Tensor]]
_ROUND_STEPS: dict[str, RoundStep] = {}


def register_round_step(criterion: str, step: RoundStep) -> None:
    """Give IRP a criterion owned by a module above training (``flow``: :mod:`autosparse.pruners.synflow`),
    which registers it on import, as methods register with the pruner registry."""
    _ROUND_STEPS[criterion] = step


def _round_step(cfg: IRPConfig, r: int, net: nn.Module, masks: dict, input_shape: tuple[int, ...]) -> dict:
    step = _ROUND_STEPS.get(cfg.criterion)
    if step is None:
        raise ConfigError(
            f"IRP criterion {cfg.criterion!r} is registered by autosparse.pruners; import autosparse.pruners first"
        )
    alive, total = sum(int(m.sum()) for m in masks.values()), sum(m.numel() for m in masks.values())
    return step(net, masks, _keep_count(cfg, r, alive, total), cfg.densities()[-1], input_shape)


def _prune_step(scores: dict, masks: dict, cfg: IRPConfig, r: int) -> dict[str, torch.Tensor]:
    """Remove ``prune_fraction`` of the weights still alive (or prune to the round's target density)."""
    total = sum(m.numel() for m in masks.values())
    if cfg.scope == "global":
        names = list(scores)
        alive = torch.cat([masks[n].reshape(-1) for n in names])
        flat = _alive_first(torch.cat([scores[n].reshape(-1) for n in names]), alive)
        keep = topk_mask(flat, _keep_count(cfg, r, int(alive.sum()), total))
        out, off = {}, 0
        for n in names:
            k = scores[n].numel()
            out[n] = keep[off : off + k].reshape(scores[n].shape)
            off += k
        return out
    out = {}
    for n, s in scores.items():
        out[n] = topk_mask(_alive_first(s, masks[n]), _keep_count(cfg, r, int(masks[n].sum()), masks[n].numel()))
    return out


def _alive_first(scores: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """``scores`` in float64 with every pruned weight below every live one, whatever the live scores are.

    Why: a diverged round leaves NaN weights, which the top-k ranks lowest, level with the pruned
    weights' -inf; with fewer finite scores than the round keeps, pruned weights came back (hunt)."""
    nan = int((torch.isnan(scores) & alive).sum())
    if nan:  # the trainer warned that the round diverged; say what that does to the choice
        log.warning(
            "%d of %d surviving weights score NaN (the round diverged): they rank below every finite score%s",
            nan,
            int(alive.sum()),
            ", so this round's choice among them is by position" if nan == int(alive.sum()) else "",
        )
    s = torch.nan_to_num(scores.to(torch.float64), nan=-math.inf)
    floor = torch.finfo(torch.float64).min  # a live weight's lowest score, above the pruned ones' -inf
    return torch.where(alive, s.clamp(min=floor), torch.full_like(s, -math.inf))


def _round_seed(seed: int, r: int) -> int:
    """Round ``r``'s training seed, in [0, 2**32): torch's CPU generator reads no more bits, so the draws
    are those of ``seed * 1000 + r`` as before, and a large run seed is not told once per round that
    its derived seed aliases (review)."""
    return (seed * 1000 + r) % 2**32


def run_irp(
    model: nn.Module,
    dataset: object,
    irp: IRPConfig,
    train_cfg: TrainConfig,
    *,
    seed: int = 0,
    workdir: str | Path | None = None,
    criterion_batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_round: Callable[[int, float, float], None] | None = None,
    wait: bool = False,
    train_last: bool = True,
) -> IRPResult:
    """Run IRP on ``model`` (whose current weights are θ0) and return labels and the IMP curve.

    ``workdir`` (optional) holds one checkpoint per finished round; a rerun with the same
    arguments resumes after the last one, and a rerun with different ones (another θ0, config or
    seed) is a CheckpointError rather than a silent mix of two runs. ``on_round(r, density,
    accuracy)`` is called after round r is checkpointed, so raising from it stops the run
    cleanly. A workdir is used by one process at a time: a second one fails with a
    CheckpointError, or with ``wait`` waits for the first and then resumes after its last round
    (no training where it finished). The caller's model is not modified. ``train_last=False`` skips
    training the last round's mask, which only measures it: the labels are the same, and the curve
    (accuracies, densities) ends at round R-1 — for a caller that wants the mask alone (``imp``).
    """
    n_train = getattr(getattr(dataset, "x_train", None), "shape", (None,))[0]
    check_rewind_step(irp.rewind_step, train_cfg, n_train)  # not after round 0 has trained (hunt)
    kwargs = {"seed": seed, "criterion_batch": criterion_batch, "on_round": on_round, "train_last": train_last}
    if workdir is None:
        return _run_irp(model, dataset, irp, train_cfg, workdir=None, **kwargs)
    with _workdir_lock(Path(workdir), wait=wait):
        return _run_irp(model, dataset, irp, train_cfg, workdir=Path(workdir), **kwargs)


@contextlib.contextmanager
def _workdir_lock(wd: Path, wait: bool = False) -> Iterator[None]:
    """Two processes resuming one run would interleave their checkpoint writes into a mixed,
    silently wrong state; the second one fails instead, or waits (``wait``). (`autosparse gen` claims the whole run in
    the store first, so its processes never get here together; this guards direct callers.)
    The lock is an flock, so a killed holder releases it."""
    for attempt in range(3):
        wd.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(wd / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            break
        except FileNotFoundError:  # the finished holder removed the workdir between mkdir and open
            if attempt == 2:
                raise
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                busy = False
            except BlockingIOError:
                busy = True
            if busy and not wait:
                raise CheckpointError(
                    f"the IRP run in {wd} is being run by another process; wait for it to finish (its result is "
                    "then skipped here) or stop it first"
                )
            if busy:
                log.info("the IRP run in %s is being run by another process; waiting for it", wd)
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _run_irp(
    model: nn.Module,
    dataset: object,
    irp: IRPConfig,
    train_cfg: TrainConfig,
    *,
    seed: int,
    workdir: Path | None,
    criterion_batch: tuple[torch.Tensor, torch.Tensor] | None,
    on_round: Callable[[int, float, float], None] | None,
    train_last: bool,
) -> IRPResult:
    start = time.perf_counter()
    theta0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    names = [layer.name for layer in prunable_layers(model)]
    shapes = {layer.name: layer.parameter.shape for layer in prunable_layers(model)}
    R = irp.rounds
    masks = {n: torch.ones(shapes[n], dtype=torch.bool) for n in names}
    labels = {n: torch.full(shapes[n], R, dtype=torch.int8) for n in names}
    accuracies: list[float] = []
    densities: list[float] = []
    layer_densities: list[dict[str, float]] = []
    history: list[dict[str, object]] = []
    rewind: dict[str, torch.Tensor] | None = theta0 if irp.rewind_step == 0 else None
    seconds_train = 0.0
    first_round = 0
    wd = Path(workdir) if workdir is not None else None
    fingerprint = _fingerprint(theta0, irp, train_cfg, seed, criterion_batch) if wd is not None else ""
    if wd is not None:
        state = _load_checkpoint(wd)
        if state is not None:
            made_by = state.get("fingerprint", fingerprint)
            if made_by != fingerprint and made_by != _fingerprint(
                theta0, irp, train_cfg, seed, criterion_batch, cosmetic=True
            ):  # (a checkpoint written before the cosmetic fields were left out is still this run's)
                raise CheckpointError(
                    f"the IRP checkpoint in {wd} was made by a different run (model init, IRP or training config, "
                    "seed or criterion batch differ); delete that directory or pass another workdir"
                )
        # after the fingerprint, which refuses another run's checkpoint rather than discard it (review): read as
        # valid, one with zeroed masks trained its last rounds on nothing (and the store said complete); one of
        # another shape failed every rerun with a KeyError (hunt)
        if state is not None and (damage := _damage(state, shapes, R, set(theta0))):
            log.warning("discarding the damaged IRP checkpoint in %s (%s); the run restarts from round 0", wd, damage)
            state = None
        if state is not None:
            first_round = state["next_round"]
            masks, labels, rewind = state["masks"], state["labels"], state["rewind"]
            accuracies, densities = state["accuracies"], state["densities"]
            layer_densities, history = state["layer_densities"], state["history"]
            seconds_train = state["seconds_train"]
            if first_round > R:
                log.info(
                    "all %d trainings of this %d-round IRP were already checkpointed in %s; nothing to retrain",
                    R + 1,
                    R,
                    wd,
                )
            else:
                done = "round 0 was" if first_round == 1 else f"rounds 0-{first_round - 1} were"
                log.info(
                    "resuming IRP at round %d of %d: %s finished before (checkpoint in %s)", first_round, R, done, wd
                )

    for r in range(first_round, R + 1 if train_last else R):
        net = copy.deepcopy(model)
        load_weights(net, rewind if (r > 0 and rewind is not None) else theta0)
        captured: dict[str, dict[str, torch.Tensor]] = {}

        def on_step(step: int, m: nn.Module, _captured: dict = captured, _r: int = r) -> None:
            if _r == 0 and irp.rewind_step > 0 and step == irp.rewind_step:
                _captured["theta"] = {k: v.detach().clone() for k, v in m.state_dict().items()}

        cur = Masks({n: masks[n] for n in names})
        cfg = TrainConfig(**{**to_dict(train_cfg), "seed": _round_seed(seed, r)})
        # Round 0 is dense: training it without masks is bit-identical (weight * 1) and skips the gradient masking.
        masks_r = cur if r > 0 else None
        result = train(net, dataset, cfg, masks=masks_r, on_step=on_step, desc=f"IRP round {r}/{R}")
        seconds_train += result.seconds
        if r == 0 and irp.rewind_step > 0:
            if "theta" not in captured:
                raise ConfigError(f"rewind_step {irp.rewind_step} is beyond the {result.steps} steps of round 0")
            # state_dict of a torch-pruned module names weights *_orig: map back to plain names
            rewind = {
                (k[: -len("_orig")] if k.endswith("_orig") else k): v
                for k, v in captured["theta"].items()
                if not k.endswith("_mask")
            }
        accuracies.append(result.test_accuracy)
        densities.append(cur.density)
        layer_densities.append({n: float(masks[n].float().mean()) for n in names})
        record = {"round": r, "density": cur.density, "accuracy": result.test_accuracy, "seconds": result.seconds}
        if result.diverged:  # only then: a healthy run's history (and a store's attrs) stays as it was
            record["diverged"] = result.diverged
        history.append(record)
        log.info("IRP round %d/%d density %.5f accuracy %.4f", r, R, cur.density, result.test_accuracy)
        if r < R:
            if irp.criterion in ("magnitude", "snip"):
                scores = _criterion_scores(net, irp, criterion_batch, _round_seed(seed, r))
                new = _prune_step(scores, masks, irp, r)
            else:
                new = _round_step(irp, r, net, masks, tuple(dataset.x_train.shape[1:]))  # type: ignore[attr-defined]
            for n in names:
                labels[n][masks[n] & ~new[n]] = r
            masks = new
        if wd is not None:
            _save_checkpoint(
                wd,
                next_round=r + 1,
                masks=masks,
                labels=labels,
                rewind=rewind if rewind is not None else theta0,
                meta={
                    "accuracies": accuracies,
                    "densities": densities,
                    "layer_densities": layer_densities,
                    "history": history,
                    "seconds_train": seconds_train,
                    "fingerprint": fingerprint,
                },
            )
        # Only after the checkpoint: a callback that stops the run (a budget, Ctrl-C) loses no work.
        if on_round is not None:
            on_round(r, cur.density, result.test_accuracy)
    return IRPResult(
        labels, accuracies, densities, layer_densities, seconds_train, time.perf_counter() - start, R, history
    )


def _fingerprint(
    theta0: dict[str, torch.Tensor],
    irp: IRPConfig,
    train_cfg: TrainConfig,
    seed: int,
    batch: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    cosmetic: bool = False,
) -> str:
    """Digest of everything a checkpoint's contents depend on, so a reused workdir never mixes two runs.

    The recipe's cosmetic fields (threads, evaluation batch) are left out unless ``cosmetic``: a bench
    IMP job killed under one thread count resumes under another (the bench's cell hash ignores them
    too), where it refused with "made by a different run" and the bench has no other workdir to give.
    """
    train = to_dict(train_cfg)
    if not cosmetic:
        train = {k: v for k, v in train.items() if k not in COSMETIC_TRAIN_FIELDS}
    h = hashlib.sha256(json.dumps([to_dict(irp), train, seed], sort_keys=True, default=str).encode())
    tensors = sorted(theta0.items()) + ([("batch.x", batch[0]), ("batch.y", batch[1])] if batch is not None else [])
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _save_checkpoint(wd: Path, *, next_round: int, masks: dict, labels: dict, rewind: dict, meta: dict) -> None:
    """Write round state to a temp folder, then rename: a kill leaves the previous checkpoint intact."""
    wd.mkdir(parents=True, exist_ok=True)
    tmp = wd / "checkpoint.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_tensors(
        {f"mask/{k}": v.to(torch.uint8).contiguous() for k, v in masks.items()}
        | {f"label/{k}": v.contiguous() for k, v in labels.items()},
        str(tmp / "state.safetensors"),
    )
    save_tensors({k: v.contiguous() for k, v in rewind.items()}, str(tmp / "rewind.safetensors"))
    (tmp / "meta.json").write_text(json.dumps({**meta, "next_round": next_round}))
    final = wd / "checkpoint"
    old = wd / "checkpoint.old"
    if final.exists():
        if old.exists():  # a previous save was killed while deleting it; `final` is the valid one
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


_CHECKPOINT_KEYS = ("next_round", "accuracies", "densities", "layer_densities", "history", "seconds_train")


def _damage(state: dict, shapes: dict[str, torch.Size], rounds: int, theta_keys: set[str]) -> str:
    """What makes a readable checkpoint not one of these rounds ('' when it is): its meta's keys, its
    tensors' names and shapes, and the masks it resumes with against its labels (a weight alive for round
    r was pruned in no earlier round: mask == label >= r)."""
    if missing := [k for k in _CHECKPOINT_KEYS if k not in state]:
        return f"meta.json lacks {', '.join(missing)}"
    r = state["next_round"]
    if not isinstance(r, int) or not 1 <= r <= rounds + 1 or len(state["accuracies"]) != r:
        return f"its next round {r!r} does not fit {rounds} rounds and {len(state['accuracies'])} trained"
    for what in ("masks", "labels"):
        if {n: tuple(t.shape) for n, t in state[what].items()} != {n: tuple(v) for n, v in shapes.items()}:
            return f"its {what} are not this model's layers"
    if set(state["rewind"]) != theta_keys:
        return "its rewind point is not this model's weights"
    if any(not torch.equal(state["masks"][n], state["labels"][n] >= min(r, rounds)) for n in shapes):
        return "its masks disagree with its labels"
    return ""


def _load_checkpoint(wd: Path) -> dict | None:
    final = wd / "checkpoint"
    if not final.exists() and (wd / "checkpoint.old").exists():
        final = wd / "checkpoint.old"  # killed between the two renames
    if not (final / "meta.json").exists():
        return None
    try:
        meta = json.loads((final / "meta.json").read_text())
        state = load_file(str(final / "state.safetensors"))
        rewind = load_file(str(final / "rewind.safetensors"))
    except Exception:  # a checkpoint we cannot read is discarded: the run restarts from round 0
        log.warning("discarding unreadable IRP checkpoint in %s", wd)
        return None
    masks = {k[5:]: v.bool() for k, v in state.items() if k.startswith("mask/")}
    labels = {k[6:]: v for k, v in state.items() if k.startswith("label/")}
    return {**meta, "masks": masks, "labels": labels, "rewind": rewind}
