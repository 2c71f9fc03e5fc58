"""The CLI as a user runs it: subprocesses, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "autosparse.cli"]
SMALL = ["--model", "mlp", "--model-kwargs", '{"widths": [16]}', "--dataset", "fake:fashion-mnist"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def assert_user_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_help_on_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    from autosparse.cli import build_parser, main

    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"train", "prune", "gen", "store", "train-scorer", "methods"} <= set(subcommands)
    for sub in subcommands:
        with pytest.raises(SystemExit) as exit_:
            main([sub, "--help"])
        assert exit_.value.code == 0
        assert "usage: autosparse" in capsys.readouterr().out, sub


def test_prune_then_train_with_the_saved_mask(tmp_path) -> None:
    out = tmp_path / "m"
    proc = run("prune", *SMALL, "--method", "snip", "--sparsity", "0.9", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "kept 1270 of 12704 weights" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == round(0.1 * report["total"])
    proc = run("train", *SMALL, "--epochs", "0.2", "--masks", str(out), "--out", str(tmp_path / "t"))
    assert proc.returncode == 0, proc.stderr
    assert "density 0.1000" in proc.stdout
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["density"] == pytest.approx(0.1, abs=1e-3)


def test_unknown_model() -> None:
    assert_user_error(run("train", "--model", "lenet_300_10", "--dataset", "fake:fashion-mnist"), "lenet_300_100")


def test_unknown_dataset() -> None:
    assert_user_error(run("train", "--model", "mlp", "--dataset", "fashion-mnis"), "unknown dataset")


def test_unknown_method() -> None:
    assert_user_error(run("prune", *SMALL, "--method", "snipp", "--sparsity", "0.9"), "snip")


@pytest.mark.parametrize("flag", [["--density", "0"], ["--density", "1.5"], ["--sparsity", "1.0"]])
def test_density_outside_range(flag: list[str]) -> None:
    assert_user_error(
        run("prune", *SMALL, "--method", "random", *flag), "density" if "--density" in flag else "sparsity"
    )


def test_both_density_and_sparsity() -> None:
    assert_user_error(
        run("prune", *SMALL, "--method", "random", "--density", "0.1", "--sparsity", "0.9"), "exactly one"
    )


def test_mask_for_another_model(tmp_path) -> None:
    out = tmp_path / "m"
    assert run("prune", *SMALL, "--method", "random", "--sparsity", "0.5", "--out", str(out)).returncode == 0
    other = ["--model", "mlp", "--model-kwargs", '{"widths": [17]}', "--dataset", "fake:fashion-mnist"]
    assert_user_error(run("train", *other, "--masks", str(out), "--epochs", "0.1"), "another")


def test_missing_dataset(tmp_path) -> None:
    assert_user_error(run("train", "--model", "mlp", "--dataset", "cifar10", "--data-root", str(tmp_path)), "download")


def test_bad_hyperparameter_and_config_key(tmp_path) -> None:
    assert_user_error(run("prune", *SMALL, "--method", "synflow", "--sparsity", "0.9", "--hp", "roundz=3"), "rounds")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochz: 3\n")
    assert_user_error(run("train", "--config", str(cfg)), "epochs")
