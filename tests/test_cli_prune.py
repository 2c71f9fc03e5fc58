"""`autosparse prune`'s --out: what it refuses to write over, and what it writes there."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autosparse.core.errors import MaskError
from autosparse.core.masks import Masks

SMALL = ["--model", "mlp", "--model-kwargs", '{"widths": [16]}', "--dataset", "fake:fashion-mnist"]
REPO = Path(__file__).resolve().parents[1]


def prune(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from autosparse.cli import main

    code = main(["prune", *SMALL, "--method", "random", *args])
    return code, capsys.readouterr().err


def test_prune_refuses_folders_of_other_commands_and_files_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scorer = tmp_path / "scorer"
    shutil.copytree(REPO / "trained_scorers" / "autos_mlp", scorer)
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "metrics.json").write_text("{}")
    own = tmp_path / "own"
    own.mkdir()
    (own / "report.json").write_text('{"my": "quarterly numbers"}')
    for folder, needle in (
        (scorer, "holds a scorer"),
        (trained, "a training's result"),
        (own, "no `autosparse prune`"),
    ):
        code, err = prune(capsys, "--density", "0.5", "--out", str(folder))
        assert code == 2 and needle in err, err
    assert json.loads((own / "report.json").read_text()) == {"my": "quarterly numbers"}
    assert not (scorer / "masks.safetensors").exists()
    # its own earlier masks are replaced: a rerun with another density is the same folder's job
    mine = tmp_path / "mine"
    assert prune(capsys, "--density", "0.5", "--out", str(mine))[0] == 0
    assert prune(capsys, "--density", "0.25", "--out", str(mine))[0] == 0
    assert Masks.load(mine).density == pytest.approx(0.25, abs=0.01)


def test_a_dangling_link_is_refused_before_pruning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    code, err = prune(capsys, "--density", "0.5", "--out", str(link))
    assert code == 2 and "which does not exist" in err and "random:" not in capsys.readouterr().out


def test_out_from_a_yaml_expands_the_home_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "prune.yaml"
    config.write_text("density: 0.5\nout: ~/masks\n")
    assert prune(capsys, "--config", str(config))[0] == 0
    assert (tmp_path / "home" / "masks" / "masks.safetensors").is_file()
    assert not (tmp_path / "~").exists()


def test_a_collapsed_mask_writes_a_report_strict_json_readers_take(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m"
    assert prune(capsys, "--density", "1e-9", "--out", str(out))[0] == 0
    text = (out / "report.json").read_text()

    def refuse(constant: str) -> float:
        raise ValueError(constant)

    report = json.loads(text, parse_constant=refuse)  # no -Infinity, whatever the diagnostics measured
    assert report["meta"]["diagnostics"]["log10_paths"] is None
    assert Masks.load(out).kept >= 1  # and the folder still loads


def test_train_names_the_model_options_that_differ_not_the_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Masks that rescale θ0 fit the draw they were made on; where the draw differs by a model option
    (an init scheme), the error blamed --init-seed, which the user had right (helper)."""
    from autosparse.cli import main

    out = tmp_path / "m"
    assert prune(capsys, "--density", "0.5", "--hp", "rescale=true", "--out", str(out))[0] == 0
    code = main(["train", "--masks", str(out), "--model-kwargs", '{"widths": [16], "init": "torch"}', "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--model-kwargs '{\"widths\": [16]}'" in err and "--init-seed" not in err, err


def test_a_folder_mixing_two_saves_theta0_factors_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The digest covered the masks only: another save's init_factors under this one's report loaded (review)."""
    a, b = tmp_path / "a", tmp_path / "b"
    for out, seed in ((a, "0"), (b, "1")):
        assert prune(capsys, "--density", "0.5", "--hp", "rescale=true", "--init-seed", seed, "--out", str(out))[0] == 0
    assert Masks.load(a).init is not None
    (a / "init_factors.safetensors").write_bytes((b / "init_factors.safetensors").read_bytes())
    # random's masks depend on --seed only: the two folders differ in their factors alone, as in the review's case
    assert (a / "masks.safetensors").read_bytes() == (b / "masks.safetensors").read_bytes()
    with pytest.raises(MaskError, match="describes other masks"):
        Masks.load(a)


def test_an_out_named_like_a_mask_file_is_refused_before_pruning(tmp_path) -> None:
    """Masks.save refuses a folder named x.safetensors; prune said so only after pruning, losing the work (review)."""
    import subprocess
    import sys

    out = tmp_path / "m.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "autosparse.cli", "prune", "--model", "mlp", "--model-kwargs", '{"widths": [8]}',
         "--dataset", "fake:fashion-mnist", "--method", "random", "--density", "0.1", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "give a folder, e.g. --out" in proc.stderr, proc.stderr
    assert "kept" not in proc.stdout and not out.exists()  # before the pruning: no report printed


def test_an_unquoted_off_in_a_yaml_hp_is_said_to_need_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hp: {guard: off}` reached autos as 'False' and was "unknown autos guard 'False'"; the bench's hparams
    said to quote it, prune's hp did not (hunt). A boolean hyperparameter still takes false."""
    from autosparse.cli import main

    config = tmp_path / "p.yaml"
    config.write_text("method: autos\ndensity: 0.1\nhp: {guard: off}\n")
    assert main(["prune", *SMALL, "--config", str(config)]) == 2
    assert "hyperparameter guard takes text, got False: a YAML config reads an unquoted off" in capsys.readouterr().err
    config.write_text("method: snip\ndensity: 0.1\nhp: {rescale: false}\n")
    assert main(["prune", *SMALL, "--config", str(config)]) == 0
