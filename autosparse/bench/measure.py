"""One speed measurement: a method's (or its floor loop's) time to mask and peak memory on one model,
in a fresh process.

Memory: ``tracemalloc`` does not see torch's allocations, so each measurement runs in a fresh
process (``isolate``) and reads the kernel's peak resident set size. On Linux the peak is reset
just before pruning (``/proc/self/clear_refs``), so building the model and loading data do not
hide the pruner's own peak; elsewhere the ``ru_maxrss`` increase is reported. On a GPU the
CUDA allocator's peak is reported too.
"""

from __future__ import annotations

import gc
import multiprocessing
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

import torch

from autosparse.bench.config import MethodSpec
from autosparse.bench.floors import FLOORS, floor_config, run_floor
from autosparse.bench.floors import kept as floor_kept
from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.data import pruning_batch
from autosparse.pruners import prune_timed
from autosparse.task import Task
from autosparse.training.trainer import resolve_device, set_threads


@dataclass
class Measurement:
    """One measurement: a method on a model, with the pruning batch every other method gets."""

    task: Task
    method: MethodSpec
    density: float
    samples_per_class: int
    seed: int
    repeats: int
    num_threads: int
    device: str
    floor: bool = False  # time the method's floor loop (:mod:`autosparse.bench.floors`) instead of the method
    round: int = 0  # which of the bench's rounds (SpeedConfig.rounds) this measurement belongs to

    def label(self) -> str:
        return self.method.title() + (" floor" if self.floor else "")


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes, Linux KiB


def measure(case: Measurement) -> dict[str, Any]:
    """Time one method on one model in this process; peak memory is meaningful in a fresh process."""
    set_threads(case.num_threads)
    device = resolve_device(case.device)
    info_ds = case.task.load_data()
    model = case.task.build_model(info_ds, case.seed).to(device)
    # every method gets the same batch: data-free ones (SynFlow, NTK-SAP) read only its input shape
    pdata = pruning_batch(info_ds, samples_per_class=case.samples_per_class, seed=case.seed).to(device)
    input_shape = list(info_ds.input_shape)
    del info_ds
    gc.collect()
    weights = sum(layer.parameter.numel() for layer in prunable_layers(model))
    rss_before = _status_kib("VmRSS")
    exact = rss_before is not None and _reset_peak_rss()
    maxrss_before = _maxrss_kib()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        gpu_before = torch.cuda.memory_allocated(device)
    floor_cfg = floor_config(case.method.method, case.method.hparams) if case.floor else None
    if case.floor and floor_cfg is None:
        raise ConfigError(f"{case.method.title()} has no floor loop (only global, iterative {', '.join(FLOORS)})")
    seconds, walls = [], []
    stages: list[dict[str, float] | None] = []  # autos' own split of its time (features, scorer, …)
    kept, empty = 0, 0
    for _ in range(case.repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        if floor_cfg is not None:
            masks = run_floor(case.method.method, model, pdata, case.density, floor_cfg, case.seed)
            if cuda:
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - start)  # the floor's one copy included, as the method's is
            kept, empty = floor_kept(masks), sum(1 for m in masks if not bool(m.any()))
        else:
            result = prune_timed(
                model, case.method.method, density=case.density, data=pdata, seed=case.seed, **case.method.hparams
            )
            seconds.append(result.seconds)
            kept, empty = result.masks.kept, len(result.masks.empty_layers())
            stages.append(result.masks.meta.get("stage_seconds"))
        if cuda:
            torch.cuda.synchronize(device)
        walls.append(time.perf_counter() - start)
    if exact:
        peak_kib = (_status_kib("VmHWM") or 0) - (rss_before or 0)
        mem_method = "VmHWM reset before pruning"
    else:
        peak_kib = _maxrss_kib() - maxrss_before
        mem_method = "ru_maxrss increase"
    best = min(seconds)
    out: dict[str, Any] = {
        "model": case.task.model.label(),
        "model_name": case.task.model.model,
        "dataset": case.task.data.dataset,
        "input_shape": input_shape,
        "method": case.method.method,
        "label": case.label(),
        "floor": case.floor,
        "hparams": case.method.hparams,
        "density": case.density,
        "weights": weights,
        "kept": kept,
        "empty_layers": empty,
        "seconds": best,
        "seconds_all": seconds,
        "wall_seconds": min(walls),  # includes the deep copy and mask validation prune_timed does
        "weights_per_s": weights / best if best > 0 else None,
        "peak_rss_mb": max(0, peak_kib) / 1024,
        "memory_method": mem_method,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "ok": True,
        "error": "",
    }
    if any(stages):  # the split of the fastest repeat
        out["stage_seconds"] = stages[seconds.index(best)]
    if cuda:
        out["peak_gpu_mb"] = (torch.cuda.max_memory_allocated(device) - gpu_before) / 2**20
    return out


def _child(case: Measurement, conn: Any) -> None:
    try:
        conn.send(measure(case))
    except BaseException as exc:  # everything goes back to the parent, which records it for this cell
        conn.send({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    finally:
        conn.close()


def measure_isolated(case: Measurement, timeout_s: float) -> dict[str, Any]:
    """:func:`measure` in a fresh spawned process, killed after ``timeout_s``."""
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(case, send), daemon=True)
    proc.start()
    send.close()
    try:
        if recv.poll(timeout_s):
            try:
                return recv.recv()
            except EOFError:
                proc.join(10)
                code = proc.exitcode
                why = (
                    f"killed by signal {-code} (out of memory?)"
                    if code is not None and code < 0
                    else f"exit code {code}"
                )
                return {"ok": False, "error": f"measurement process died before reporting: {why}; see its stderr"}
            finally:
                proc.join(60)  # let it exit cleanly (killing it mid-shutdown leaks its semaphores)
        return {"ok": False, "error": f"timed out after {timeout_s:g} s", "timed_out": True}
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        recv.close()
