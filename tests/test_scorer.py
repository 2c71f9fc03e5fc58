"""The MLP scorer end to end on a tiny real store: train, checkpoint, load, prune an unseen model."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from pathlib import Path

import pytest
import torch

from autosparse.cli import main as cli_main
from autosparse.core.errors import CheckpointError, ConfigError, SchemaMismatchError, StoreError, UnknownNameError
from autosparse.data import load_dataset, pruning_batch
from autosparse.models import build_model
from autosparse.pruners import prune
from autosparse.scorer.checkpoint import CARD_FILE, WEIGHTS_FILE
from autosparse.scorer.config import ScorerConfig
from autosparse.scorer.fit import listnet_loss
from autosparse.scorer.loaded import load_scorer
from autosparse.scorer.training import check_scorer_out, train_scorer
from autosparse.task import ModelSpec
from autosparse.training.irp import IRPConfig
from autosparse.training.trainer import TrainConfig
from data_gen.grid import GenConfig, generate

FEATS = ("abs_theta_rank", "snip_rank", "synflow_rank", "row_mass", "col_mass", "rel_depth")


def tiny_gen(prune_fraction: float) -> GenConfig:
    """Two small MLPs, three IRP rounds of one epoch each: a store in seconds."""
    return GenConfig(
        models=[ModelSpec("mlp", {"widths": [48, 24]}), ModelSpec("mlp", {"widths": [40]})],
        datasets=["fashion-mnist"],
        seeds=[0],
        n_train=1500,
        n_test=300,
        irp=IRPConfig(rounds=3, prune_fraction=prune_fraction),
        train=TrainConfig(epochs=1, num_threads=1),
        samples_per_class=3,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "s.zarr"
    outcomes = generate(tiny_gen(prune_fraction=0.6), path)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return path


@pytest.fixture(scope="module")
def scorer_dir(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("scorer") / "tiny"
    cfg = ScorerConfig(ranker_features=FEATS, steps=60, eval_every=30, alloc_steps=200, group_size=256)
    train_scorer(store, holdout="model_label=mlp-widths40", out=out, config=cfg)
    return out


def test_listnet_prefers_the_right_order() -> None:
    labels = torch.tensor([[0, 1, 2, 3]])
    good = listnet_loss(torch.tensor([[0.0, 1.0, 2.0, 3.0]]), labels, 2.0)
    bad = listnet_loss(torch.tensor([[3.0, 2.0, 1.0, 0.0]]), labels, 2.0)
    assert good < bad


def test_card_records_training_and_heldout_metrics(scorer_dir) -> None:
    card = json.loads((scorer_dir / CARD_FILE).read_text())
    assert card["arch"] == "mlp" and card["schema_version"] == 1
    assert len(card["training"]["train_runs"]) == 1 and len(card["training"]["val_runs"]) == 1
    # trained from Python, the card records that call, not the test runner's argv (Python-jobs hunt)
    assert card["training"]["command"].startswith("autosparse.scorer.training.train_scorer(")
    assert "holdout='model_label=mlp-widths40'" in card["training"]["command"]
    assert (
        card["training"]["torch_threads"] == torch.get_num_threads() and card["training"]["torch"] == torch.__version__
    )
    (run_metrics,) = card["metrics"].values()
    assert -1.0 <= run_metrics["spearman"] <= 1.0
    r = run_metrics["rounds"]["3"]
    assert 0.0 <= r["precision"] <= 1.0 and "precision_synflow" in r
    assert (scorer_dir / "training_curve.png").stat().st_size > 1000


def test_autos_prunes_an_unseen_model_exactly(scorer_dir) -> None:
    ds = load_dataset("fashion-mnist", n_train=500, n_test=100)
    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=1)
    data = pruning_batch(ds, samples_per_class=3)
    for density in (0.01, 0.002):
        masks = prune(model, "autos", density=density, data=data, scorer=str(scorer_dir))
        assert masks.kept == round(density * masks.total)
        assert not masks.empty_layers()
    first = prune(model, "autos", density=0.01, data=data, scorer=str(scorer_dir))
    again = prune(model, "autos", density=0.01, data=data, scorer=str(scorer_dir))
    assert all(torch.equal(again[n], m) for n, m in first.items())  # same seed, same mask


def test_autos_on_a_conv_net_with_borrowed_allocation(scorer_dir) -> None:
    ds = load_dataset("fake:cifar10", n_train=100, n_test=20)
    model = build_model("resnet20", (3, 32, 32), 10, seed=0, width=0.25)
    masks = prune(
        model,
        "autos",
        density=0.02,
        data=pruning_batch(ds, samples_per_class=2),
        scorer=str(scorer_dir),
        allocation="erk",
    )
    assert masks.kept == round(0.02 * masks.total) and not masks.empty_layers()


def test_tampered_weights_are_refused(scorer_dir, tmp_path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(scorer_dir, copy)
    raw = bytearray((copy / WEIGHTS_FILE).read_bytes())
    raw[-5] ^= 0xFF
    (copy / WEIGHTS_FILE).write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="modified"):
        load_scorer(copy)


def test_card_of_another_schema_is_refused(scorer_dir, tmp_path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(scorer_dir, copy)
    card = json.loads((copy / CARD_FILE).read_text())
    card["schema_version"] = 99
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(SchemaMismatchError, match="retrain"):
        load_scorer(copy)


def test_unknown_scorer_name() -> None:
    with pytest.raises(UnknownNameError, match="scorer"):
        load_scorer("no_such_scorer")


def test_scorer_path_that_does_not_exist_says_so(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist; pass a shipped scorer's name"):
        load_scorer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"holds no card\.json.*train a scorer there"):
        load_scorer(tmp_path / "empty")  # exists, but is not a scorer
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("mine")
    with pytest.raises(CheckpointError, match=r"holds no card\.json.*train one into a new folder"):
        load_scorer(tmp_path / "notes")  # training there would be refused: say what works
    with pytest.raises(CheckpointError, match="no scorer named ''"):
        load_scorer("")


def test_a_scorer_path_under_home_is_found(tmp_path, monkeypatch) -> None:
    # `scorer=~/s` (quoted, or in YAML) named no folder: "does not exist; … train one there" (hunt)
    from autosparse.scorer.checkpoint import SHIPPED_DIR, resolve_scorer

    shutil.copytree(SHIPPED_DIR / "autos_mlp", tmp_path / "mine")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_scorer("~/mine") == tmp_path / "mine"


def test_a_shipped_name_is_the_shipped_scorer_whatever_folder_the_user_is_in(tmp_path, monkeypatch, caplog) -> None:
    """A folder ./autos_mlp silently replaced the default scorer of every `autos` call made there."""
    from autosparse.scorer.checkpoint import SHIPPED_DIR, resolve_scorer

    shutil.copytree(SHIPPED_DIR / "autos_mlp_fmnist", tmp_path / "autos_mlp")
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("WARNING", logger="autosparse.scorer.checkpoint"):
        assert resolve_scorer("autos_mlp") == SHIPPED_DIR / "autos_mlp"
    assert any("pass ./autos_mlp" in r.getMessage() for r in caplog.records)
    local = (tmp_path / "autos_mlp").absolute()
    assert resolve_scorer("./autos_mlp") == local and resolve_scorer(Path("autos_mlp")) == local
    # resolved again downstream (load_checkpoint), the local folder stays the local one
    from autosparse.scorer.checkpoint import load_checkpoint, local_scorer

    card, _ = load_checkpoint(local_scorer("autos_mlp"))
    assert card.weights_sha256 == json.loads((local / "card.json").read_text())["weights_sha256"]
    assert card.weights_sha256 != json.loads((SHIPPED_DIR / "autos_mlp" / "card.json").read_text())["weights_sha256"]


def test_a_bad_out_or_feature_fails_before_training(store, tmp_path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        train_scorer(store, holdout=None, out=tmp_path / "afile", config=ScorerConfig(steps=1))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds other files and no scorer"):
        train_scorer(store, holdout=None, out=tmp_path / "other", config=ScorerConfig(steps=1))
    # what a run killed between writing the weights and the card leaves is retrained over, not refused
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.safetensors").write_bytes(b"partial")
    check_scorer_out(tmp_path / "half")
    # a trained network's folder holds a file of that name too: not a scorer's leftover (helper)
    (tmp_path / "half" / "metrics.json").write_text(json.dumps({"fingerprint": "f", "test_accuracy": 0.8}))
    with pytest.raises(ConfigError, match="holds the result of `autosparse train`"):
        check_scorer_out(tmp_path / "half")
    cfg = ScorerConfig(steps=1, ranker_features=("abs_theta_rank", "no_such_feature"))
    with pytest.raises(ConfigError, match=r"no_such_feature are not in store .*; its features: "):
        train_scorer(store, holdout=None, out=tmp_path / "new", config=cfg)
    assert not (tmp_path / "new").exists()  # refused before --out was made (it was left holding its lock)
    with pytest.raises(ConfigError, match="ranker_features names abs_theta_rank twice"):
        ScorerConfig(steps=1, ranker_features=("abs_theta_rank", "abs_theta_rank"))
    # a weight's or a row's feature trained the allocator on each layer's first weight, then `autos` failed
    # on it with a KeyError (hunt)
    with pytest.raises(
        ConfigError, match=r"not abs_theta_rank \(per weight\), row_mass \(per output unit\): give them to ranker"
    ):
        ScorerConfig(allocator_features=("log_fan_in", "abs_theta_rank", "row_mass"))


def test_a_finished_scorer_is_not_replaced_without_overwrite(store, scorer_dir, tmp_path, caplog, capsys) -> None:
    """Its card may hold evidence measured over hours of bench cells: retraining into it must be asked for."""
    copy = tmp_path / "done"
    shutil.copytree(scorer_dir, copy)
    card = json.loads((copy / CARD_FILE).read_text())
    card["evidence"] = {"points": [1]}
    (copy / CARD_FILE).write_text(json.dumps(card))
    before = (copy / CARD_FILE).read_text()
    with pytest.raises(ConfigError, match=r"already holds the trained scorer 'tiny' \(its card also holds evidence"):
        train_scorer(store, holdout=None, out=copy, config=ScorerConfig(ranker_features=FEATS, steps=1))
    assert (copy / CARD_FILE).read_text() == before  # refused before anything was written
    assert cli_main(["train-scorer", "--store", str(store), "--out", str(copy), "--steps", "1"]) == 2
    assert "already holds the trained scorer 'tiny'" in capsys.readouterr().err
    with caplog.at_level("WARNING", logger="autosparse.scorer.training"):
        cfg = ScorerConfig(ranker_features=FEATS, steps=1, alloc_steps=1, unit_head=False)
        train_scorer(store, holdout=None, out=copy, config=cfg, overwrite=True)
    assert any("replacing the scorer" in r.getMessage() for r in caplog.records)
    assert json.loads((copy / CARD_FILE).read_text())["evidence"] == {}
    # a card whose weights no longer match it is damage, not a killed save (a save moves its weights into
    # place before its card): it was replaced, evidence and all, without --overwrite (hunt)
    card = json.loads((copy / CARD_FILE).read_text())
    (copy / CARD_FILE).write_text(json.dumps({**card, "evidence": {"points": [1]}}))  # its own hash untouched
    (copy / WEIGHTS_FILE).write_bytes(b"partial")
    with pytest.raises(
        ConfigError, match=r"model.safetensors is missing or damaged .*card holds evidence.*--overwrite"
    ):
        check_scorer_out(copy)
    (copy / WEIGHTS_FILE).unlink()
    with pytest.raises(ConfigError, match="is missing or damaged"):
        check_scorer_out(copy)
    check_scorer_out(copy, overwrite=True)
    (copy / CARD_FILE).write_bytes(b"\x8a\xff not json")  # an unreadable card, beside no weights: nothing to keep
    check_scorer_out(copy)


def test_holdout_that_matches_nothing(store, tmp_path, caplog) -> None:
    with pytest.raises(StoreError, match="matches no complete run"):
        train_scorer(store, holdout="model=resnet20", out=tmp_path / "x", config=ScorerConfig(steps=1))
    # a misspelt key is named as the typo, with the keys the runs do record; an existing scorer in --out
    # is not announced as replaced first (the store and filter are checked before the output folder)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / CARD_FILE).write_text("{}")
    with (
        caplog.at_level("WARNING", logger="autosparse"),
        pytest.raises(StoreError, match=r"no run in .* records 'model_lable'.*keys the runs record: .*model_label"),
    ):
        train_scorer(store, holdout="model_lable=mlp", out=tmp_path / "x", config=ScorerConfig(steps=1))
    assert not [r for r in caplog.records if "replacing the scorer" in r.getMessage()]
    assert not [r for r in caplog.records if "model_lable" in r.getMessage()]  # said once, by the error (hunt)


def test_a_listed_value_that_matches_no_run_is_said(store, caplog) -> None:
    """`model_label=a,b` held out a's runs and said nothing of b, a typo or a net not generated yet, whose
    runs a later store would train on; the shipped cards' two conv holdouts were such values (hunt)."""
    from autosparse.scorer.data import open_split

    with caplog.at_level("WARNING", logger="autosparse.scorer.data"):
        _, val = open_split(str(store), "model_label=mlp-widths40,conv4-width0.375;seed=0,7")
    assert val is not None and val.n_runs == 1
    said = [r.getMessage() for r in caplog.records if "match" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("--holdout: model_label=conv4-width0.375, seed=7 match no run")
    caplog.clear()
    with caplog.at_level("WARNING", logger="autosparse.scorer.data"):
        open_split(str(store), "model_label=mlp-widths40", train_on="model_label=mlp-widths48x24,mlp-widths40")
    assert not [r for r in caplog.records if "match" in r.getMessage()]


def test_unit_head_is_trained_and_recorded(scorer_dir) -> None:
    card = json.loads((scorer_dir / CARD_FILE).read_text())
    assert card["units"]["features"] == card["allocator"]["features"]
    assert card["units"]["heldout"]["unit_log_error"] >= 0.0 and card["units"]["heldout"]["rows"] > 0
    scorer = load_scorer(scorer_dir)
    assert scorer.units is not None


def test_autos_units_learned_vs_off(scorer_dir) -> None:
    """The unit head changes which units stay alive, never the per-layer counts."""
    ds = load_dataset("fashion-mnist", n_train=500, n_test=100)
    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=1)
    data = pruning_batch(ds, samples_per_class=3)
    on = prune(model, "autos", density=0.01, data=data, scorer=str(scorer_dir), repair=0)
    off = prune(model, "autos", density=0.01, data=data, scorer=str(scorer_dir), repair=0, units="off")
    assert {n: int(m.sum()) for n, m in on.items()} == {n: int(m.sum()) for n, m in off.items()}
    assert on.meta["units"] == "learned" and off.meta["units"] == "off"
    with pytest.raises(Exception, match="units"):
        prune(model, "autos", density=0.01, data=data, scorer=str(scorer_dir), units="many")


def test_add_unit_head_keeps_ranker_and_allocator(store, scorer_dir, tmp_path) -> None:
    import shutil

    from safetensors.torch import load_file

    from autosparse.scorer.training import add_unit_head

    copy = tmp_path / "copy"
    shutil.copytree(scorer_dir, copy)
    before = load_file(str(copy / WEIGHTS_FILE))
    card = add_unit_head(copy, store)
    after = load_file(str(copy / WEIGHTS_FILE))
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith("units."))
    assert any(k.startswith("units.") for k in after) and card.units["heldout"]["rows"] > 0
    load_scorer(copy)  # the renewed hash verifies


def test_alive_unit_fractions_follow_the_labels() -> None:
    import numpy as np

    from autosparse.scorer.data import alive_unit_fractions

    # 3 units x 2 inputs; unit 0 keeps a weight to round 2, unit 1 to round 1, unit 2 none past round 0
    label = np.array([2, 0, 1, 1, 0, 0])
    assert alive_unit_fractions(label, [3, 2], 3) == [1.0, 2 / 3, 1 / 3]


def test_unit_scale_from_card_or_override(scorer_dir) -> None:
    from autosparse.core.errors import ConfigError
    from autosparse.features import compute_features

    scorer = load_scorer(scorer_dir)
    assert scorer.card.units["scale"] == ScorerConfig().unit_scale
    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=1)
    table = compute_features(model, None, names=list(scorer.card.allocator["features"]), input_shape=(1, 28, 28))
    card_scaled = scorer.unit_fractions(table, 0.01)
    raw = scorer.unit_fractions(table, 0.01, scale=1.0)
    assert all(0.0 <= a <= b <= 1.0 for a, b in zip(card_scaled, raw, strict=True))
    assert any(a < b for a, b in zip(card_scaled, raw, strict=True))
    with pytest.raises(ConfigError, match="unit_scale"):
        prune(model, "autos", density=0.01, data=None, scorer=str(scorer_dir), unit_scale=2.0)


def test_arch_registry_checks_configs_and_cards(scorer_dir, tmp_path) -> None:
    from autosparse.core.errors import ConfigError
    from autosparse.scorer.archs import Arch, arch_names, get_arch

    assert arch_names() == ("gnn", "mlp")
    assert all(isinstance(get_arch(n), Arch) and get_arch(n).name == n for n in arch_names())
    with pytest.raises(ConfigError, match="unknown scorer arch 'transformer'; use gnn or mlp"):
        ScorerConfig(arch="transformer")
    import shutil

    copy = tmp_path / "other_arch"
    shutil.copytree(scorer_dir, copy)
    card = json.loads((copy / CARD_FILE).read_text())
    card["arch"] = "transformer"
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="'transformer' scorer"):
        load_scorer(copy)


def test_same_seed_same_scorer(store, scorer_dir, tmp_path) -> None:
    """Training is a function of the store and the config: the weights come out bit for bit."""
    cfg = ScorerConfig(ranker_features=FEATS, steps=60, eval_every=30, alloc_steps=200, group_size=256)
    train_scorer(store, holdout="model_label=mlp-widths40", out=tmp_path / "again", config=cfg)
    assert (tmp_path / "again" / WEIGHTS_FILE).read_bytes() == (scorer_dir / WEIGHTS_FILE).read_bytes()
    assert (tmp_path / "again" / "metrics.json").read_text() == (scorer_dir / "metrics.json").read_text()


def test_the_mlp_path_never_imports_torch_geometric() -> None:
    """torch-geometric takes seconds to import; only a GNN scorer may pay for it."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from autosparse.api import prune\n"
        "from autosparse.models import build_model\n"
        "from autosparse.scorer.config import ScorerConfig\n"
        "ScorerConfig(arch='gnn')\n"
        "model = build_model('mlp', (1, 8, 8), 10, seed=0, widths=[16])\n"
        "prune(model, 'autos', density=0.1, data=(torch.randn(10, 1, 8, 8), torch.arange(10)))\n"
        "assert 'torch_geometric' not in sys.modules, 'torch_geometric was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_train_scorer_summary_explains_precision_only_when_its_table_has_it(
    store, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    # these runs stop at 6.4% density: the held-out table has Spearman only, no precision column
    from autosparse.cli import main as cli_main

    out_dir = str(tmp_path / "sc")
    args = ["train-scorer", "--store", str(store), "--out", out_dir, "--holdout", "model_label=mlp-widths40"]
    assert cli_main([*args, "--steps", "5", "--alloc-steps", "5", "--eval-every", "5"]) == 0
    out = capsys.readouterr().out
    assert "held-out ranking quality" in out and "read it as optimistic:" in out and "Spearman" in out
    assert "prec. @" not in out and "share of IMP's survivors" not in out
    assert (
        "Spearman only: precision is shown for rounds at <= 5% density; the deepest round measured is at 0.064" in out
    )
    assert "unit head: autos keeps 0.5 x the alive units IMP keeps" in out and "--add-unit-head --unit-scale S" in out


def test_allocator_ensemble_is_the_mean_of_its_members() -> None:
    from autosparse.scorer.nets import Allocator, AllocatorEnsemble

    torch.manual_seed(0)
    members = [Allocator(("a", "b"), (4,)) for _ in range(3)]
    ens = AllocatorEnsemble(members)
    x = torch.randn(5, 3)
    assert torch.allclose(ens(x), sum(m(x) for m in members) / 3)
    with pytest.raises(ValueError, match="same features"):
        AllocatorEnsemble([Allocator(("a",), (4,)), Allocator(("b",), (4,))])
    with pytest.raises(ConfigError, match="alloc_members must be >= 1"):
        ScorerConfig(alloc_members=0)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"eval_every": 0}, "eval_every must be >= 1"),  # was a ZeroDivisionError after the store was read
        ({"hidden": ()}, "hidden must be one or more widths"),
        ({"hidden": (32, 0)}, "hidden must be one or more widths"),  # was a constant ranker, exit 0
        ({"alloc_hidden": (0,)}, "alloc_hidden must be one or more widths"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"alloc_lr": 0.0}, "alloc_lr must be a positive number"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"max_per_layer": 0}, "max_per_layer must be >= 1"),
        ({"alloc_steps": 0}, "alloc_steps must be >= 1"),
        ({"seed": -1}, r"seed must be in \[0, 2\*\*32\)"),
        ({"min_round_accuracy": 1.2}, r"min_round_accuracy must be in \[0, 1\]"),  # was "regenerate the store"
        ({"ranker_features": ("",)}, "ranker_features must name one or more features"),
        ({"group_size": 1}, "group_size must be >= 2"),
    ],
)
def test_a_recipe_that_cannot_train_is_refused_when_built(bad: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ScorerConfig(**bad)


def test_a_change_in_place_is_one_per_call_and_refuses_options_it_would_ignore(scorer_dir, tmp_path, capsys) -> None:
    from autosparse.cli import main

    for argv, message in [
        (["--add-coverage", "--add-unit-head"], "--add-coverage and --add-unit-head each change the scorer"),
        (["--add-unit-head", "--holdout", "seed=1", "--steps", "5"], "--holdout, --steps would do nothing"),
        (["--replace-allocator", "--alloc-lr", "0.5"], "--alloc-lr would do nothing"),
    ]:
        assert main(["train-scorer", *argv, "--store", str(tmp_path / "s.zarr"), "--out", str(scorer_dir)]) == 2
        assert message in capsys.readouterr().err


def test_a_change_in_place_never_rewrites_a_shipped_scorer_named_bare(tmp_path, monkeypatch) -> None:
    from autosparse.scorer.training import add_coverage

    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"names a shipped scorer .*copy it first"):
        add_coverage("autos_mlp", tmp_path / "s.zarr")


def test_replace_allocator_keeps_ranker_and_units_and_member_zero(store, scorer_dir, tmp_path) -> None:
    """Member i is the single allocator seed + i would train, so member 0 is the scorer's own."""
    import shutil

    from safetensors.torch import load_file

    from autosparse.scorer.nets import AllocatorEnsemble
    from autosparse.scorer.training import replace_allocator

    copy = tmp_path / "ens"
    shutil.copytree(scorer_dir, copy)
    card = json.loads((copy / CARD_FILE).read_text())
    card["student"] = {"points": {"plain": []}, "provenance": ["somewhere"]}
    (copy / CARD_FILE).write_text(json.dumps(card))
    before = load_file(str(copy / WEIGHTS_FILE))
    card = replace_allocator(copy, store, members=3)
    after = load_file(str(copy / WEIGHTS_FILE))
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith("allocator."))
    assert all(
        torch.equal(after[f"allocator.members.0.{k[10:]}"], v) for k, v in before.items() if k.startswith("allocator.")
    )
    assert not torch.equal(after["allocator.members.1.net.0.weight"], after["allocator.members.0.net.0.weight"])
    assert card.allocator["members"] == 3 and card.training["config"]["alloc_members"] == 3
    assert card.student == {} and "--replace-allocator --alloc-members 3" in card.training["allocator_command"]
    assert card.metrics and all("alloc_log_error" in r for per in card.metrics.values() for r in per["rounds"].values())
    scorer = load_scorer(copy)
    assert isinstance(scorer.allocator, AllocatorEnsemble) and len(scorer.allocator.members) == 3
    ds = load_dataset("fashion-mnist", n_train=500, n_test=100)
    model = build_model("lenet_300_100", (1, 28, 28), 10, seed=1)
    masks = prune(model, "autos", density=0.02, data=pruning_batch(ds, samples_per_class=3), scorer=str(copy), repair=0)
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(0.02 * total)


def test_train_scorer_with_several_allocators(store, tmp_path) -> None:
    from autosparse.scorer.nets import AllocatorEnsemble

    cfg = ScorerConfig(ranker_features=FEATS, steps=30, eval_every=30, alloc_steps=50, group_size=256, alloc_members=2)
    trained = train_scorer(store, holdout="model_label=mlp-widths40", out=tmp_path / "two", config=cfg)
    assert isinstance(trained.allocator, AllocatorEnsemble)
    assert json.loads((tmp_path / "two" / CARD_FILE).read_text())["allocator"]["members"] == 2
    assert isinstance(load_scorer(tmp_path / "two").allocator, AllocatorEnsemble)


def test_cli_replace_allocator(store, scorer_dir, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from autosparse.cli import main as cli_main

    copy = tmp_path / "cli_ens"
    shutil.copytree(scorer_dir, copy)
    args = ["train-scorer", "--replace-allocator", "--alloc-members", "2", "--store", str(store), "--out", str(copy)]
    assert cli_main(args) == 0
    assert "the mean of 2 network(s)" in capsys.readouterr().out
    assert json.loads((copy / CARD_FILE).read_text())["allocator"]["members"] == 2


def test_allocator_from_copies_another_scorers_allocator_and_refuses_other_runs(
    store, scorer_dir, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two scorers trained on the same runs can share one allocator, so that they differ in the ranker only."""
    import shutil

    from safetensors.torch import load_file

    from autosparse.cli import main as cli_main
    from autosparse.scorer.training import replace_allocator

    src, dst = tmp_path / "src", tmp_path / "dst"
    shutil.copytree(scorer_dir, src)
    shutil.copytree(scorer_dir, dst)
    replace_allocator(src, store, members=2)  # the allocator to copy: two retrained members
    before = load_file(str(dst / WEIGHTS_FILE))
    args = ["train-scorer", "--allocator-from", str(src), "--store", str(store), "--out", str(dst)]
    assert cli_main(args) == 0
    assert f"copied from {src}: the mean of 2 network(s)" in capsys.readouterr().out
    theirs, ours = load_file(str(src / WEIGHTS_FILE)), load_file(str(dst / WEIGHTS_FILE))
    assert {k for k in ours if k.startswith("allocator.")} == {k for k in theirs if k.startswith("allocator.")}
    assert all(torch.equal(ours[k], v) for k, v in theirs.items() if k.startswith("allocator."))
    assert all(torch.equal(ours[k], v) for k, v in before.items() if not k.startswith("allocator."))
    card = json.loads((dst / CARD_FILE).read_text())
    assert card["allocator"]["members"] == 2 and card["training"]["config"]["alloc_members"] == 2
    assert card["training"]["allocator_command"].startswith("autosparse train-scorer --allocator-from")

    other = json.loads((src / CARD_FILE).read_text())
    other["training"]["train_runs"] = other["training"]["train_runs"][1:]  # as if trained without one run
    (src / CARD_FILE).write_text(json.dumps(other))
    with pytest.raises(ConfigError, match=r"trained on other runs.*--replace-allocator"):
        replace_allocator(dst, store, members=1, source=src)
    other["training"]["train_runs"] = card["training"]["train_runs"]
    other["allocator"]["features"] = other["allocator"]["features"][:-1]
    (src / CARD_FILE).write_text(json.dumps(other))
    with pytest.raises(ConfigError, match="other layer descriptors"):
        replace_allocator(dst, store, members=1, source=src)
    assert all(torch.equal(load_file(str(dst / WEIGHTS_FILE))[k], v) for k, v in ours.items())  # refused: untouched


def test_add_unit_head_reproduces_the_trained_head(tmp_path) -> None:
    """--add-unit-head sees the rounds the scorer was trained on (min_round_accuracy), so on a scorer
    trained with a unit head it gives that head back bit for bit."""
    import shutil

    from safetensors.torch import load_file

    from autosparse.scorer.data import load_samples, open_split, unit_rows
    from autosparse.scorer.training import add_unit_head

    store = tmp_path / "steep.zarr"  # pruned 90% per round: the last rounds lose accuracy
    assert all(o.ok for o in generate(tiny_gen(prune_fraction=0.9), store))
    reader, _ = open_split(str(store), None)
    rows = [
        len(unit_rows(load_samples(reader, (), ["rel_depth"], max_per_layer=1, min_round_accuracy=m))[1])
        for m in (0.0, 0.8)
    ]
    assert rows[1] < rows[0]  # the filter drops rounds here, so a head that ignored it would differ
    cfg = ScorerConfig(ranker_features=FEATS, steps=20, eval_every=20, alloc_steps=100, group_size=256)
    train_scorer(store, holdout="model_label=mlp-widths40", out=tmp_path / "trained", config=cfg)
    shutil.copytree(tmp_path / "trained", tmp_path / "added")
    add_unit_head(tmp_path / "added", store, scale=cfg.unit_scale)
    trained = load_file(str(tmp_path / "trained" / WEIGHTS_FILE))
    added = load_file(str(tmp_path / "added" / WEIGHTS_FILE))
    assert trained.keys() == added.keys()
    assert all(torch.equal(added[k], v) for k, v in trained.items())


def test_add_coverage_records_the_coverage_training_wrote(store, scorer_dir, tmp_path) -> None:
    import shutil

    from autosparse.scorer.training import add_coverage

    copy = tmp_path / "cov"
    shutil.copytree(scorer_dir, copy)
    card = json.loads((copy / CARD_FILE).read_text())
    written = card.pop("coverage")
    (copy / CARD_FILE).write_text(json.dumps(card))
    assert add_coverage(copy, store).coverage == written
    assert load_scorer(copy).coverage is not None
    card = json.loads((copy / CARD_FILE).read_text())
    card["training"]["train_runs"].append("a-run-of-another-store")
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(StoreError, match="lacks 1 of the scorer's runs"):
        add_coverage(copy, store)


def test_two_trainings_into_one_out_do_not_both_succeed(store, tmp_path) -> None:
    """Both ran, both said "scorer written", and the later one silently replaced the first."""
    out = tmp_path / "s"
    with _held_by_another_thread(out), pytest.raises(ConfigError, match="is being written by another process"):
        train_scorer(store, holdout=None, out=out, config=ScorerConfig(steps=1))
    train_scorer(store, holdout=None, out=out, config=ScorerConfig(steps=1, alloc_steps=1))  # the lock is no content
    assert (out / "card.json").exists()
    # `autosparse train` into the folder: its save and the scorer's replaced each other's files (review)
    busy = tmp_path / "busy"
    with _held_by_another_thread(busy, ".train.lock"), pytest.raises(ConfigError, match="by `autosparse train`"):
        train_scorer(store, holdout=None, out=busy, config=ScorerConfig(steps=1))


def test_runs_of_different_teachers_are_said_and_can_be_narrowed(store, tmp_path, caplog) -> None:
    import zarr

    from autosparse.scorer.data import open_split

    mixed = tmp_path / "mixed.zarr"
    shutil.copytree(store, mixed)
    runs = zarr.open_group(str(mixed / "runs"), mode="r+")
    first = sorted(runs.group_keys())[0]
    spec = dict(runs[first].attrs["spec"])
    spec["irp"] = {**spec["irp"], "criterion": "snip"}
    runs[first].attrs["spec"] = spec
    with caplog.at_level("WARNING", logger="autosparse.scorer.data"):
        open_split(str(mixed), None)
    assert any("2 different IRP teachers" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="autosparse.scorer.data"):
        train, _ = open_split(str(mixed), None, "spec.irp.criterion=magnitude")  # the hint's narrowing works
    assert first not in train.run_ids and not any("teachers" in r.getMessage() for r in caplog.records)


def test_one_run_stored_twice_is_said(store, tmp_path, caplog) -> None:
    # gen with --train.eval-batch-size 256 wrote every run again under a new id; training counted each twice
    import zarr

    from autosparse.scorer.data import open_split

    twice = tmp_path / "twice.zarr"
    shutil.copytree(store, twice)
    first = sorted(p.name for p in (twice / "runs").iterdir())[0]
    shutil.copytree(twice / "runs" / first, twice / "runs" / "copy-of-it")
    group = zarr.open_group(str(twice / "runs" / "copy-of-it"), mode="r+")
    spec = dict(group.attrs["spec"])
    spec["train"] = {**spec["train"], "eval_batch_size": 256, "num_threads": 2}
    group.attrs.update({"spec": spec, "run_id": "copy-of-it"})
    with caplog.at_level("WARNING", logger="autosparse.scorer.data"):
        open_split(str(twice), None)
    said = [r.getMessage() for r in caplog.records if "same run as another" in r.getMessage()]
    assert len(said) == 1 and f"copy-of-it = {first}" in said[0] and "1 run of the training runs is" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="autosparse.scorer.data"):
        open_split(str(store), None)
    assert not any("same run" in r.getMessage() for r in caplog.records)


def test_a_change_in_place_waits_for_no_one_and_loses_no_change(scorer_dir, store, tmp_path) -> None:
    """Two changes in place each saved the card they had read: the first one's change was lost."""
    from autosparse.scorer.training import add_coverage

    mine = tmp_path / "s"
    shutil.copytree(scorer_dir, mine)
    with _held_by_another_thread(mine), pytest.raises(ConfigError, match="is being written by another process"):
        add_coverage(mine, store)
    assert add_coverage(mine, store).coverage  # free again


@contextlib.contextmanager
def _held_by_another_thread(folder: Path, lock: str = ""):
    """The scorer folder's claim (or ``lock``) held elsewhere (a claim is re-entrant in its own thread) for the block."""
    from autosparse.core.claims import claim
    from autosparse.scorer.checkpoint import LOCK_FILE

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with claim(folder / (lock or LOCK_FILE)) as mine:
            assert mine
            held.set()
            release.wait(30)

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        held.wait(30)
        yield
    finally:
        release.set()
        worker.join()


def test_a_path_spelled_like_a_shipped_name_without_such_a_folder_is_the_shipped_scorer(tmp_path, monkeypatch) -> None:
    from autosparse.scorer.checkpoint import SHIPPED_DIR, resolve_scorer

    monkeypatch.chdir(tmp_path)
    assert resolve_scorer(Path("autos_mlp")) == SHIPPED_DIR / "autos_mlp"


def test_what_the_card_hash_leaves_out_and_what_a_lock_file_is(scorer_dir, tmp_path) -> None:
    from autosparse.cli import main
    from autosparse.scorer.checkpoint import LOCK_FILE, resolve_scorer, scorer_card_sha256

    mine = tmp_path / "s"
    shutil.copytree(scorer_dir, mine)
    card_path = mine / "card.json"
    before, without_coverage = scorer_card_sha256(mine), scorer_card_sha256(mine, coverage=False)
    card = json.loads(card_path.read_text())
    card["units"]["heldout"] = {"anything": 1.0}  # metrics of the unit head: they shape no mask
    card["coverage"] = {"points": [[0.0]], "threshold": 9.0}  # read by the range guard only
    card_path.write_text(json.dumps(card))
    assert scorer_card_sha256(mine, coverage=False) == without_coverage and scorer_card_sha256(mine) != before
    # --allocator-from copies the source's allocator: --alloc-members would be ignored, so it is refused
    assert main(["train-scorer", "--allocator-from", "autos_mlp", "--alloc-members", "5", "--out", str(mine)]) == 2
    # a folder holding only the claims' lock file is an empty folder to train into
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / LOCK_FILE).write_text("")
    with pytest.raises(CheckpointError, match="train a scorer there"):
        resolve_scorer(tmp_path / "empty")


class _Killed(Exception):
    """Stands in for a kill -9 at one point of a save."""


@pytest.mark.parametrize("where", ["before the record", "between the moves"])
def test_a_save_killed_midway_leaves_one_whole_scorer(scorer_dir, tmp_path, monkeypatch, where: str) -> None:
    """A kill between the weights and the card left new weights under the old card: the scorer no longer
    loaded and its old weights were gone; a kill before metrics.json left the old scorer's metrics (review).
    Killed before its record, a save leaves the old scorer; after it, the next reader finishes it."""
    from autosparse.scorer import checkpoint

    copy = tmp_path / "copy"
    shutil.copytree(scorer_dir, copy)
    card, tensors = checkpoint.load_checkpoint(copy)
    old_metrics = (copy / "metrics.json").read_bytes()
    first = next(iter(tensors))
    changed = {**tensors, first: tensors[first] + 1}
    card.name = "changed"
    if where == "before the record":
        real = checkpoint.write_text

        def write_text(path: Path, text: str) -> None:
            if path.name.startswith(f".{CARD_FILE}.") and path.name.endswith(".pending"):
                raise _Killed
            real(path, text)

        monkeypatch.setattr(checkpoint, "write_text", write_text)
    else:
        real_replace = Path.replace

        def replace(self: Path, target: Path) -> Path:
            if Path(target).name == CARD_FILE:
                raise _Killed
            return real_replace(self, target)

        monkeypatch.setattr(Path, "replace", replace)
    with pytest.raises(_Killed):
        checkpoint.save_checkpoint(copy, changed, card, {"metrics.json": b'{"new": 1}'})
    monkeypatch.undo()
    loaded, weights = checkpoint.load_checkpoint(copy)  # never "does not match its card"
    if where == "before the record":
        assert loaded.name != "changed" and torch.equal(weights[first], tensors[first])
        assert (copy / "metrics.json").read_bytes() == old_metrics
    else:
        assert loaded.name == "changed" and torch.equal(weights[first], changed[first])
        assert (copy / "metrics.json").read_bytes() == b'{"new": 1}'
        assert not list(copy.glob(".*.pending"))
    checkpoint.save_checkpoint(copy, changed, card)  # and the next save goes through, adopting nothing
    assert checkpoint.load_checkpoint(copy)[0].name == "changed"
    expected = old_metrics if where == "before the record" else b'{"new": 1}'
    assert (copy / "metrics.json").read_bytes() == expected and not list(copy.glob(".*.pending"))


def test_a_reader_finishing_a_save_moves_that_saves_files_only(scorer_dir, tmp_path) -> None:
    """A reader that found one save's record and moved files after the writer had begun the next save
    installed the next save's weights under the old card (review): moves are tied to the record's save."""
    from autosparse.scorer import checkpoint

    copy = tmp_path / "copy"
    shutil.copytree(scorer_dir, copy)
    _, tensors = checkpoint.load_checkpoint(copy)
    first = next(iter(tensors))
    (copy / f".{WEIGHTS_FILE}.othersave.pending").write_bytes(b"a save still being written")
    checkpoint.complete_pending(copy)  # no record of that save: nothing moves
    assert checkpoint.load_checkpoint(copy)[1][first].equal(tensors[first])
    assert (copy / f".{WEIGHTS_FILE}.othersave.pending").exists()


def test_a_reader_on_a_read_only_mount_leaves_an_unfinished_save(scorer_dir, tmp_path, monkeypatch) -> None:
    """EROFS is no PermissionError: loading a scorer on a read-only mount with an unfinished save raised
    a traceback from the move (helper); the reader leaves it to the next writer, and loads."""
    import errno
    import pathlib

    from autosparse.scorer import checkpoint

    copy = tmp_path / "copy"
    shutil.copytree(scorer_dir, copy)
    (copy / f".{checkpoint.CARD_FILE}.tok.pending").write_text((copy / checkpoint.CARD_FILE).read_text())

    def read_only(self, target):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(pathlib.Path, "replace", read_only)
    checkpoint.complete_pending(copy)
    assert checkpoint.load_checkpoint(copy)[1]
    monkeypatch.setattr(pathlib.Path, "replace", lambda self, t: (_ for _ in ()).throw(OSError(errno.EIO, "I/O")))
    with pytest.raises(OSError, match="I/O"):  # any other failure is not read as "may not write"
        checkpoint.complete_pending(copy)


def test_an_accuracy_filter_that_keeps_no_round_names_itself(store, monkeypatch) -> None:
    """Every run cut back to its dense round read "the store's runs carry no per-round layer densities;
    regenerate them", after the ranker had trained (review): the filter is named, before any training."""
    from autosparse.scorer import data as scorer_data
    from autosparse.store import StoreReader

    monkeypatch.setattr(scorer_data, "healthy_rounds", lambda accuracies, fraction: 0)
    with pytest.raises(ConfigError, match=r"min_round_accuracy 0\.9 keeps no pruning round.*train on other runs"):
        scorer_data.load_samples(StoreReader(store), FEATS, ("rel_depth",), min_round_accuracy=0.9)
    # held-out runs: the fix is to hold out others (it said to train on other runs; hunt)
    with pytest.raises(ConfigError, match=r"of the 2 held-out run\(s\).*or hold out other runs"):
        scorer_data.load_samples(StoreReader(store), FEATS, ("rel_depth",), min_round_accuracy=0.9, role="held-out")


def test_a_collapsed_held_out_run_is_left_out_of_the_metrics(store, monkeypatch, caplog) -> None:
    """A held-out run whose round 1 fell below the accuracy filter kept its dense round only, where every
    ranker's precision is 1: averaged in, it inflated the held-out precision, and its table was NaN (hunt)."""
    from autosparse.scorer import data as scorer_data
    from autosparse.store import StoreReader

    collapsed = StoreReader(store).run_ids[0]
    real = scorer_data.healthy_rounds
    monkeypatch.setattr(
        scorer_data,
        "healthy_rounds",
        lambda acc, f: 0 if acc == StoreReader(store).attrs(collapsed)["accuracies"] else real(acc, f),
    )
    with caplog.at_level("WARNING", logger="autosparse.scorer.data"):
        runs = scorer_data.load_samples(
            StoreReader(store), FEATS, ("rel_depth",), min_round_accuracy=0.5, role="held-out"
        )
    assert [r.run_id for r in runs] == [i for i in StoreReader(store).run_ids if i != collapsed]
    assert f"held-out run(s) {collapsed} keep no pruning round" in caplog.text


@pytest.mark.parametrize(
    "edit, said",
    [
        (lambda c: c.update(ranker="x"), "field 'ranker' should be dict"),
        (lambda c: c.update(schema_version="7"), "field 'schema_version' should be int"),
        (lambda c: c["ranker"].pop("hidden"), "no key 'hidden'"),
        (lambda c: c["units"].update(scale="abc"), "could not convert"),
        # a card of another version: told to retrain it, as if it were no card (hunt)
        (lambda c: c.update(format="autosparse-scorer-v99"), "format 'autosparse-scorer-v99'.*version that wrote it"),
        (lambda c: c.update(format="x"), "is not an autosparse scorer card"),
    ],
)
def test_a_hand_edited_card_is_refused_in_one_line(tmp_path, edit, said: str) -> None:
    """The weights' hash does not cover the card: an edit gave a traceback from the architecture's code (helper)."""
    from autosparse.scorer.checkpoint import SHIPPED_DIR

    copy = tmp_path / "edited"
    shutil.copytree(SHIPPED_DIR / "autos_mlp", copy)
    card = json.loads((copy / CARD_FILE).read_text())
    edit(card)
    (copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=said):
        load_scorer(copy)


def test_a_card_of_undecodable_bytes_is_refused_in_one_line(tmp_path) -> None:
    """Random bytes in card.json gave a UnicodeDecodeError traceback from prune and every train-scorer change (hunt)."""
    from autosparse.scorer.checkpoint import SHIPPED_DIR, scorer_card_sha256, scorer_weights_sha256

    copy = tmp_path / "noise"
    shutil.copytree(SHIPPED_DIR / "autos_mlp", copy)
    (copy / CARD_FILE).write_bytes(b"\x8a\xff\x00" * 50)
    for read in (load_scorer, scorer_weights_sha256, scorer_card_sha256):
        with pytest.raises(CheckpointError, match="the checkpoint is damaged"):
            read(copy)
