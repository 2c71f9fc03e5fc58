"""Speed benchmark: time to mask and peak memory per method on models from ~0.1M to ~25M weights.

Absolute seconds depend on the machine, so every method is measured in the same invocation, on
the same model and the same pruning batch, and reported as a ratio to a reference method (SNIP:
one forward/backward pass, the cheapest data-dependent criterion) measured in the same run.

Memory: ``tracemalloc`` does not see torch's allocations, so each measurement runs in a fresh
process (``isolate``) and reads the kernel's peak resident set size. On Linux the peak is reset
just before pruning (``/proc/self/clear_refs``), so building the model and loading data do not
hide the pruner's own peak; elsewhere the ``ru_maxrss`` increase is reported. On a GPU the
CUDA allocator's peak is reported too. Measurements run one after another, never in parallel,
so they do not compete for cores or memory bandwidth.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import logging
import multiprocessing
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from autosparse.bench.config import IMP, MethodSpec, _normalise_methods, _normalise_models, _unique, slug
from autosparse.core.config import from_dict, load_yaml, to_dict
from autosparse.core.errors import ConfigError, UnknownNameError, check_density
from autosparse.task import ModelSpec

log = logging.getLogger(__name__)

SPEED_JSON = "speed.json"
SPEED_CSV = "speed.csv"
REPORT_FILE = "report.md"


@dataclass
class SpeedModel(ModelSpec):
    """A model of the speed bench; ``dataset`` overrides the config's (e.g. an MLP on 28x28 inputs)."""

    dataset: str = ""


def _default_models() -> list[SpeedModel]:
    return [
        SpeedModel("lenet_300_100", dataset="fake:fashion-mnist"),
        SpeedModel("resnet20"),
        SpeedModel("tv:resnet18"),
        SpeedModel("vgg16"),
        SpeedModel("vgg19"),
    ]


@dataclass
class SpeedConfig:
    """The YAML of ``autosparse bench speed`` (``kind: speed``)."""

    kind: Literal["speed"] = "speed"
    name: str = ""
    models: list[SpeedModel] = field(default_factory=_default_models)
    dataset: str = "fake:cifar10"  # only shapes matter for timing; fake data needs no files
    methods: list[MethodSpec] = field(
        default_factory=lambda: [MethodSpec(m) for m in ("random", "magnitude", "snip", "grasp", "synflow")]
    )
    density: float = 0.01
    samples_per_class: int = 10  # the pruning batch: 10 per class, GraSP's and SynFlow's recipe
    seed: int = 0
    reference: str = "snip"  # ratios are to this method's time on the same model in the same run
    repeats: int = 1  # the minimum over repeats is reported (first-call overheads excluded)
    isolate: bool = True  # one fresh process per measurement: needed for peak memory
    timeout_s: float = 1800.0  # per measurement (isolate only): a slow method is recorded, not waited on forever
    num_threads: int = 0  # torch threads; 0 = every core
    device: str = "cpu"  # cpu | cuda | auto
    data_root: str | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> SpeedConfig:
        return speed_config_from_dict(load_yaml(path), where=str(path))

    def reference_spec(self) -> MethodSpec:
        for m in self.methods:
            if self.reference in (m.title(), m.method):
                return m
        return MethodSpec(self.reference)

    def all_methods(self) -> list[MethodSpec]:
        """The configured methods plus the reference if it is not among them (ratios need it)."""
        ref = self.reference_spec()
        return self.methods if ref in self.methods else [ref, *self.methods]

    def validate(self) -> SpeedConfig:
        from autosparse.data import dataset_info
        from autosparse.models import model_info
        from autosparse.pruners import available, make_pruner

        if not self.models or not self.methods:
            raise ConfigError("a speed bench needs at least one model and one method")
        check_density(self.density)
        if self.repeats < 1:
            raise ConfigError(f"repeats must be >= 1, got {self.repeats}")
        _unique("model label", [m.label() for m in self.models])
        _unique("method label", [m.title() for m in self.all_methods()])
        known = available()
        for spec in self.all_methods():
            if spec.method == IMP:
                raise ConfigError(
                    "imp has no time to mask to measure here (it is training); remove it from the speed bench "
                    "(the accuracy bench reports IMP's cost in its time-to-mask table)"
                )
            if spec.method not in known:
                raise UnknownNameError("pruning method", spec.method, known, hint="list them with `autosparse methods`")
            try:
                make_pruner(spec.method, spec.hparams)
            except ConfigError as exc:
                raise ConfigError(f"method {spec.title()!r}: {exc}") from exc
        for m in self.models:
            model_info(m.model)
            dataset_info(m.dataset or self.dataset)
        return self


def speed_config_from_dict(data: dict[str, Any], *, where: str = "") -> SpeedConfig:
    data = dict(data)
    if data.get("kind", "speed") != "speed":
        raise ConfigError(f"{where or 'config'} is not a speed bench (kind: {data.get('kind')}); drop `speed`")
    data["kind"] = "speed"
    if "models" in data:
        data["models"] = _normalise_models(data["models"])
    if "methods" in data:
        data["methods"] = _normalise_methods(data["methods"])
    return from_dict(SpeedConfig, data, where=where)


@dataclass
class SpeedTask:
    model: SpeedModel
    dataset: str
    method: MethodSpec
    density: float
    samples_per_class: int
    seed: int
    repeats: int
    num_threads: int
    device: str
    data_root: str | None


# ----------------------------------------------------------------------------------- measurement


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


def measure(task: SpeedTask) -> dict[str, Any]:
    """Time one method on one model in this process; peak memory is meaningful in a fresh process."""
    import torch

    from autosparse.core.layers import prunable_layers
    from autosparse.data import dataset_info, load_dataset, pruning_batch
    from autosparse.models import build_model
    from autosparse.pruners import prune_timed
    from autosparse.training.trainer import resolve_device, set_threads

    set_threads(task.num_threads)
    device = resolve_device(task.device)
    fake = task.dataset.lower().startswith("fake:")
    classes = dataset_info(task.dataset).num_classes
    info_ds = load_dataset(
        task.dataset,
        task.data_root,
        n_train=task.samples_per_class * classes * 2 if fake else None,
        n_test=classes if fake else None,
        seed=task.seed,
    )
    model = build_model(
        task.model.model, tuple(info_ds.input_shape), info_ds.num_classes, seed=task.seed, **task.model.model_kwargs
    ).to(device)
    # every method gets the same batch: data-free ones (SynFlow, NTK-SAP) read only its input shape
    pdata = pruning_batch(info_ds, samples_per_class=task.samples_per_class, seed=task.seed).to(device)
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
    seconds, walls = [], []
    result = None
    for _ in range(task.repeats):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = prune_timed(
            model, task.method.method, density=task.density, data=pdata, seed=task.seed, **task.method.hparams
        )
        if cuda:
            torch.cuda.synchronize(device)
        walls.append(time.perf_counter() - start)
        seconds.append(result.seconds)
    assert result is not None
    if exact:
        peak_kib = (_status_kib("VmHWM") or 0) - (rss_before or 0)
        mem_method = "VmHWM reset before pruning"
    else:
        peak_kib = _maxrss_kib() - maxrss_before
        mem_method = "ru_maxrss increase"
    best = min(seconds)
    out: dict[str, Any] = {
        "model": task.model.label(),
        "model_name": task.model.model,
        "dataset": task.dataset,
        "input_shape": input_shape,
        "method": task.method.method,
        "label": task.method.title(),
        "hparams": task.method.hparams,
        "density": task.density,
        "weights": weights,
        "kept": result.masks.kept,
        "empty_layers": len(result.masks.empty_layers()),
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
    if cuda:
        out["peak_gpu_mb"] = (torch.cuda.max_memory_allocated(device) - gpu_before) / 2**20
    return out


def _child(task: SpeedTask, conn: Any) -> None:
    try:
        conn.send(measure(task))
    except BaseException as exc:  # everything goes back to the parent, which records it for this cell
        conn.send({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    finally:
        conn.close()


def measure_isolated(task: SpeedTask, timeout_s: float) -> dict[str, Any]:
    """:func:`measure` in a fresh spawned process, killed after ``timeout_s``."""
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(task, send), daemon=True)
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


# ------------------------------------------------------------------------------------------ driver


@dataclass
class SpeedResult:
    rows: list[dict[str, Any]]
    tables: str
    path: Path


def run_speed(config: SpeedConfig, out_dir: str | Path) -> SpeedResult:
    """Measure every (model, method) one at a time and write speed.json/csv, a plot and report.md."""
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methods = config.all_methods()
    rows: list[dict[str, Any]] = []
    pairs = [(m, meth) for m in config.models for meth in methods]
    bar = tqdm(pairs, desc="speed", unit="measurement", disable=None)
    for model, method in bar:
        bar.set_postfix_str(f"{model.label()} {method.title()}"[-40:])
        task = SpeedTask(
            model,
            model.dataset or config.dataset,
            method,
            config.density,
            config.samples_per_class,
            config.seed,
            config.repeats,
            config.num_threads,
            config.device,
            config.data_root,
        )
        if config.isolate:
            row = measure_isolated(task, config.timeout_s)
        else:
            try:
                row = measure(task)
            except Exception as exc:  # one method failing on one model is a cell of the table, not the end
                row = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        row.setdefault("model", model.label())
        row.setdefault("label", method.title())
        row.setdefault("method", method.method)
        if not row.get("ok"):
            log.error("speed %s / %s failed: %s", model.label(), method.title(), row.get("error"))
        rows.append(row)
    ref = config.reference_spec().title()
    for model in config.models:
        ref_row = next((r for r in rows if r["model"] == model.label() and r["label"] == ref and r.get("ok")), None)
        for r in rows:
            if r["model"] == model.label():
                r["ratio_to_reference"] = (
                    r["seconds"] / ref_row["seconds"] if ref_row and r.get("ok") and ref_row["seconds"] > 0 else None
                )
    tables = speed_tables(config, rows)
    _write(out, config, rows, tables)
    return SpeedResult(rows, tables, out / REPORT_FILE)


def _fmt_weights(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.0f}k"


def speed_tables(config: SpeedConfig, rows: list[dict[str, Any]]) -> str:
    """Markdown: seconds (× reference), peak memory, and throughput; rows = methods, columns = models."""
    from autosparse.bench.report import _markdown_table, format_seconds

    methods = [m.title() for m in config.all_methods()]
    models = [m.label() for m in config.models]
    weights = {m: next((r.get("weights") for r in rows if r["model"] == m and r.get("weights")), None) for m in models}
    header = ["method", *[f"{m} ({_fmt_weights(weights[m])})" for m in models]]
    ref = config.reference_spec().title()

    def cell(model: str, label: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["model"] == model and r["label"] == label), None)

    def table(fmt: Any) -> str:
        body = []
        for label in methods:
            row = [label + (" *(reference)*" if label == ref else "")]
            for model in models:
                r = cell(model, label)
                if r is None:
                    row.append("–")
                elif not r.get("ok"):
                    row.append("timeout" if r.get("timed_out") else "failed")
                else:
                    row.append(fmt(r))
            body.append(row)
        return _markdown_table(header, body)

    def time_fmt(r: dict[str, Any]) -> str:
        ratio = r.get("ratio_to_reference")
        return f"{format_seconds(r['seconds'])} (×{ratio:.2g})" if ratio is not None else format_seconds(r["seconds"])

    def mem_fmt(r: dict[str, Any]) -> str:
        text = f"{r['peak_rss_mb']:.0f}"
        if r.get("peak_gpu_mb") is not None:
            text += f" / {r['peak_gpu_mb']:.0f} GPU"
        return text

    def tput_fmt(r: dict[str, Any]) -> str:
        w = r.get("weights_per_s")
        return f"{w:.3g}" if w else "–"

    parts = [
        f"### Time to mask (s, × {ref} on the same model in this run)",
        "",
        table(time_fmt),
        "",
        "### Peak memory while pruning (MiB above the process before pruning)",
        "",
        table(mem_fmt),
        "",
        "### Throughput (prunable weights scored per second)",
        "",
        table(tput_fmt),
    ]
    return "\n".join(parts)


def _write(out: Path, config: SpeedConfig, rows: list[dict[str, Any]], tables: str) -> None:
    from autosparse.bench.plots import plot_speed
    from autosparse.bench.report import _write_text

    _write_text(out / SPEED_JSON, json.dumps({"config": to_dict(config), "rows": rows}, indent=1))
    fields = [
        "model",
        "label",
        "method",
        "weights",
        "seconds",
        "ratio_to_reference",
        "weights_per_s",
        "peak_rss_mb",
        "peak_gpu_mb",
        "wall_seconds",
        "device",
        "threads",
        "ok",
        "error",
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(out / SPEED_CSV, buf.getvalue())
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if r.get("ok"):
            series.setdefault(r["label"], []).append((int(r["weights"]), float(r["seconds"])))
    plot_name = f"speed__{slug(config.name or 'models')}.png"
    plot_speed(
        out / "plots" / plot_name,
        series,
        title=f"time to mask at density {config.density:g}",
        reference=config.reference_spec().title(),
    )
    first = next((r for r in rows if r.get("ok")), {})
    failed = [r for r in rows if not r.get("ok")]
    md = [
        f"# Speed bench: {config.name or out.name}",
        "",
        f"Density {config.density:g}, pruning batch of {config.samples_per_class} samples per class, seed "
        f"{config.seed}, device {first.get('device', config.device)}, {first.get('threads', '?')} torch threads, "
        f"{'one fresh process per measurement' if config.isolate else 'all in one process'}, minimum of "
        f"{config.repeats} repeat(s). Memory: {first.get('memory_method', 'n/a')}.",
        "",
        tables,
        "",
        f"![time to mask vs weights](plots/{plot_name})",
        "",
    ]
    if failed:
        md += ["Failed measurements:", ""]
        md += [
            f"- {r['model']} / {r['label']}: {r.get('error', '').splitlines()[0] if r.get('error') else ''}"
            for r in failed
        ]
        md.append("")
    md += ["Per-measurement numbers: `speed.csv`, `speed.json`.", f"CPU cores: {os.cpu_count()}."]
    _write_text(out / REPORT_FILE, "\n".join(md) + "\n")
