"""Speed benchmark: time to mask and peak memory per method on models from ~0.1M to ~25M weights.

Absolute seconds depend on the machine, so every method is measured in the same invocation, on
the same model and the same pruning batch, and reported as a ratio to a reference method (SNIP:
one forward/backward pass, the cheapest data-dependent criterion) measured in the same run.

Each measurement (:mod:`autosparse.bench.measure`) runs in a fresh process for its peak memory,
one after another, never in parallel, so they do not compete for cores or memory bandwidth, and
its row is kept on disk as soon as it is taken, so an interrupted run resumes where it stopped.
An iterative method (SynFlow, iterative SNIP, NTK-SAP) is also measured against its floor loop
(:mod:`autosparse.bench.floors`) in the same run: the ratio is the library's overhead.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import os
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from autosparse.bench.config import (
    IMP,
    MethodSpec,
    check_hparams,
    check_unique,
    refuse_unloadable,
    slug,
    unloadable_methods,
)
from autosparse.bench.floors import floor_config
from autosparse.bench.measure import Measurement, measure, measure_isolated
from autosparse.bench.outputs import MEASUREMENTS, SPEED_JSON, check_folder_kind
from autosparse.bench.plots import plot_speed
from autosparse.bench.report import format_seconds, markdown_table
from autosparse.core.claims import claim, holder
from autosparse.core.config import from_dict, load_yaml
from autosparse.core.config_record import config_hash, to_dict
from autosparse.core.errors import ConfigError, UnknownNameError, check_density
from autosparse.core.folders import make_output_dir, write_text
from autosparse.core.text import count_of, markdown_literal
from autosparse.core.versions import code_fingerprint
from autosparse.data import FAKE_PREFIX, dataset_info
from autosparse.models import model_info
from autosparse.pruners import available
from autosparse.task import DataSpec, ModelSpec, Task
from autosparse.training.trainer import resolve_device

log = logging.getLogger(__name__)

SPEED_CSV = "speed.csv"
REPORT_FILE = "report.md"
#: held by the process measuring into a folder, for its whole run (never deleted: see core.claims)
MEASURING_LOCK = ".measuring.lock"


@dataclass
class SpeedModel(ModelSpec):
    """A model of the speed bench; ``dataset`` overrides the config's (e.g. an MLP on 28x28 inputs)."""

    dataset: str = ""  # the data whose shapes this model takes (none: the config's dataset)


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

    kind: Literal["speed"] = "speed"  # time to mask (an accuracy bench has kind: accuracy)
    name: str = ""  # the bench's name in its report
    models: list[SpeedModel] = field(default_factory=_default_models)
    """models to time: names or mappings with model, model_kwargs, name, dataset (YAML or JSON)"""
    dataset: str = "fake:cifar10"  # only shapes matter for timing; fake data needs no files
    methods: list[MethodSpec] = field(
        default_factory=lambda: [MethodSpec(m) for m in ("random", "magnitude", "snip", "grasp", "synflow")]
    )
    """methods to time: names or mappings with method, hparams, label (YAML or JSON)"""
    density: float = 0.01  # the density every method prunes to
    samples_per_class: int = 10  # the pruning batch: 10 per class, GraSP's and SynFlow's recipe
    seed: int = 0  # seed of the initial weights and the pruning batch
    reference: str = "snip"  # ratios are to this method's time on the same model in the same run
    repeats: int = 1  # the minimum over repeats is reported (first-call overheads excluded)
    rounds: int = 1
    """the whole plan this many times, each model's methods back to back in every round; times are
    medians over rounds and each ratio is the median of its per-round ratios, so a VM whose speed
    drifts over minutes moves a method and its reference together"""
    isolate: bool = True  # one fresh process per measurement: needed for peak memory
    timeout_s: float = 1800.0  # per measurement (isolate only): a slow method is recorded, not waited on forever
    num_threads: int = 0  # torch threads; 0 = OMP_NUM_THREADS where set, else every core
    device: str = "cpu"  # cpu | cuda | auto
    data_root: str | None = None  # where real datasets are read from (none: a system copy, then the default folder)

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

    def task(self, model: SpeedModel) -> Task:
        """``model`` on its data; only shapes matter for timing, so fake data is made just big enough."""
        name = model.dataset or self.dataset
        fake = name.lower().startswith(FAKE_PREFIX)
        classes = dataset_info(name).num_classes
        n_train, n_test = (self.samples_per_class * classes * 2, classes) if fake else (None, None)
        return Task(model, DataSpec(name, n_train, n_test, self.data_root, data_seed=self.seed))

    def validate(self) -> SpeedConfig:
        if not self.models or not self.methods:
            raise ConfigError("a speed bench needs at least one model and one method")
        check_density(self.density)
        if self.repeats < 1:
            raise ConfigError(f"repeats must be >= 1, got {self.repeats}")
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds}")
        if not math.isfinite(self.timeout_s) or self.timeout_s <= 0:  # 0 timed every measurement out, unasked
            raise ConfigError(
                f"timeout_s must be a positive number of seconds per measurement, got {self.timeout_s}; "
                "e.g. --timeout-s 1800"
            )
        check_unique("model label", [m.label() for m in self.models])
        check_unique("method label", [m.title() for m in self.all_methods()])
        known = available()
        for spec in self.all_methods():
            if spec.method == IMP:
                raise ConfigError(
                    "imp has no time to mask to measure here (it is training); remove it from the speed bench "
                    "(the accuracy bench reports IMP's cost in its time-to-mask table)"
                )
            if spec.method not in known:
                raise UnknownNameError("pruning method", spec.method, known, hint="list them with `autosparse methods`")
            check_hparams(spec)
        for m in self.models:
            model_info(m.model)
            # built on its data's shape (no data loaded): a bad option or a model that cannot take the data
            # failed every measurement of it, after --check had called the config valid
            m.build(dataset_info(m.dataset or self.dataset), seed=0)
        resolve_device(self.device)  # one error now, not one per measurement
        return self


def speed_config_from_dict(data: dict[str, Any], *, where: str = "") -> SpeedConfig:
    data = dict(data)
    if data.get("kind", "speed") != "speed":
        raise ConfigError(f"{where or 'config'} is not a speed bench (kind: {data.get('kind')}); drop `speed`")
    return from_dict(SpeedConfig, {**data, "kind": "speed"}, where=where)


# ------------------------------------------------------------------------------------------ driver


@dataclass
class SpeedResult:
    rows: list[dict[str, Any]]
    tables: str
    path: Path


def plan_measurements(config: SpeedConfig) -> list[Measurement]:
    """Every measurement of ``config`` in run order: per model and round, each method, then its floor
    loop if it has one."""
    cases = []
    for model in config.models:
        task = config.task(model)
        for round_ in range(config.rounds):
            for method in config.all_methods():
                case = Measurement(
                    task,
                    method,
                    config.density,
                    config.samples_per_class,
                    config.seed,
                    config.repeats,
                    config.num_threads,
                    config.device,
                    round=round_,
                )
                cases.append(case)
                if floor_config(method.method, method.hparams) is not None:
                    cases.append(dataclasses.replace(case, floor=True))
    return cases


def measurement_path(out: Path, case: Measurement) -> Path:
    """Where one measurement's row is kept; named by a hash of everything it depends on, so a
    changed setting is measured again instead of reused."""
    setting = {k: v for k, v in to_dict(case).items() if k != "round"}  # round 0 keeps the names of before rounds
    suffix = f"__r{case.round}" if case.round else ""
    return (
        out
        / MEASUREMENTS
        / f"{slug(case.task.model.label())}__{slug(case.label())}__{config_hash(setting)}{suffix}.json"
    )


def finished_measurement(path: Path) -> dict[str, Any] | None:
    """The row a successful measurement left at ``path`` (reused, not taken again), else ``None``."""
    row = json.loads(path.read_text()) if path.exists() else None
    return row if row is not None and row.get("ok") else None


@contextlib.contextmanager
def measuring(out: Path, kind: str) -> Iterator[None]:
    """Hold ``out`` for a whole ``kind`` (speed or training-speed) run, refusing it while another process
    does, and refusing a folder of another kind of bench.

    Why refuse rather than divide the work as two accuracy benches on one folder do: two benches
    measuring at once compete for the cores and the memory bandwidth, so every time either takes
    is skewed, and a table of such times is worse than none. The kind is checked under the claim, so
    two runs of other kinds started together cannot both pass it.
    """
    make_output_dir(out)  # a file there is refused in one line before the claim makes its lock
    lock = out / MEASURING_LOCK
    with claim(lock) as mine:
        if not mine:
            raise ConfigError(
                f"--out {out} is being measured by another process ({holder(lock)}); wait for it or choose another --out"
            )
        check_folder_kind(out, kind)
        yield


def run_speed(config: SpeedConfig, out_dir: str | Path) -> SpeedResult:
    """Measure every (model, method) one at a time and write speed.json/csv, a plot and report.md.

    Each measurement's row is written as soon as it is taken, so a rerun into the same folder
    after a kill (or a reboot, an hour into SynFlow on ResNet-50) reuses every successful one
    and measures only the rest; failed and timed-out measurements are tried again.
    """
    config.validate()
    out = Path(out_dir)
    preflight_speed(config, out)
    with measuring(out, "speed"):
        make_output_dir(out / MEASUREMENTS)
        return _measure_all(config, out)


def preflight_speed(config: SpeedConfig, out: Path) -> None:
    """Refuse a row still to measure whose method cannot run here (``autos``: a scorer not there), as an
    accuracy bench does: each of its measurements failed after the others' hours, and ``--check`` said valid."""
    todo = [c.method for c in plan_measurements(config) if finished_measurement(measurement_path(out, c)) is None]
    refuse_unloadable(unloadable_methods(todo), [m.title() for m in config.all_methods()])


def _measure_all(config: SpeedConfig, out: Path) -> SpeedResult:
    rows: list[dict[str, Any]] = []
    cases = plan_measurements(config)
    bar = tqdm(cases, desc="speed", unit="measurement", disable=None)
    for case in bar:
        path = measurement_path(out, case)
        previous = finished_measurement(path)
        if previous is not None and previous.get("isolated", True) != config.isolate:
            previous = None  # peak memory in a shared process is not a fresh process's: measured again
        if previous is not None and previous.get("code") != code_fingerprint():
            # every ratio is "in this run": one code's times, not two versions' (an upgrade reused older rows)
            log.info(
                "speed %s / %s: taken by other autosparse code; measuring again", case.task.model.label(), case.label()
            )
            previous = None
        if previous is not None:
            log.info("speed %s / %s: reusing %s", case.task.model.label(), case.label(), path.name)
            rows.append({**previous, "round": case.round})
            continue
        bar.set_postfix_str(f"{case.task.model.label()} {case.label()}"[-40:])
        if config.isolate:
            row = measure_isolated(case, config.timeout_s)
        else:
            try:
                row = measure(case)
            except Exception as exc:  # one method failing on one model is a cell of the table, not the end
                row = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        row.setdefault("model", case.task.model.label())
        row.setdefault("label", case.label())
        row.setdefault("method", case.method.method)
        row.setdefault("floor", case.floor)
        row["isolated"] = config.isolate
        row["code"] = code_fingerprint()  # which autosparse took it (see the reuse above)
        if not row.get("ok"):
            log.error("speed %s / %s failed: %s", case.task.model.label(), case.label(), row.get("error"))
        write_text(path, json.dumps(row, indent=1))
        rows.append({**row, "round": case.round})
    add_ratios(config, rows)
    measured = rows
    rows = combine_rounds(measured) if config.rounds > 1 else rows
    tables = speed_tables(config, rows)
    _write(out, config, rows, tables, measured)
    return SpeedResult(rows, tables, out / REPORT_FILE)


def add_ratios(config: SpeedConfig, rows: list[dict[str, Any]]) -> None:
    """Each row's time over the reference's and, for a method with a floor loop, over its floor's,
    both measured in the row's own round."""
    ref = config.reference_spec().title()

    def find(model: str, label: str, round_: int) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in rows
                if r["model"] == model and r["label"] == label and r.get("round", 0) == round_ and r.get("ok")
            ),
            None,
        )

    for r in rows:
        round_ = r.get("round", 0)
        ref_row = find(r["model"], ref, round_)
        ok = r.get("ok")
        r["ratio_to_reference"] = (
            r["seconds"] / ref_row["seconds"] if ok and ref_row and ref_row["seconds"] > 0 else None
        )
        floor_row = None if r.get("floor") else find(r["model"], r["label"] + " floor", round_)
        r["ratio_to_floor"] = (
            r["seconds"] / floor_row["seconds"] if ok and floor_row and floor_row["seconds"] > 0 else None
        )


def combine_rounds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, label) from its rounds: median time, median of the paired per-round
    ratios, largest peak memory; ``ok`` only if every round was.

    Why medians of per-round ratios rather than a ratio of medians: the rounds exist because the
    machine's speed drifts, and a method and its reference timed in one round share that round's
    drift, which the pairing cancels.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["label"]), []).append(r)

    def median(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return float(statistics.median(known)) if len(known) == len(values) and known else None

    out = []
    for members in groups.values():
        first = dict(members[0])
        ok = all(m.get("ok") for m in members)
        first["ok"] = ok
        first["rounds"] = len(members)
        first.pop("round", None)
        if not ok:
            bad = next(m for m in members if not m.get("ok"))
            first.update({k: bad.get(k) for k in ("error", "timed_out") if k in bad})
            out.append(first)
            continue
        first["seconds_rounds"] = [m["seconds"] for m in members]
        first["seconds"] = median(first["seconds_rounds"])
        first["weights_per_s"] = first["weights"] / first["seconds"] if first.get("weights") else None
        for key in ("ratio_to_reference", "ratio_to_floor"):
            first[key] = median([m.get(key) for m in members])
        for key in ("peak_rss_mb", "peak_gpu_mb"):
            peaks = [m.get(key) for m in members if m.get(key) is not None]
            first[key] = max(peaks) if peaks else None
        out.append(first)
    return out


def _fmt_weights(n: int | None) -> str:
    """``0.27M``, ``44k``, ``2.5k``, ``266``: a model under 500 weights printed as "0k"."""
    if not n:
        return "?"
    if n >= 1e5:
        return f"{n / 1e6:.2f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    return f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _threads_text(first: dict[str, Any], config: SpeedConfig) -> str:
    """How many torch threads the measurements ran with: "1 torch thread", and what was asked for where
    no measurement finished to say (it printed "? torch threads")."""
    if first.get("threads"):
        return count_of(int(first["threads"]), "torch thread")
    if config.num_threads > 0:
        return count_of(config.num_threads, "torch thread") + " asked for"
    return "torch threads: OMP_NUM_THREADS or every core asked for (no measurement finished to say how many)"


def speed_tables(config: SpeedConfig, rows: list[dict[str, Any]]) -> str:
    """Markdown: seconds (× reference), peak memory, throughput, and methods over their floor loops;
    rows = methods (each followed by its floor loop), columns = models."""
    floored = [m.title() for m in config.all_methods() if floor_config(m.method, m.hparams) is not None]
    methods = [label for m in config.all_methods() for label in (m.title(), m.title() + " floor")]
    methods = [label for label in methods if not label.endswith(" floor") or label[: -len(" floor")] in floored]
    models = [m.label() for m in config.models]
    weights = {m: next((r.get("weights") for r in rows if r["model"] == m and r.get("weights")), None) for m in models}
    header = ["method", *[f"{markdown_literal(m)} ({_fmt_weights(weights[m])})" for m in models]]
    ref = config.reference_spec().title()

    def cell(model: str, label: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["model"] == model and r["label"] == label), None)

    def table(fmt: Any, labels: list[str] = methods) -> str:
        body = []
        for label in labels:
            row = [markdown_literal(label) + (" *(reference)*" if label == ref else "")]
            for model in models:
                r = cell(model, label)
                if r is None:
                    row.append("–")
                elif not r.get("ok"):
                    row.append("timeout" if r.get("timed_out") else "failed")
                else:
                    row.append(fmt(r))
            body.append(row)
        return markdown_table(header, body)

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

    def floor_fmt(r: dict[str, Any]) -> str:
        ratio = r.get("ratio_to_floor")
        return f"×{ratio:.2f}" if ratio is not None else "–"

    floor_part = [
        "",
        "### Iterative methods over their floor loops (method's time / floor loop's time, same run)",
        "",
        table(floor_fmt, floored),
    ]
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
        *(floor_part if floored else []),
    ]
    return "\n".join(parts)


def _write(
    out: Path, config: SpeedConfig, rows: list[dict[str, Any]], tables: str, measured: list[dict[str, Any]]
) -> None:
    record: dict[str, Any] = {"config": to_dict(config), "rows": rows}
    if measured is not rows:
        record["measurements"] = measured  # every round's own row, its ratios paired within the round
    write_text(out / SPEED_JSON, json.dumps(record, indent=1))
    fields = [
        "model",
        "label",
        "method",
        "weights",
        "seconds",
        "ratio_to_reference",
        "ratio_to_floor",
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
    write_text(out / SPEED_CSV, buf.getvalue())
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if r.get("ok") and not r.get("floor"):
            series.setdefault(r["label"], []).append((int(r["weights"]), float(r["seconds"])))
    plot_name = f"speed__{slug(config.name or 'models')}.png"
    if series:
        plot_speed(
            out / "plots" / plot_name,
            series,
            title=f"time to mask at density {config.density:g}",
            reference=config.reference_spec().title(),
        )
    else:  # every measurement failed: an empty figure says nothing, and an earlier run's would be another run's
        (out / "plots" / plot_name).unlink(missing_ok=True)
    first = next((r for r in rows if r.get("ok")), {})
    failed = [r for r in rows if not r.get("ok")]
    md = [
        f"# Speed bench: {config.name or out.name}",
        "",
        f"Density {config.density:g}, pruning batch of {config.samples_per_class} samples per class, seed "
        f"{config.seed}, device {first.get('device', config.device)}, {_threads_text(first, config)}, "
        f"{'one fresh process per measurement' if config.isolate else 'all in one process'}, minimum of "
        f"{config.repeats} repeat(s)"
        + (
            f"; {config.rounds} rounds, each model's methods back to back in every round: times are medians "
            "over rounds, ratios the median of each round's own ratio"
            if config.rounds > 1
            else ""
        )
        + f". Memory: {first.get('memory_method', 'n/a')}.",
        "",
        tables,
        "",
        *([f"![time to mask vs weights](plots/{plot_name})", ""] if series else []),
    ]
    if failed:
        md += ["Failed measurements:", ""]
        md += [
            f"- {r['model']} / {r['label']}: {r.get('error', '').splitlines()[0] if r.get('error') else ''}"
            for r in failed
        ]
        md.append("")
    md += ["Per-measurement numbers: `speed.csv`, `speed.json`.", f"CPU cores: {os.cpu_count()}."]
    write_text(out / REPORT_FILE, "\n".join(md) + "\n")
