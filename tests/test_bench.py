"""The bench harness end to end on a tiny grid: cells, resume, report numbers, plots, errors."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import statistics
from pathlib import Path

import pytest
import yaml

import autosparse.bench.cells
import autosparse.training.irp
import autosparse.training.trainer
from autosparse.bench import BenchConfig, ImpSettings, MethodSpec, plan_jobs, read_cell, run_bench
from autosparse.bench.cells import recipe_hash
from autosparse.bench.config import bench_config_from_dict, config_kind
from autosparse.bench.report import RESULTS_CSV, RESULTS_JSON, collect, dense_accuracy, format_stat
from autosparse.bench.speed import SpeedConfig
from autosparse.bench.train_speed import TrainSpeedConfig
from autosparse.cli import main
from autosparse.core.errors import CheckpointError, ConfigError, DatasetNotFoundError, UnknownNameError
from autosparse.core.masks import Masks

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny",
    "models": [{"model": "mlp", "model_kwargs": {"widths": [32]}}],
    "datasets": ["fake:fashion-mnist"],
    "methods": ["random", "magnitude", "imp"],
    "densities": [0.1, 0.02],
    "seeds": [0, 1],
    "n_train": 512,
    "n_test": 256,
    "train": {"epochs": 1, "batch_size": 64, "num_threads": 1},
}


def tiny_config(**changes: object) -> BenchConfig:
    return bench_config_from_dict({**TINY, **changes})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bench") / "tiny"
    cfg = tiny_config()
    run = run_bench(cfg, out)
    return cfg, out, run


def _copy(out: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(out, dst)  # copy2: modification times are kept
    return dst


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}


def _cells(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}


@pytest.fixture
def train_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count every training (one-shot cells and IRP each call their own import of the trainer's train)."""
    calls: list[str] = []
    real = autosparse.training.trainer.train

    def counting(*args, **kwargs):
        calls.append(kwargs.get("desc", ""))
        return real(*args, **kwargs)

    monkeypatch.setattr(autosparse.training.trainer, "train", counting)
    monkeypatch.setattr(autosparse.training.irp, "train", counting)
    monkeypatch.setattr(autosparse.bench.cells, "train", counting)
    return calls


def test_end_to_end_writes_every_cell(tiny_run) -> None:
    _, out, run = tiny_run
    assert run.ok, [f.error for f in run.failures]
    # 2 one-shot methods x 2 densities x 2 seeds + IMP (one job per seed, 2 densities each)
    assert run.cells_total == 12 and run.jobs_total == 10 and run.jobs_run == 10
    cells = _cells(out)
    assert len(cells) == 12
    for cid, rec in cells.items():
        assert rec["cell_id"] == cid
        assert 0.0 <= rec["test_accuracy"] <= 1.0
        assert rec["kept"] == round(rec["density"] * rec["total"])
        assert set(rec["layer_densities"]) == {"fc1.weight", "fc2.weight"}
        assert rec["time_to_mask"] >= 0 and rec["train_seconds"] > 0
        assert isinstance(rec["empty_layers"], list)
        assert rec["spec"]["seed"] == rec["spec"]["train"]["seed"] == rec["seed"]  # the seed it trained with
        assert recipe_hash(rec["spec"]) == cid.rsplit("__", 1)[1]
    imp = [r for r in cells.values() if r["method"] == "imp"]
    assert len(imp) == 4 and all(r["reference"] and r["dense_accuracy"] is not None for r in imp)
    # IMP's time to mask at the sparser density includes the training of the earlier round
    by_seed = {(r["seed"], r["density"]): r for r in imp}
    assert by_seed[(0, 0.02)]["time_to_mask"] > by_seed[(0, 0.1)]["time_to_mask"] > 0
    lines = (out / RESULTS_CSV).read_text().strip().splitlines()
    assert len(lines) == 13 and lines[0].startswith("cell_id,model,dataset,method")
    assert len(json.loads((out / RESULTS_JSON).read_text())["cells"]) == 12
    assert (out / "bench.yaml").exists()


def test_cell_ids_readable_and_hashed(tiny_run) -> None:
    cfg, out, _ = tiny_run
    ids = [c for j in plan_jobs(cfg, out) for c in j.cell_ids()]
    assert any(c.startswith("mlp-widths32__fake-fashion-mnist__random__d0.02__s1__") for c in ids)
    assert all(len(c.rsplit("__", 1)[1]) == 10 for c in ids)
    # a changed recipe makes new cells; another method or seed leaves existing cells valid
    changed = {c for j in plan_jobs(tiny_config(train={**TINY["train"], "epochs": 2}), out) for c in j.cell_ids()}
    assert not changed & set(ids)
    more = tiny_config(methods=["random", "magnitude", "snip", "imp"], seeds=[0, 1, 2])
    grown = {c for j in plan_jobs(more, out) for c in j.cell_ids()}
    one_shot = {c for c in ids if "__imp__" not in c}
    assert one_shot <= grown
    # IMP's whole path determines each of its points: new densities mean new IMP cells
    other = {c for j in plan_jobs(tiny_config(densities=[0.1, 0.05, 0.02]), out) for c in j.cell_ids()}
    assert not {c for c in ids if "__imp__" in c} & other
    # labels are cosmetic: renaming a row does not change the hash
    relabel = tiny_config(methods=["random", {"method": "magnitude", "label": "mag"}, "imp"])
    hashes = {c.rsplit("__", 1)[1] for j in plan_jobs(relabel, out) for c in j.cell_ids() if "__mag__" in c}
    assert hashes == {c.rsplit("__", 1)[1] for c in ids if "__magnitude__" in c}


def test_report_mean_and_std_match_cells(tiny_run) -> None:
    _, out, run = tiny_run
    cells = list(_cells(out).values())
    md = (out / "report.md").read_text()
    rows = {}
    for line in md.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if line.startswith("| ") and parts[0] in ("random", "magnitude", "imp *(reference)*"):
            rows.setdefault(parts[0], parts[1:3])  # the first table is accuracy
    assert set(rows) == {"random", "magnitude", "imp *(reference)*"}
    best = {}
    for col, d in enumerate([0.1, 0.02]):
        for label, row_name in (("random", "random"), ("magnitude", "magnitude"), ("imp", "imp *(reference)*")):
            accs = [c["test_accuracy"] for c in cells if c["label"] == label and c["density"] == d]
            assert len(accs) == 2
            expected = f"{100 * statistics.fmean(accs):.1f} ± {100 * statistics.stdev(accs):.1f}"
            assert rows[row_name][col].replace("**", "").replace(" †", "") == expected
            if label != "imp":
                best.setdefault(col, []).append((round(100 * statistics.fmean(accs), 1), row_name))
        top = max(v for v, _ in best[col])
        for v, name in best[col]:
            assert rows[name][col].startswith("**") == (v == top)
        assert not rows["imp *(reference)*"][col].startswith("**")
    assert "| method | 90% | 98% |" in md
    assert run.report.tables in md  # what the CLI prints is in the report
    assert "Dense network (IMP round 0)" in md and "12 of 12 cells finished" in md


def test_plots_are_nonempty_pngs(tiny_run) -> None:
    _, out, _ = tiny_run
    pngs = sorted((out / "plots").glob("*.png"))
    assert [p.name.split("__")[0] for p in pngs] == ["accuracy", "layers"]
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert f"]({p.relative_to(out).as_posix()})" in (out / "report.md").read_text()


def test_second_run_recomputes_nothing(tiny_run, tmp_path: Path, train_calls: list[str]) -> None:
    cfg, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    before = _mtimes(dst)
    run = run_bench(cfg, dst)
    assert run.jobs_run == 0 and run.cells_done_before == 12 and train_calls == []
    assert _mtimes(dst) == before


def test_deleted_cells_recompute_alone(tiny_run, tmp_path: Path, train_calls: list[str]) -> None:
    cfg, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    original = _cells(dst)
    victim = next(c for c in original if "__magnitude__d0.02__s1__" in c)
    (dst / "cells" / f"{victim}.json").unlink()
    # a killed writer leaves at most a temporary file, which is ignored
    (dst / "cells" / f".{victim}.json.999.deadbeef.tmp").write_text('{"half": ')
    before = _mtimes(dst)
    run = run_bench(cfg, dst)
    assert run.jobs_run == 1 and len(train_calls) == 1
    after = _mtimes(dst)
    assert {k: v for k, v in after.items() if k != f"{victim}.json"} == before
    # same seed, same config: the recomputed cell is the same number
    assert _cells(dst)[victim]["test_accuracy"] == original[victim]["test_accuracy"]

    # an IMP cell is re-derived from the kept IRP checkpoint, without training anything
    imp_victim = next(c for c in original if "__imp__d0.02__s0__" in c)
    (dst / "cells" / f"{imp_victim}.json").unlink()
    train_calls.clear()
    before = _mtimes(dst)
    run = run_bench(cfg, dst)
    assert run.jobs_run == 1 and train_calls == []
    assert {k: v for k, v in _mtimes(dst).items() if k != f"{imp_victim}.json"} == before
    assert _cells(dst)[imp_victim]["test_accuracy"] == original[imp_victim]["test_accuracy"]

    # a corrupt cell file (not written by us) counts as missing
    (dst / "cells" / f"{victim}.json").write_text("{not json")
    assert read_cell(dst / "cells" / f"{victim}.json") is None
    assert run_bench(cfg, dst).jobs_run == 1
    # a cell holding its id alone: a KeyError in every report until deleted; without its accuracy: a "–"
    # never recomputed (hunt)
    for stub in ({"cell_id": victim}, {k: v for k, v in original[victim].items() if k != "test_accuracy"}):
        (dst / "cells" / f"{victim}.json").write_text(json.dumps(stub))
        assert read_cell(dst / "cells" / f"{victim}.json") is None
        assert run_bench(cfg, dst).jobs_run == 1
        assert _cells(dst)[victim]["test_accuracy"] == original[victim]["test_accuracy"]


def test_partial_results_report_missing_cells(tiny_run, tmp_path: Path) -> None:
    cfg, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    for p in (dst / "cells").glob("*__random__d0.1__s1__*.json"):
        p.unlink()
    from autosparse.bench import write_report

    report = write_report(cfg, dst)
    assert len(report.missing) == 1 and len(report.records) == 11
    md = report.path.read_text()
    assert "11 of 12 cells finished" in md and report.missing[0] in md
    random_row = next(line for line in md.splitlines() if line.startswith("| random |"))
    assert "(n=1)" in random_row.split("|")[2]


def test_unknown_method_fails_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "b"
    with pytest.raises(UnknownNameError, match="not_a_method"):
        run_bench(tiny_config(methods=["random", "not_a_method"]), out)
    assert not (out / "cells").exists()
    with pytest.raises(ConfigError, match="bogus"):
        run_bench(tiny_config(methods=[{"method": "random", "hparams": {"bogus": 1}}]), out)
    with pytest.raises(ConfigError, match="wrong_key"):
        run_bench(tiny_config(methods=[{"method": "imp", "hparams": {"wrong_key": 1}}]), out)
    with pytest.raises(ConfigError, match="duplicate method label"):
        tiny_config(methods=["random", "random"]).validate()
    with pytest.raises(ConfigError, match=r"model mlp has no option 'widht' \(did you mean 'widths'\?\)"):
        tiny_config(models=[{"model": "mlp", "model_kwargs": {"widht": [8]}}]).validate()
    assert not (out / "cells").exists()
    # the CLI prints it in one line and exits 2
    cfg_path = tmp_path / "bad.yaml"
    cfg_path.write_text(yaml.safe_dump({**TINY, "methods": ["random", "autos_not_there"]}))
    assert main(["bench", "--config", str(cfg_path), "--out", str(out)]) == 2


def test_a_grid_that_cannot_join_the_record_says_it_replaces_it(
    tiny_run, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the folder forgot the rest of its grid without a word (review)
    from autosparse.bench.runner import folder_config

    _, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    twin = tiny_config(densities=[1 - 0.98])  # the record's 0.02, but for float rounding: no valid union
    with caplog.at_level("WARNING", logger="autosparse"):
        assert folder_config(dst, twin) is twin
    assert "do not join (densities 0.02 and 0.020000000000000018 differ only by float rounding" in caplog.text


def test_two_densities_never_head_one_column() -> None:
    from autosparse.bench.report import accuracy_table

    # 1 - 0.999 is not 0.001: two cells of the grid, two report columns both headed 99.9%
    with pytest.raises(ConfigError, match=r"0.001 and 0.0010000000000000009 differ only by float rounding"):
        tiny_config(densities=[0.001, 1 - 0.999]).validate()
    with pytest.raises(ConfigError, match=r"duplicate density 0\.1 in the bench config; list each once"):
        tiny_config(densities=[0.1, 0.1]).validate()
    # distinct densities that read alike at four digits get the digits that tell them apart (review: refused)
    cfg = tiny_config(densities=[0.0001, 0.00012, 0.1]).validate()
    records = [
        {"model": "mlp-widths32", "dataset": "fake:fashion-mnist", "label": "random", "density": d, "seed": 0,
         "test_accuracy": 0.5}
        for d in cfg.densities
    ]  # fmt: skip
    header = accuracy_table(cfg, records, "mlp-widths32", "fake:fashion-mnist").splitlines()[0]
    assert header == "| method | 90% | 99.988% | 99.99% |"


def test_rows_written_apart_that_resolve_alike_are_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # cell ids hash hyperparameters as written: these rows are two computations of one result
    from autosparse.bench.runner import plan_bench

    rows = ["random", {"method": "random", "hparams": {"scope": "global"}}, {"method": "random", "label": "again"}]
    with caplog.at_level("WARNING", logger="autosparse"):
        plan_bench(tiny_config(methods=rows), tmp_path / "b")
    said = [r.getMessage() for r in caplog.records if "same settings" in r.getMessage()]
    assert len(said) == 1 and "'random' and 'random(scope=global)'" in said[0]  # not 'again': one computation


def test_imp_schedule_passes_through_bench_densities() -> None:
    assert ImpSettings().schedule([0.02, 1.0, 0.1]) == [0.1, 0.02]
    sched = ImpSettings(max_prune_fraction=0.5).schedule([0.1, 0.02])
    assert 0.1 in sched and sched[-1] == 0.02
    prev = 1.0
    for d in sched:
        assert 0.5 - 1e-9 <= d / prev < 1.0
        prev = d
    with pytest.raises(ConfigError):
        ImpSettings(max_prune_fraction=1.0)


def test_imp_with_short_rounds_retrains_each_mask_with_the_recipe(tmp_path, train_calls) -> None:
    # round_epochs prices the rounds: IRP trains 0.5 epochs a round, each cell is its mask trained
    # from θ0 with the bench's recipe, the same training a one-shot cell's mask gets
    short = {"method": "imp", "hparams": {"criterion": "flow", "round_epochs": 0.5}, "label": "imp-short"}
    cfg = tiny_config(methods=[short], seeds=[0])
    run_bench(cfg, tmp_path / "b")
    cells = _cells(tmp_path / "b")
    assert len(cells) == 2 and len(train_calls) == 3 + 2  # dense + two pruning rounds, then one retrain a cell
    (work,) = (tmp_path / "b" / "work").iterdir()
    labels = autosparse.training.irp._load_checkpoint(work)["labels"]
    (job,) = plan_jobs(cfg, tmp_path / "b")
    dataset = job.spec.task.data.load()
    for rec in cells.values():
        assert rec["imp_round_epochs"] == 0.5 and rec["kept"] == round(rec["density"] * rec["total"])
        r = rec["imp_round"]
        masks = Masks({n: lab >= r for n, lab in labels.items()})
        again = autosparse.training.trainer.train(
            job.spec.task.build_model(dataset, 0), dataset, job.spec.train_config(1), masks=masks
        )
        assert rec["test_accuracy"] == again.test_accuracy
        # its round 0 trained half an epoch: not the dense net the report's "Dense network" line names
        assert rec["dense_accuracy"] is None
    stale = [dict(r, dense_accuracy=0.5) for r in cells.values()]  # a cell written before that rule
    assert dense_accuracy(stale, *[stale[0][k] for k in ("model", "dataset")]) is None
    with pytest.raises(ConfigError, match="drop rewind_step or round_epochs"):
        ImpSettings(round_epochs=1, rewind_step=5)
    with pytest.raises(ConfigError, match="round_epochs must be >= 0"):
        ImpSettings(round_epochs=-1)


def test_an_imp_row_that_prunes_most_survivors_at_once_says_so(tmp_path, caplog) -> None:
    # `--densities 0.05 --methods imp` ran one round from dense to 5% under the name "IMP"
    with caplog.at_level("WARNING", logger="autosparse.bench.cells"):
        plan_jobs(tiny_config(methods=["imp"], densities=[0.05]), tmp_path)
    (line,) = [r.getMessage() for r in caplog.records if "max_prune_fraction" in r.getMessage()]
    assert "imp prunes up to 95% of its surviving weights in one round" in line
    caplog.clear()
    with caplog.at_level("WARNING", logger="autosparse.bench.cells"):
        lth = {"method": "imp", "hparams": {"max_prune_fraction": 0.2}, "label": "imp_lth"}
        plan_jobs(tiny_config(methods=[lth], densities=[0.05]), tmp_path)
    assert not [r for r in caplog.records if "max_prune_fraction" in r.getMessage()]


def test_config_forms_and_shipped_configs() -> None:
    cfg = bench_config_from_dict(
        {
            "models": ["lenet_300_100", {"model": "mlp", "model_kwargs": {"widths": [8]}, "name": "tiny"}],
            "methods": ["snip", {"synflow": {"rounds": 10}}, {"method": "autos", "hparams": {"scorer": "x"}}],
        }
    )
    assert [m.label() for m in cfg.models] == ["lenet_300_100", "tiny"]
    assert cfg.methods[1] == MethodSpec("synflow", {"rounds": 10})
    assert cfg.method_titles() == ["snip", "synflow(rounds=10)", "autos(scorer=x)"]
    with pytest.raises(ConfigError, match="epoch"):
        bench_config_from_dict({"train": {"epoch": 3}})
    shipped = sorted((ROOT / "configs" / "bench").glob("*.yaml"))
    assert {p.stem for p in shipped} >= {"fmnist_lenet", "fmnist_conv", "mnist1d", "speed"}
    for p in shipped:
        if config_kind(p) == "speed":
            SpeedConfig.from_yaml(p)
        elif config_kind(p) == "train_speed":
            TrainSpeedConfig.from_yaml(p)
        else:
            c = BenchConfig.from_yaml(p)
            # every reported comparison has IMP as its reference; a validation grid only chooses options,
            # an evidence grid trains SynFlow on the sources, whose IMP accuracies the store holds, a
            # student-evidence grid compares the learned masks with SynFlow's on validation nets, and a
            # source-baselines grid ranks the classic methods on a source shape (its IMP is in the store)
            on_sources = "_source_evidence" in c.name or c.name.endswith("_source_baselines")
            only_choose = c.name.endswith(("_validation", "_student_evidence")) or on_sources
            assert only_choose or any(m.is_imp for m in c.methods)
            # every comparison includes the learned scorer, except the tables of the baselines alone and the
            # grids on source shapes (a scorer is not judged on the runs it learned from)
            assert c.name == "fmnist_lenet_baselines" or on_sources or any(m.method == "autos" for m in c.methods)


def test_cli_report_only_prints_the_table(tiny_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY))
    (dst / "report.md").unlink()
    assert main(["bench", "--config", str(cfg_path), "--out", str(dst), "--report-only"]) == 0
    printed = capsys.readouterr().out
    assert "| method | 90% | 98% |" in printed and "12 cells on disk, 0 missing" in printed
    assert (dst / "report.md").exists()
    # a normal rerun through the CLI finds everything done
    assert main(["bench", "accuracy", "--config", str(cfg_path), "--out", str(dst)]) == 0
    assert "12 were done, 0 jobs ran now" in capsys.readouterr().out
    assert main(["bench", "speed", "--config", str(cfg_path), "--out", str(dst)]) == 2
    # without --config, the folder's own grid (it once rewrote the report for the default grid)
    assert main(["bench", "--out", str(dst), "--report-only"]) == 0
    assert "12 cells on disk, 0 missing" in capsys.readouterr().out
    # another bench's config: its report would replace this folder's under this bench.yaml
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**TINY, "name": "other", "n_train": 256}))
    before = (dst / "report.md").read_text()
    assert main(["bench", "--config", str(other), "--out", str(dst), "--report-only"]) == 2
    assert "records another bench (its n_train differs from this command's)" in capsys.readouterr().err
    assert (dst / "report.md").read_text() == before
    # a title or a gap row of its own is this bench's report still (review)
    assert main(["bench", "--out", str(dst), "--report-only", "--name", "Nice title", "--gap-to", "imp"]) == 0
    assert "# Bench: Nice title" in (dst / "report.md").read_text()
    assert main(["bench", "--out", str(dst), "--report-only", "--train.num-threads", "2"]) == 0  # changes no cell
    # ... and with bench.yaml deleted (the README's way to shrink a grid), no default grid's empty report
    (dst / "bench.yaml").unlink()
    before = (dst / "report.md").read_text()
    assert main(["bench", "--out", str(dst), "--report-only"]) == 2
    assert "pass --config" in capsys.readouterr().err and (dst / "report.md").read_text() == before
    # the grid given as flags is a grid: the README's way to report a shrunk one
    grid = ["--models", json.dumps(TINY["models"]), "--datasets", "fake:fashion-mnist", "--methods", "random"]
    grid += ["--densities", "0.1", "--seeds", "0", "--n-train", "512", "--n-test", "256"]
    grid += ["--train.epochs", "1", "--train.batch-size", "64"]
    assert main(["bench", "--out", str(dst), "--report-only", *grid]) == 0
    assert "1 cell on disk, 0 missing" in capsys.readouterr().out
    # ... and the report's Reproduce section gives that grid, not a bench.yaml that is not there (hunt); the
    # folder stays unrecorded: a --report-only that computed nothing once wrote a grid its own bench then
    # failed against (review)
    md = (dst / "report.md").read_text()
    assert "records no bench.yaml" in md and "```yaml" in md and not (dst / "bench.yaml").exists()
    # a file where the folder must go is one line, before any work
    (tmp_path / "afile").write_text("x")
    assert main(["bench", "--config", str(cfg_path), "--out", str(tmp_path / "afile" / "sub")]) == 2
    assert "is inside" in capsys.readouterr().err
    # a mistyped --out: no cells there is an error, and nothing is created (it wrote an empty report and exited 0)
    assert main(["bench", "--config", str(cfg_path), "--out", str(tmp_path / "typo"), "--report-only"]) == 2
    assert "holds no bench cells" in capsys.readouterr().err and not (tmp_path / "typo").exists()


def test_cli_check_plans_against_the_cells_and_writes_nothing(
    tiny_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY))
    before = sorted(p.name for p in dst.rglob("*"))
    assert main(["bench", "--config", str(cfg_path), "--out", str(dst), "--check"]) == 0
    assert "12 already in" in capsys.readouterr().out and sorted(p.name for p in dst.rglob("*")) == before
    # a new density is planned, not computed, and an empty folder is not created
    new = tmp_path / "new"
    assert main(["bench", "--config", str(cfg_path), "--out", str(new), "--check", "--densities", "0.05"]) == 0
    assert "0 already in" in capsys.readouterr().out and not new.exists()
    # a row whose scorer is missing fails here, as the run would, naming the row
    bad = {**TINY, "methods": [*TINY["methods"], {"method": "autos", "hparams": {"scorer": str(tmp_path / "none")}}]}
    cfg_path.write_text(yaml.safe_dump(bad))
    assert main(["bench", "--config", str(cfg_path), "--out", str(new), "--check"]) == 2
    assert "bench row 'autos(scorer=" in capsys.readouterr().err and not new.exists()
    assert main(["bench", "--config", str(cfg_path), "--out", str(dst), "--check", "--report-only"]) == 2


def test_a_dataset_without_its_files_fails_the_check_and_the_run_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], train_calls: list[str]
) -> None:
    """Every cell failed alone with the same "not found", after --check had called the grid valid."""
    from autosparse.data import load_dataset

    empty = tmp_path / "no-data"
    empty.mkdir()
    grid = {**TINY, "datasets": ["cifar10", "fake:fashion-mnist"], "methods": ["random"], "data_root": str(empty)}
    cfg_path = tmp_path / "grid.yaml"
    cfg_path.write_text(yaml.safe_dump(grid))
    out = tmp_path / "out"
    assert main(["bench", "--config", str(cfg_path), "--out", str(out), "--check"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"cifar10 not found in .*no-data .*cifar-10-batches-py/data_batch_1 is missing.*--download", err)
    assert not out.exists()
    with pytest.raises(DatasetNotFoundError, match="cifar10 not found"):
        run_bench(bench_config_from_dict(grid), out)
    assert not train_calls and not (out / "cells").exists()  # not one job started
    # an MNIST-format dataset is looked for in the root the same way; fake data and digits need no files
    with pytest.raises(DatasetNotFoundError, match=r"fashion-mnist not found \(looked in .*no-data") as checked:
        run_bench(bench_config_from_dict({**grid, "datasets": ["fashion-mnist"]}), out)
    with pytest.raises(DatasetNotFoundError) as loaded:
        load_dataset("fashion-mnist", empty)
    assert str(checked.value) == str(loaded.value)  # the loader's own error, said once
    assert (
        main(["bench", "--config", str(cfg_path), "--out", str(out), "--check", "--datasets", "digits,fake:fmnist"])
        == 0
    )
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": [{"model": "mlp", "model_kwargs": {"widths": "abc"}}]}, "widths"),
        ({"models": [{"model": "conv2", "model_kwargs": {"width": -1}}]}, "width"),
        ({"models": ["cnn1d"]}, "cnn1d"),
        ({"n_train": -5}, "n_train must be a positive number"),
        ({"datasets": ["digits"], "n_train": 100000}, "n_train=100000 is more than digits' 1438|digits's 1438"),
        ({"samples_per_class": 0}, "samples_per_class must be >= 1"),
        ({"train": {**TINY["train"], "seed": 5}}, r"train.seed=5 has no effect in a bench: .*--seeds"),
        (
            {"methods": [{"method": "imp", "hparams": {"rewind_step": 100000}}]},
            r"bench row 'imp\(rewind_step=100000\)': imp rewind_step=100000 is beyond the 8 steps .*\(1 epoch of",
        ),
    ],
)
def test_check_refuses_what_would_fail_every_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict, message: str
) -> None:
    """Each passed `bench --check`, then failed one cell after another."""
    cfg_path = tmp_path / "b.yaml"
    cfg_path.write_text(yaml.safe_dump({**TINY, **change}))
    assert main(["bench", "--config", str(cfg_path), "--out", str(tmp_path / "o"), "--check"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_methods_filter_runs_a_subset(tmp_path: Path) -> None:
    cfg = tiny_config(methods=["random", "magnitude", "imp"], densities=[0.1], seeds=[0])
    run = run_bench(cfg, tmp_path / "b", methods=["magnitude"])
    assert run.cells_total == 1 and run.jobs_run == 1
    assert "–" in (tmp_path / "b" / "report.md").read_text()  # the other rows are shown as missing
    with pytest.raises(UnknownNameError, match="snip"):
        run_bench(cfg, tmp_path / "b", methods=["snip"])


def test_a_run_of_part_of_the_grid_keeps_the_folders_record_and_report(tiny_run, tmp_path: Path) -> None:
    """`--methods random` rewrote bench.yaml and the report with that row alone: the folder forgot its grid."""
    _, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    record = (dst / "bench.yaml").read_text()
    part = tiny_config(methods=["random"], seeds=[1])
    run = run_bench(part, dst)
    assert run.jobs_run == 0 and (dst / "bench.yaml").read_text() == record
    assert "| magnitude |" in run.report.path.read_text() and "| imp" in run.report.path.read_text()
    # --report-only with the part reports the whole grid too
    assert main(["bench", "--out", str(dst), "--report-only", "--methods", "random"]) == 0
    assert "| magnitude |" in (dst / "report.md").read_text()


def test_a_run_of_another_recipe_into_a_folder_is_refused_before_any_cell(
    tiny_run, tmp_path: Path, capsys: pytest.CaptureFixture[str], train_calls: list[str]
) -> None:
    """`--train.epochs 2` into a folder of 1 replaced bench.yaml and the report with the new grid: the folder's
    cells stayed in cells/ with nothing mentioning them, and --report-only could no longer show them."""
    _, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    record, report = (dst / "bench.yaml").read_text(), (dst / "report.md").read_text()
    other = tiny_config(methods=["random"], seeds=[1], n_test=128, train={**TINY["train"], "epochs": 2})
    with pytest.raises(
        ConfigError, match=r"another recipe \(n_test 256 there, 128 here, train.epochs 1.* there, 2.* here"
    ):
        run_bench(other, dst)
    assert (dst / "bench.yaml").read_text() == record and (dst / "report.md").read_text() == report
    assert not train_calls
    # --check says the same, and the CLI's one line names the fix
    assert main(["bench", "--out", str(dst), "--check", "--train.epochs", "2"]) == 2
    assert "train.epochs" in (err := capsys.readouterr().err) and "another --out" in err
    assert main(["bench", "--out", str(dst), "--train.epochs", "2"]) == 2
    assert "another --out" in capsys.readouterr().err and not train_calls
    # cosmetic settings and a title are this bench still: a run of part of it keeps the whole grid
    run = run_bench(
        tiny_config(methods=["random"], seeds=[0], name="renamed", train={**TINY["train"], "num_threads": 2}), dst
    )
    md = run.report.path.read_text()
    assert run.jobs_run == 0 and "# Bench: renamed" in md and "| magnitude |" in md


def test_two_parts_run_into_a_fresh_folder_are_recorded_and_reported_together(tmp_path: Path) -> None:
    first = tiny_config(methods=["random"], densities=[0.1], seeds=[0])
    second = tiny_config(methods=["magnitude"], densities=[0.1], seeds=[0])
    run_bench(first, tmp_path / "b")
    run = run_bench(second, tmp_path / "b")
    record = (tmp_path / "b" / "bench.yaml").read_text()
    assert "random" in record and "magnitude" in record
    md = run.report.path.read_text()
    assert "| random |" in md and "| magnitude |" in md and not run.report.missing


def test_a_run_of_fewer_densities_keeps_imp_on_the_folders_schedule(tiny_run, tmp_path: Path) -> None:
    """`--densities 0.05` in a folder of 0.1 / 0.02 ran an IRP on [0.05] alone, whose cells no report read:
    the IMP row went empty in every column, and the demo then asked for a rerun forever (review)."""
    _, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    run = run_bench(tiny_config(densities=[0.05], seeds=[0]), dst)
    imp = next(line for line in run.report.path.read_text().splitlines() if line.startswith("| imp"))
    assert "–" not in imp.split("|", 2)[2] and imp.count("|") == 5  # 90 / 95 / 98%: every column filled
    assert {c["density"] for c in _cells(dst).values() if c["method"] == "imp" and c["seed"] == 0} >= {0.1, 0.05, 0.02}


def test_rows_whose_labels_share_a_file_name_are_refused() -> None:
    """ "r a" and "r-a" wrote one cell file: one row showed nothing, the other a mean over both (review)."""
    rows = [{"method": "random", "label": "r a"}, {"method": "random", "label": "r-a"}]
    with pytest.raises(ConfigError, match="same in a file name"):
        tiny_config(methods=rows).validate()


def test_an_out_that_is_a_file_is_one_error(tmp_path: Path, caplog) -> None:
    (tmp_path / "f").write_text("x")
    with caplog.at_level("WARNING"), pytest.raises(ConfigError, match="is a file"):
        run_bench(tiny_config(), tmp_path / "f")
    assert "unreadable" not in caplog.text


def test_the_report_reads_the_grid_as_it_is_when_written(tmp_path: Path, monkeypatch) -> None:
    """Two benches on one folder: the one that finished last wrote the report from the grid it had read at
    its start, without the other's rows (review). The grid is read again for the report."""
    import autosparse.bench.runner as runner

    out = tmp_path / "b"
    real = runner.run_claimed_jobs

    def other_bench_meanwhile(*args, **kwargs):  # type: ignore[no-untyped-def]
        outcomes = real(*args, **kwargs)
        monkeypatch.setattr(runner, "run_claimed_jobs", real)
        run_bench(tiny_config(methods=["magnitude"], densities=[0.1], seeds=[0]), out, report=False)
        return outcomes

    monkeypatch.setattr(runner, "run_claimed_jobs", other_bench_meanwhile)
    md = run_bench(tiny_config(methods=["random"], densities=[0.1], seeds=[0]), out).report.path.read_text()
    assert "| random |" in md and "| magnitude |" in md


def test_a_relative_out_is_the_drivers_folder_for_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, train_calls: list[str]
) -> None:
    """A Ray worker's folder is not the driver's: its cells went there, and a rerun resubmitted forever."""
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(methods=["random"], densities=[0.1], seeds=[0])
    run = run_bench(cfg, "rel")
    assert run.out_dir == tmp_path / "rel" and all(Path(j.out_dir).is_absolute() for j in plan_jobs(cfg, "rel"))


def test_one_model_listed_twice_is_computed_once_and_not_said_to_run_elsewhere(
    tmp_path: Path, train_calls: list[str]
) -> None:
    twice = tiny_config(
        models=[
            {"model": "mlp", "model_kwargs": {"widths": [8]}, "name": "small"},
            {"model": "mlp", "model_kwargs": {"widths": [8]}, "name": "same-again"},
        ],
        methods=["random"],
        densities=[0.1],
        seeds=[0],
    )
    run = run_bench(twice, tmp_path / "b")
    assert len(train_calls) == 1 and run.jobs_run == 1
    assert run.jobs_same == 1 and run.jobs_elsewhere == 0  # it said "1 ran in another bench process"
    assert not run.report.missing


def test_renaming_a_row_or_a_model_recomputes_nothing(tiny_run, tmp_path: Path, train_calls: list[str]) -> None:
    """Labels name the cell files but are not hashed: a renamed imp row retrained its whole IRP run."""
    _, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    renamed = tiny_config(
        models=[{"model": "mlp", "model_kwargs": {"widths": [32]}, "name": "my-mlp"}],
        methods=["random", {"method": "magnitude", "label": "MAG"}, {"method": "imp", "label": "IMP-ref"}],
    )
    run = run_bench(renamed, dst)
    assert run.jobs_run == 0 and train_calls == [] and run.cells_done_before == 12
    md = run.report.path.read_text()
    assert "| MAG |" in md and "IMP-ref" in md and "## my-mlp on" in md
    assert not run.report.missing
    # the folder's grid renames the rows too: the old labels were kept beside the new ones, same numbers
    assert "| magnitude |" not in md and "## mlp-widths32 on" not in md
    recorded = yaml.safe_load((dst / "bench.yaml").read_text())
    assert [m.get("label") for m in recorded["methods"]] == ["", "MAG", "IMP-ref"]
    old = json.loads(next((dst / "cells").glob("mlp-widths32__*__magnitude__d0.1__s0__*.json")).read_text())
    new = json.loads(next((dst / "cells").glob("my-mlp__*__MAG__d0.1__s0__*.json")).read_text())
    assert new["test_accuracy"] == old["test_accuracy"] and new["label"] == "MAG" and new["model"] == "my-mlp"
    assert new["spec"]["method"]["label"] == "MAG" and new["spec"]["model"]["name"] == "my-mlp"
    assert new["job_id"].startswith("my-mlp__") and new["cell_id"].startswith("my-mlp__")


def test_a_dataset_respelled_plans_the_same_cells(tmp_path: Path) -> None:
    ids = {c for j in plan_jobs(tiny_config(), tmp_path) for c in j.cell_ids()}
    respelled = {c for j in plan_jobs(tiny_config(datasets=["fake:FMNIST"]), tmp_path) for c in j.cell_ids()}
    assert respelled == ids
    with pytest.raises(ConfigError, match="spelled two ways"):
        tiny_config(datasets=["fake:fmnist", "fake:fashion-mnist"]).validate()


def test_cells_of_a_dataset_hashed_as_written_are_reused(tiny_run, tmp_path: Path, train_calls: list[str]) -> None:
    """Before 2026-12-04 a cell id hashed the dataset as the config spelled it: a folder made then
    with ``fmnist`` recomputed every cell (an IMP row its whole IRP run) under the registered name."""

    _, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    for path in (dst / "cells").glob("*.json"):  # the folder as the old code wrote it for "fake:fmnist"
        record = json.loads(path.read_text())
        record["spec"]["data"]["dataset"] = record["dataset"] = "fake:fmnist"
        stem, density, seed, _ = path.stem.rsplit("__", 3)
        old_id = (
            f"{stem.replace('fake-fashion-mnist', 'fake-fmnist')}__{density}__{seed}__{recipe_hash(record['spec'])}"
        )
        record["cell_id"] = old_id
        path.unlink()
        (path.parent / f"{old_id}.json").write_text(json.dumps(record))
    run = run_bench(tiny_config(datasets=["fake:fmnist"]), dst)
    assert run.jobs_run == 0 and train_calls == [] and run.cells_done_before == 12
    assert not run.report.missing and "## mlp-widths32 on fake:fashion-mnist" in run.report.path.read_text()
    adopted = _cells(dst)
    canonical = [c for c in adopted.values() if "__fake-fashion-mnist__" in c["cell_id"]]
    assert len(canonical) == 12 and {c["dataset"] for c in canonical} == {"fake:fashion-mnist"}
    assert all(c["spec"]["data"]["dataset"] == "fake:fashion-mnist" for c in canonical)
    assert all(recipe_hash(c["spec"]) == c["cell_id"].rsplit("__", 1)[1] for c in canonical)


def test_format_stat() -> None:
    from autosparse.bench.report import Stat

    assert format_stat(Stat([0.5, 0.6])) == "55.0 ± 7.1"
    assert format_stat(Stat([0.8766])) == "87.7"


@pytest.mark.slow
def test_process_executor_matches_local(tiny_run, tmp_path: Path) -> None:
    cfg, out, _ = tiny_run
    run = run_bench(cfg, tmp_path / "proc", executor="process", workers=2)
    assert run.ok and run.jobs_run == 10
    local = {k: v["test_accuracy"] for k, v in _cells(out).items()}
    proc = {k: v["test_accuracy"] for k, v in _cells(tmp_path / "proc").items()}
    assert proc == local


@pytest.mark.slow
@pytest.mark.ray
def test_ray_executor_matches_local(tiny_run, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    _, out, _ = tiny_run
    small = tiny_config(methods=["magnitude", "imp"], densities=[0.1, 0.02], seeds=[0])
    run = run_bench(small, tmp_path / "ray", executor="ray")
    assert run.ok, [f.error for f in run.failures]
    local = {k: v["test_accuracy"] for k, v in _cells(out).items()}
    got = {k: v["test_accuracy"] for k, v in _cells(tmp_path / "ray").items()}
    assert len(got) == 4 and all(local[k] == v for k, v in got.items())


def test_a_cell_records_autos_guard_decision() -> None:
    """Whether autos' guard replaced a mask decides how a cell reads (RESULTS §7/§9), so the cell keeps it."""
    import torch

    from autosparse.bench.cells import _mask_fields
    from autosparse.core.masks import Masks

    m = {"w": torch.tensor([True, False, False, True])}
    guard = {"fallback": "synflow-mask", "reason": "collapse", "collapsed": ["w"]}
    assert _mask_fields(Masks(m, meta={"guard": guard}))["guard"] == guard
    assert "guard" not in _mask_fields(Masks(m))


def test_a_retrained_scorer_recomputes_its_cells_under_the_same_ids(tmp_path: Path) -> None:
    """A scorer retrained under the same path must not reuse cells made with its old weights; the
    cell ids stay (they name results on disk, tests/test_ids.py) and the old cell is set aside."""
    scorer = tmp_path / "scorer"
    shutil.copytree(ROOT / "trained_scorers" / "autos_mlp", scorer)
    cfg = tiny_config(
        methods=["magnitude", {"method": "autos", "hparams": {"scorer": str(scorer)}, "label": "autos"}],
        densities=[0.1],
        seeds=[0],
    )
    out = tmp_path / "out"
    run_bench(cfg, out)
    before = _cells(out)
    autos_id = next(c for c in before if "__autos__" in c)
    old_sha = json.loads((scorer / "card.json").read_text())["weights_sha256"]
    assert before[autos_id]["method_identity"]["scorer_sha256"] == old_sha
    magnitude = next(v for c, v in before.items() if "__magnitude__" in c)
    assert set(magnitude["method_identity"]) == {"config_sha256"}  # its hyperparameters as resolved, no scorer

    # "retrain": another valid scorer under the same path
    shutil.rmtree(scorer)
    shutil.copytree(ROOT / "trained_scorers" / "autos_mlp_fmnist_all", scorer)
    records, missing = collect(cfg, out)
    assert missing == [autos_id] and len(records) == 1  # the stale cell is not reported
    run_bench(cfg, out)
    after = _cells(out)
    assert set(after) == set(before)  # same ids
    new_sha = json.loads((scorer / "card.json").read_text())["weights_sha256"]
    assert after[autos_id]["method_identity"]["scorer_sha256"] == new_sha != old_sha
    stale = list((out / "cells_stale").glob(f"{autos_id}.*.json"))
    assert len(stale) == 1 and json.loads(stale[0].read_text()) == before[autos_id]  # nothing lost


def test_a_card_edit_that_moves_the_masks_recomputes_the_cells(tmp_path: Path) -> None:
    """``train-scorer --add-unit-head --unit-scale`` rewrites the card and leaves the weights' hash: the
    bench kept the old scale's cell. A cell made before the card was hashed (2026-12-04) or before cells
    recorded any identity (2026-12-01) cannot show it was made with this card: it is recomputed (helper:
    such cells were reused after the scorer changed)."""
    from autosparse.bench.cells import read_current_cell

    scorer = tmp_path / "scorer"
    shutil.copytree(ROOT / "trained_scorers" / "autos_mlp", scorer)
    cfg = tiny_config(
        methods=[{"method": "autos", "hparams": {"scorer": str(scorer)}, "label": "autos"}], densities=[0.1], seeds=[0]
    )
    out = tmp_path / "out"
    run_bench(cfg, out)
    (cell,) = (out / "cells").glob("*.json")
    identity = json.loads(cell.read_text())["method_identity"]
    assert identity["card_sha256"]
    older = {k: v for k, v in identity.items() if k != "card_sha256"}  # a cell written before 2026-12-04
    record = json.loads(cell.read_text())
    cell.write_text(json.dumps({**record, "method_identity": older}))
    assert read_current_cell(cell, identity) is None
    cell.write_text(json.dumps({k: v for k, v in record.items() if k != "method_identity"}))
    assert read_current_cell(cell, identity) is None
    cell.write_text(json.dumps(record))
    assert read_current_cell(cell, identity) is not None
    card = json.loads((scorer / "card.json").read_text())
    card["units"]["scale"] = 0.123  # what the unit head's rescaling writes
    (scorer / "card.json").write_text(json.dumps(card))
    records, missing = collect(cfg, out)
    assert missing and not records
    # a key recorded but no longer in the identity (evidence taken off the card) makes a cell stale too
    assert read_current_cell(cell, {k: v for k, v in identity.items() if k != "scorer_sha256"}) is None


def test_a_changed_default_recomputes_a_cell_and_older_cells_are_judged_by_their_config(tmp_path: Path) -> None:
    """A default added or changed since a cell (autos' rehome, 2026-12-03) changes masks that the
    hparams as written, and so the cell id, do not show: the old cell was reused (helper)."""
    from autosparse.bench.cells import read_current_cell

    cfg = tiny_config(methods=["magnitude"], densities=[0.1], seeds=[0])
    out = tmp_path / "out"
    run_bench(cfg, out)
    (cell,) = (out / "cells").glob("*.json")
    record = json.loads(cell.read_text())
    (job,) = plan_jobs(cfg.validate(), out)
    identity = job.spec.method_identity()
    assert read_current_cell(cell, identity) is not None
    # a cell from before cells recorded an identity: judged by the configuration it recorded
    bare = {k: v for k, v in record.items() if k != "method_identity"}
    cell.write_text(json.dumps(bare))
    assert read_current_cell(cell, identity) is not None
    # a field added since, at its default, changed nothing it measured (review: every 2026-11 cell was recomputed)
    older = {k: v for k, v in record["pruner_config"].items() if k != "rescale_normalized"}
    assert len(older) < len(record["pruner_config"])
    cell.write_text(json.dumps({**bare, "pruner_config": older}))
    assert read_current_cell(cell, identity) is not None and not job.missing()
    assert "_defaults" not in json.dumps(record)  # what judges old cells is never recorded in new ones
    cell.write_text(json.dumps({**bare, "pruner_config": {**record["pruner_config"], "scope": "erk"}}))
    assert read_current_cell(cell, identity) is None and job.missing()
    # one recording neither (the oldest) cannot be judged by it, and is kept
    cell.write_text(json.dumps({k: v for k, v in bare.items() if k != "pruner_config"}))
    assert read_current_cell(cell, identity) is not None


def test_a_missing_scorer_does_not_stop_planning(tmp_path: Path) -> None:
    """A scorer a later step trains (the demo's) or that is missing: ids plan (running refuses it: preflight)."""
    cfg = tiny_config(methods=["magnitude", {"method": "autos", "hparams": {"scorer": str(tmp_path / "later")}}])
    jobs = plan_jobs(cfg.validate(), tmp_path / "out")
    assert all(j.missing() for j in jobs) and jobs[-1].spec.method_identity() is None


def test_a_broken_scorer_fails_before_any_cell_trains(tmp_path: Path, train_calls: list[str]) -> None:
    scorer = tmp_path / "scorer"
    shutil.copytree(ROOT / "trained_scorers" / "autos_mlp", scorer)
    (scorer / "model.safetensors").unlink()
    cfg = tiny_config(methods=["magnitude", {"method": "autos", "hparams": {"scorer": str(scorer)}}], seeds=[0])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing") as err:
        run_bench(cfg, tmp_path / "out")
    assert train_calls == [] and not list((tmp_path / "out").glob("cells/*.json"))
    # the message names the row and how to run every other one
    assert str(err.value).startswith("bench row 'autos(scorer=") and str(err.value).endswith("--methods magnitude")


def test_every_row_that_cannot_run_is_named_in_one_error(tmp_path: Path, train_calls: list[str]) -> None:
    # an unknown scorer name (UnknownNameError) and a missing directory: both rows, one ConfigError
    methods = [
        "magnitude",
        {"method": "autos", "hparams": {"scorer": "nosuch"}, "label": "typo"},
        {"method": "autos", "hparams": {"scorer": str(tmp_path / "later")}, "label": "later"},
    ]
    with pytest.raises(
        ConfigError,
        match=r"bench row 'typo': unknown scorer 'nosuch'.*bench row 'later': .*"
        r"or leave them out: --methods magnitude$",
    ):
        run_bench(tiny_config(methods=methods, seeds=[0]), tmp_path / "out")
    assert train_calls == []


def test_a_current_cell_written_meanwhile_is_not_set_aside_as_stale(tiny_run, tmp_path: Path) -> None:
    # two bench processes on one folder: the later writer found the earlier one's (current) cell
    from autosparse.bench.cell_records import set_aside_stale

    _, out, _ = tiny_run
    out = _copy(out, tmp_path)
    cell = next((out / "cells").glob("*__random__*.json"))
    set_aside_stale(cell, None)
    assert cell.exists() and not (out / "cells_stale").exists()
    record = json.loads(cell.read_text())
    record["method_identity"] = {"scorer_sha256": "old"}
    cell.write_text(json.dumps(record))
    set_aside_stale(cell, {"scorer_sha256": "new"})  # a real stale cell still moves
    assert not cell.exists() and len(list((out / "cells_stale").glob("*.json"))) == 1


def test_a_job_finished_by_another_process_after_the_plan_counts_as_done_elsewhere(tiny_run, tmp_path: Path) -> None:
    # it was counted nowhere: "3 cells: 0 were done, 1 jobs ran now, 1 ran in another bench process"
    from autosparse.bench.cells import execute_job
    from autosparse.core.claims import is_elsewhere
    from autosparse.core.executors import JobOutcome

    cfg, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    job = plan_jobs(cfg, dst)[0]  # every cell of it already on disk, as another process left it
    value = execute_job(job)
    assert value["skipped"] and is_elsewhere(JobOutcome(job.key, True, value))


_HOLDER = """
import os, sys, time
import yaml
from autosparse.bench import plan_jobs
from autosparse.bench.cells import claim_path, execute_job
from autosparse.bench.config import bench_config_from_dict
from autosparse.core.claims import claim

out, key, finish = sys.argv[1], sys.argv[2], sys.argv[3] == "finish"
cfg = bench_config_from_dict(yaml.safe_load(open(sys.argv[4])))
job = {j.key: j for j in plan_jobs(cfg, out, threads=1)}[key]
go = sys.argv[5]
with claim(claim_path(out, job.claim_key)) as mine:
    assert mine
    print("claimed", flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.05)  # held until the other process has seen it held and waits for it
    if finish:
        execute_job(job)  # claims it again (re-entrant) and writes its cell
"""


@contextlib.contextmanager
def _job_held_by_another_process(out: Path, key: str, cfg: BenchConfig, tmp_path: Path, *, finish: bool = True):
    """Another process holds ``key``'s claim and lets it go (computing the job first with ``finish``)
    once this one logs that it waits; yields that process."""
    import subprocess
    import sys

    from autosparse.core.config_record import dump_yaml

    (tmp_path / "bench.yaml").write_text(dump_yaml(cfg))
    go = tmp_path / "go"
    args = [str(out), key, "finish" if finish else "quit", str(tmp_path / "bench.yaml"), str(go)]
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT)

    class ReleaseWhenWaiting(logging.Handler):  # the holder goes on once this process waits for it
        def emit(self, record: logging.LogRecord) -> None:
            if "in progress elsewhere" in record.getMessage():
                go.touch()

    handler = ReleaseWhenWaiting()
    logging.getLogger("autosparse").addHandler(handler)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "claimed"
        yield child
    finally:
        logging.getLogger("autosparse").removeHandler(handler)
        go.touch()
        assert child.wait(timeout=120) == 0


@pytest.mark.parametrize("finish", [True, False], ids=["holder-finishes", "holder-gives-up"])
def test_two_bench_processes_divide_the_grid(
    tiny_run, tmp_path: Path, train_calls: list[str], caplog: pytest.LogCaptureFixture, finish: bool
) -> None:
    # a second bench process on the folder holds one missing cell's job: this one computes the
    # other missing cell, waits for the held one, and computes it only if the holder gave it up

    cfg, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    held = next(c for c in _cells(dst) if "__random__d0.1__s0__" in c)  # the first job of the plan
    other = next(c for c in _cells(dst) if "__magnitude__d0.02__s1__" in c)
    for c in (held, other):
        (dst / "cells" / f"{c}.json").unlink()
    with (
        _job_held_by_another_process(dst, held, cfg, tmp_path, finish=finish) as child,
        caplog.at_level("INFO", logger="autosparse"),
    ):
        run = run_bench(cfg, dst)
    cells = _cells(dst)
    assert held in cells and other in cells and run.ok
    assert any("in progress elsewhere" in r.getMessage() for r in caplog.records)
    if finish:
        assert len(train_calls) == 1 and run.jobs_run == 1 and run.jobs_elsewhere == 1
        assert cells[held]["written_by"].startswith(f"pid {child.pid} ")
    else:
        assert len(train_calls) == 2 and run.jobs_run == 2 and run.jobs_elsewhere == 0
        assert cells[held]["written_by"].startswith("pid ") and not cells[held]["written_by"].startswith(
            f"pid {child.pid} "
        )
        assert any("without finishing" in r.getMessage() for r in caplog.records)


def test_a_second_label_of_a_computation_another_process_holds_waits_for_it(
    tmp_path: Path, train_calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # claims went by the row's label: the second label computed the same cell beside the holder

    cfg = tiny_config(methods=["random", {"method": "random", "label": "again"}], densities=[0.1], seeds=[0])
    out = tmp_path / "b"
    first = plan_jobs(cfg, out)[0]
    with (
        _job_held_by_another_process(out, first.key, cfg, tmp_path) as child,
        caplog.at_level("INFO", logger="autosparse"),
    ):
        run = run_bench(cfg, out)
    cells = _cells(out)
    assert train_calls == [] and run.jobs_run == 0 and run.jobs_elsewhere == 2 and not run.report.missing
    assert len(cells) == 2 and all(c["written_by"].startswith(f"pid {child.pid} ") for c in cells.values())


@pytest.mark.slow
def test_two_labels_of_one_computation_are_computed_once_by_process_workers(tmp_path: Path) -> None:
    cfg = tiny_config(methods=["random", {"method": "random", "label": "again"}], densities=[0.1], seeds=[0])
    run = run_bench(cfg, tmp_path / "b", executor="process", workers=2)
    cells = list(_cells(tmp_path / "b").values())
    assert run.jobs_run == 1 and run.jobs_same == 1 and run.jobs_elsewhere == 0
    assert len(cells) == 2 and cells[0]["written_by"] == cells[1]["written_by"]


def test_a_bad_device_fails_the_bench_before_any_cell(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        run_bench(tiny_config(train={**TINY["train"], "device": "gpu"}), tmp_path / "b")
    assert not (tmp_path / "b" / "cells").exists()


def test_the_report_says_how_much_data_the_cells_saw(tiny_run) -> None:
    _, out, _ = tiny_run
    assert (
        "a stratified subset of 512 training examples, accuracy on 256 test examples" in (out / "report.md").read_text()
    )


def test_layer_density_panels_keep_one_colour_per_method_and_list_every_method(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A method missing from the first panel lost its legend entry and shifted every colour after it."""
    from autosparse.bench import plots

    drawn: list[tuple[str, str]] = []
    real = plots._save

    def keep(fig, path):
        for ax in fig.axes:
            drawn.extend(
                (line.get_label(), line.get_color()) for line in ax.get_lines() if not line.get_label().startswith("_")
            )
        legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
        drawn.append(("legend", ",".join(legend)))
        return real(fig, path)

    layers = ["a", "b"]
    per_density = {0.1: {"random": {"a": 0.1, "b": 0.1}}, 0.05: {"magnitude": {"a": 0.05}, "random": {"a": 0.05}}}
    monkeypatch.setattr(plots, "_save", keep)
    plots.plot_layer_densities(tmp_path / "l.png", layers, per_density, title="t")
    colours = {}
    for label, colour in drawn[:-1]:
        assert colours.setdefault(label, colour) == colour, label
    assert drawn[-1] == ("legend", "random,magnitude") and (tmp_path / "l.png").exists()


def test_the_folder_grid_renames_one_to_one_and_keeps_every_new_row() -> None:
    from autosparse.bench.runner import _union

    def row(label: str) -> dict:
        return {"method": "synflow", "hparams": {}, "label": label}

    assert [r["label"] for r in _union("methods", [row("A")], [row("B")])] == ["B"]  # a rename
    # not one to one: nothing renamed and no new row dropped (the first version kept only A)
    assert [r["label"] for r in _union("methods", [row("A")], [row("B"), row("C")])] == ["A", "B", "C"]
    assert [r["label"] for r in _union("methods", [row("A"), row("B")], [row("C")])] == ["A", "B", "C"]
    assert _union("datasets", ["fmnist"], ["fashion-mnist"]) == ["fashion-mnist"]
    assert _union("seeds", [0, 1], [1, 2]) == [0, 1, 2]


def test_a_diverged_cell_is_strict_json_marked_and_not_the_best(tmp_path: Path, monkeypatch) -> None:
    """A NaN loss was written as a bare NaN (JSON other readers refuse), and a diverged row's chance
    accuracy was bolded as the column's best (and drawn in the plot as an ordinary point)."""
    import autosparse.bench.report as report_module

    drawn: list = []
    real = report_module.plot_accuracy
    monkeypatch.setattr(
        report_module, "plot_accuracy", lambda p, series, *a, **k: drawn.extend(series) or real(p, series, *a, **k)
    )
    methods = ["random", {"method": "snip", "label": "snip | wild"}, "imp"]  # imp: its IRP round's divergence
    cfg = tiny_config(methods=methods, densities=[0.1], seeds=[0], train={"epochs": 1, "lr": 1e6, "num_threads": 1})
    run_bench(cfg, tmp_path / "b")
    assert [s.diverged for s in drawn] == [[True]] * 3  # drawn hollow and apart, as the table marks them ‡
    for path in [*(tmp_path / "b" / "cells").glob("*.json"), tmp_path / "b" / RESULTS_JSON]:
        json.loads(path.read_text(), parse_constant=pytest.fail)  # a bare NaN or Infinity fails here
    cells = list(_cells(tmp_path / "b").values())
    assert all(c["diverged"] for c in cells)
    report = (tmp_path / "b" / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith(("| random", "| snip"))][:2]  # accuracy
    assert rows[0].count(" | ") == rows[1].count(" | ") == 1, rows  # "snip \| wild" stays one cell
    assert all("‡" in row and "**" not in row for row in rows), rows
    assert "diverged" in (tmp_path / "b" / RESULTS_CSV).read_text().splitlines()[0]


def test_labels_are_literal_in_the_tables_and_stale_figures_go(tmp_path: Path, monkeypatch) -> None:
    """A row `random_*uniform*` rendered italic; a renamed model's figures stayed in plots/, unreferenced; and
    a plot's title said "2 seeds" over the one seed that had finished."""
    import autosparse.bench.report as report_module
    from autosparse.bench.contest import contest_table, contests
    from autosparse.bench.report import accuracy_table, write_report

    rows = [{"method": "random", "label": "random_*uniform*"}, {"method": "magnitude", "label": "mag | x"}]
    cfg = tiny_config(methods=[*rows, "autos"], densities=[0.1], seeds=[0, 1])
    records = [
        {"model": "m", "dataset": "d", "label": label, "density": 0.1, "seed": 0, "test_accuracy": acc}
        for label, acc in (("random_*uniform*", 0.5), ("mag | x", 0.4), ("autos", 0.45))
    ]
    table = accuracy_table(cfg, records, "m", "d")
    assert "| random\\_\\*uniform\\* | **50.0** (n=1) |" in table and "| mag \\| x | 40.0 (n=1) |" in table
    verdict = contest_table(contests(cfg, records, "m", "d"))
    assert "| autos (lacks seed 1) | 90% | random\\_\\*uniform\\* 50.0 |" in verdict
    # a report of a folder holding a figure of a model no longer in the grid, and a file of someone else's
    out = tmp_path / "b"
    grid = tiny_config(methods=["random"], densities=[0.1], seeds=[0], n_train=128, n_test=64)
    run_bench(grid, out)
    stale, other = out / "plots" / "accuracy__gone__fake-fashion-mnist.png", out / "plots" / "mine.png"
    stale.write_bytes(b"old"), other.write_bytes(b"keep")
    titles: list[str] = []
    real = report_module.plot_accuracy
    monkeypatch.setattr(report_module, "plot_accuracy", lambda *a, **k: titles.append(k["title"]) or real(*a, **k))
    report = write_report(tiny_config(methods=["random"], densities=[0.1], seeds=[0, 1], n_train=128, n_test=64), out)
    assert not stale.exists() and other.exists() and all(p.exists() for p in report.plots)
    assert titles and "(1 of 2 seeds finished, 1 epoch)" in titles[0]


def test_a_figure_that_cannot_be_drawn_removes_no_figure(tmp_path: Path, monkeypatch) -> None:
    """A full disk while drawing the per-layer figure deleted both figures, the accuracy one just
    redrawn among them, as stale (review)."""
    import errno

    import autosparse.bench.report as report_module
    from autosparse.bench.report import write_report

    out = tmp_path / "b"
    grid = tiny_config(methods=["random"], densities=[0.1], seeds=[0], n_train=128, n_test=64)
    run_bench(grid, out)
    figures = sorted((out / "plots").glob("*.png"))
    assert len(figures) == 2

    def broken(*args, **kwargs):
        raise RuntimeError("no font")

    monkeypatch.setattr(report_module, "plot_layer_densities", broken)
    write_report(grid, out)
    assert sorted((out / "plots").glob("*.png")) == figures

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report_module, "plot_layer_densities", full)
    with pytest.raises(OSError):  # a full disk is no plotting problem: the command says so, and fails
        write_report(grid, out)
    assert sorted((out / "plots").glob("*.png")) == figures


def test_an_older_cell_is_read_with_added_fields_as_they_behaved_then(tmp_path: Path) -> None:
    """A field added with a default that changed masks (rescale_normalized: before it, rescale=True rescaled
    every layer) read at its default made a pre-change cell current (review); one that changed nothing for
    the cell (rescale off) keeps it current."""
    import dataclasses as dc

    from autosparse.bench.cell_records import read_current_cell
    from autosparse.bench.cells import CellData, CellSpec
    from autosparse.pruners.registry import make_pruner
    from autosparse.task import ModelSpec
    from autosparse.training.trainer import TrainConfig

    def old_cell(rescale: bool) -> tuple[Path, dict]:
        spec = CellSpec(
            model=ModelSpec("mlp", {"widths": [8]}),
            data=CellData("fake:fashion-mnist"),
            method=MethodSpec("synflow", {"rescale": rescale}),
            seed=0,
            train=TrainConfig(epochs=1),
            density=0.1,
        )
        now = dc.asdict(make_pruner("synflow", {"rescale": rescale}).config)
        before = {k: v for k, v in json.loads(json.dumps(now)).items() if k != "rescale_normalized"}
        cell = tmp_path / f"c{rescale}.json"
        reported = {"model": "mlp-widths8", "dataset": "fake:fashion-mnist", "label": "synflow", "density": 0.1}
        record = {"cell_id": cell.stem, "method": "synflow", "pruner_config": before, "seed": 0, "test_accuracy": 0.5}
        cell.write_text(json.dumps({**record, **reported}))
        return cell, spec.method_identity()

    cell, identity = old_cell(rescale=True)
    assert read_current_cell(cell, identity) is None  # trained with every layer rescaled: recomputed
    cell, identity = old_cell(rescale=False)
    assert read_current_cell(cell, identity) is not None  # the field changed nothing for it


def test_check_loads_the_scorer_of_a_row_whose_cells_are_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row whose cells were all done skipped the scorer check, so `--check` printed "every row's
    method and scorer loads" for a relative scorer path that loaded nowhere from here (helper); it now
    names such rows and, as a run does, reuses their cells (review)."""
    from autosparse.bench.cells import BenchJob
    from autosparse.bench.runner import plan_bench

    monkeypatch.setattr(BenchJob, "is_complete", lambda self: True)  # every cell done, as in a finished folder
    bad = {**TINY, "methods": ["random", {"method": "autos", "hparams": {"scorer": "scorer_not_here"}}]}
    cfg_path = tmp_path / "b.yaml"
    cfg_path.write_text(yaml.safe_dump(bad))
    assert main(["bench", "--config", str(cfg_path), "--out", str(tmp_path / "o"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "every row still to compute loads" in out and "every row's method and scorer loads" not in out
    assert "note: bench row 'autos(scorer=scorer_not_here)' does not load here" in out
    assert "its cells are done and are reused as they are" in out
    # as a run does: it needs no scorer to reuse done cells, so --check fails exactly where a run would
    assert plan_bench(bench_config_from_dict(bad), tmp_path / "o").todo == []


def test_a_bench_built_in_python_takes_what_its_yaml_takes() -> None:
    """BenchConfig(methods=["random"]) failed on a name's missing .is_imp; one dataset read as its letters;
    seeds ["0"] and densities ["0.1"] failed every cell after the folder was made (Python-jobs hunt)."""
    python = BenchConfig(
        models="mlp", methods=["random", {"method": "snip"}], datasets="fake:fashion-mnist", seeds=0, densities=0.1
    )
    yaml_like = tiny_config(
        models=["mlp"], methods=["random", "snip"], datasets=["fake:fashion-mnist"], seeds=[0], densities=[0.1]
    )
    assert (python.models, python.methods, python.datasets, python.seeds, python.densities) == (
        yaml_like.models,
        yaml_like.methods,
        yaml_like.datasets,
        yaml_like.seeds,
        yaml_like.densities,
    )
    # the short forms and comma lists YAML takes (review)
    short = BenchConfig(methods=[{"synflow": {"rounds": 10}}, "snip"])
    assert [(m.method, m.hparams) for m in short.methods] == [("synflow", {"rounds": 10}), ("snip", {})]
    assert [m.method for m in BenchConfig(methods="snip,synflow").methods] == ["snip", "synflow"]
    for bad, said in (({"seeds": ["0"]}, "seeds are integers"), ({"densities": ["0.1"]}, "densities are numbers")):
        with pytest.raises(ConfigError, match=said):
            BenchConfig(**bad)


def test_report_commands_run_from_the_folder_its_relative_paths_are_read_from(tmp_path: Path, monkeypatch) -> None:
    """bench.yaml keeps a row's scorer path as written (cell ids hash it so); the report's commands, run
    from another folder, could not find it once a cell was missing."""
    from autosparse.bench.report import write_report
    from autosparse.bench.runner import record_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sc").mkdir()
    rows = ["random", {"method": "autos", "hparams": {"scorer": "sc"}}]
    grid = tiny_config(methods=rows, densities=[0.1], seeds=[0], n_train=128, n_test=64)
    for folder in ("b", "c"):  # as a run leaves them: the grid recorded
        (tmp_path / folder).mkdir()
        record_config(tmp_path / folder, grid)
    text = write_report(grid, tmp_path / "b").path.read_text()
    assert f"cd {tmp_path.as_posix()} && autosparse bench --config {tmp_path.as_posix()}/b/bench.yaml" in text
    assert f"(`cd {tmp_path.as_posix()} && autosparse bench --out" in text  # the missing cells' line too
    absolute = tiny_config(methods=["random", {"method": "autos", "hparams": {"scorer": str(tmp_path / "sc")}}])
    text = write_report(absolute, tmp_path / "c").path.read_text()
    assert "\nautosparse bench --config" in text and "cd " not in text


def test_a_bench_yaml_cut_short_is_refused_not_read_as_another_grid(tiny_run, tmp_path: Path, capsys) -> None:
    """Cut in half it still parsed, as a grid whose defaults filled what was cut: --check said valid,
    --report-only rewrote the report with every cell missing, and a run computed another recipe's cells
    beside the old ones (hunt)."""
    from autosparse.bench.outputs import RECORD_HEAD, RECORD_TAIL

    _, out, _ = tiny_run
    dst = _copy(out, tmp_path)
    text = (dst / "bench.yaml").read_text()
    assert text.startswith(RECORD_HEAD + "\n") and text.endswith(RECORD_TAIL + "\n")
    (dst / "bench.yaml").write_text(text[: len(text) // 2])
    report = (dst / "report.md").read_text()
    for extra in ([], ["--report-only"], ["--check"]):
        assert main(["bench", "--out", str(dst), *extra]) == 2
    with pytest.raises(ConfigError, match=r"bench.yaml is cut short .*restore it from a copy"):
        run_bench(tiny_config(), dst)
    assert (dst / "report.md").read_text() == report
    (dst / "bench.yaml").write_text(text + "\n\n")  # blank lines an editor added after the last mark (review)
    assert main(["bench", "--out", str(dst), "--check"]) == 0
    (dst / "bench.yaml").write_text(text[: len(text) // 2])
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))  # --report-only with a config read it first (review)
    assert main(["bench", "--config", str(tmp_path / "tiny.yaml"), "--out", str(dst), "--report-only"]) == 2
    assert "is cut short" in capsys.readouterr().err
    hand = text.split("\n", 1)[1].replace(RECORD_TAIL, "")  # without the marks (by hand, or older): read as it is
    (dst / "bench.yaml").write_text(hand)
    assert main(["bench", "--out", str(dst), "--check"]) == 0


def test_the_table_and_the_verdict_print_one_mean_and_the_bold_needs_the_most_seeds() -> None:
    """Accuracies 0.797 and 0.81 printed 80.4 in the table (100 * mean) and 80.3 in the verdict (mean of
    100 * each); a one-seed row was bold over a two-seed one whose mean is over other seeds (helper), and
    bolding among the rows with the most seeds gave it to the worst row (review): no bold in such a column."""
    from autosparse.bench.contest import contests
    from autosparse.bench.report import accuracy_table

    cfg = tiny_config(methods=["magnitude", "snip", "autos"], densities=[0.1], seeds=[0, 1])

    def records(autos: tuple[float, ...]) -> list[dict]:
        accs = {"magnitude": (0.797, 0.81), "snip": (0.70, 0.71), "autos": autos}
        return [
            {"model": "m", "dataset": "d", "label": label, "density": 0.1, "seed": s, "test_accuracy": a}
            for label, values in accs.items()
            for s, a in enumerate(values)
        ]

    (row,) = contests(cfg, records((0.70, 0.70)), "m", "d")
    assert row.best == "magnitude" and f"| magnitude | **{row.best_mean:.1f} ± " in accuracy_table(
        cfg, records((0.70, 0.70)), "m", "d"
    )
    table = accuracy_table(cfg, records((0.99,)), "m", "d")  # one seed, above: no contest with two-seed means
    assert "| autos | 99.0 (n=1) |" in table and "**" not in table


def test_an_imp_cell_after_a_diverged_round_is_marked(tmp_path: Path) -> None:
    """IMP's round 0 diverged (lr 3): its later masks were chosen from the diverged weights, yet the cells
    whose own round trained calmly said `diverged: null`, the dense line had no mark, and the verdict
    measured a gap to them (helper)."""
    cfg = tiny_config(methods=["random", "imp"], seeds=[0], train={"epochs": 1, "lr": 3.0, "num_threads": 1})
    run_bench(cfg, tmp_path / "b")
    imp = [c for c in _cells(tmp_path / "b").values() if c["label"] == "imp"]
    assert len(imp) == 2 and all(c["dense_diverged"] for c in imp)
    assert all(c["diverged"] for c in imp), [c["diverged"] for c in imp]
    dense = [ln for ln in (tmp_path / "b" / "report.md").read_text().splitlines() if ln.startswith("Dense network")]
    assert len(dense) == 1 and "‡" in dense[0]


def test_a_recorded_grid_names_the_cells_of_its_run(tmp_path: Path) -> None:
    """fmnist_lenet_baselines leaves train.epochs out: its recorded bench.yaml read back as epochs 8.0, another
    hash, so a rerun into the folder or its report named none of the cells the run had made (review)."""
    from autosparse.bench.runner import record_config
    from autosparse.core.config import load_config

    cfg = BenchConfig.from_yaml(ROOT / "configs" / "bench" / "fmnist_lenet_baselines.yaml")
    record_config(tmp_path, cfg)
    back = load_config(BenchConfig, tmp_path / "bench.yaml")  # as `bench --config DIR/bench.yaml` reads it
    want = [c for j in plan_jobs(cfg, "/x") for c in j.cell_ids()]
    assert [c for j in plan_jobs(back, "/x") for c in j.cell_ids()] == want
    # a record older code wrote (epochs: 8), read as the folder's own grid
    from autosparse.bench.outputs import record_text
    from autosparse.bench.runner import _recorded_grid
    from autosparse.core.config_record import dump_yaml

    (tmp_path / "bench.yaml").write_text(record_text(dump_yaml(cfg)))
    old = _recorded_grid(tmp_path)
    assert old is not None and [c for j in plan_jobs(old, "/x") for c in j.cell_ids()] == want


def test_a_folder_recorded_before_record_dict_keeps_its_cells_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bench --out DIR` read a record that left epochs out (`epochs: 8`, written before record_dict) as 8.0:
    "0 already in DIR", every cell computed again and the record rewritten as 8.0 (review)."""
    from autosparse.bench.outputs import record_text
    from autosparse.cli import main
    from autosparse.core.config_record import dump_yaml

    train = {"batch_size": 64, "num_threads": 1}  # epochs left out: the int default 8
    cfg = tiny_config(methods=["random"], densities=[0.1], seeds=[0], n_train=128, n_test=64, train=train)
    out = tmp_path / "b"
    run_bench(cfg, out)
    (out / "bench.yaml").write_text(record_text(dump_yaml(cfg)))  # as older code wrote it
    for argv in (["--out", str(out)], ["--config", str(out / "bench.yaml"), "--out", str(out)]):
        assert main(["bench", *argv, "--check"]) == 0
        assert "1 already in" in capsys.readouterr().out
