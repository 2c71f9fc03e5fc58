from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autosparse.core.config import (
    add_arguments,
    add_config_argument,
    add_dataclass_arguments,
    from_dict,
    given,
    load_yaml,
    parse_items,
    resolve,
    show_default,
)
from autosparse.core.config_record import config_hash, to_dict
from autosparse.core.errors import ConfigError
from autosparse.training.trainer import TrainConfig


@dataclass
class Inner:
    x: int = 1


@dataclass
class Outer:
    name: str = "a"
    widths: tuple[int, ...] = (3, 4)
    inner: Inner = field(default_factory=Inner)
    flag: bool = False


def test_flags_override_yaml_override_defaults(tmp_path) -> None:
    p = argparse.ArgumentParser()
    add_dataclass_arguments(p, Outer)
    ns = p.parse_args(["--widths", "5,6", "--inner.x", "9", "--flag", "true"])
    got = given(ns, Outer)
    assert got == {"widths": (5, 6), "inner": {"x": 9}, "flag": True}
    cfg = from_dict(Outer, {"name": "yaml", **got})
    assert cfg == Outer("yaml", (5, 6), Inner(9), True)


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"valid keys: .*epochs"):
        from_dict(TrainConfig, {"epoch": 3})
    # other libraries' names for a setting, which no likeness finds (hunt)
    with pytest.raises(ConfigError, match=r"unknown key learning_rate \(did you mean lr\?\)"):
        from_dict(TrainConfig, {"learning_rate": 0.1})


def test_bad_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="must be int"):
        from_dict(Inner, {"x": "seven"})


def test_hash_changes_with_config_and_is_stable() -> None:
    a, b = TrainConfig(), TrainConfig(epochs=3)
    assert config_hash(a) == config_hash(TrainConfig())
    assert config_hash(a) != config_hash(b)
    assert to_dict(Outer())["widths"] == [3, 4]


def test_yaml_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(bad)
    # a folder, a binary file and a key given twice were a traceback or a silent choice of the last
    with pytest.raises(ConfigError, match="is a folder"):
        load_yaml(tmp_path)
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match=r"cannot read .* as text"):
        load_yaml(tmp_path / "bin.yaml")
    (tmp_path / "twice.yaml").write_text("method: synflow\ndensity: 0.1\nmethod: snip\n")
    with pytest.raises(ConfigError, match=r"key 'method' is given twice \(line 3\)"):
        load_yaml(tmp_path / "twice.yaml")
    (tmp_path / "merge.yaml").write_text("base: &b {epochs: 1, lr: 0.1}\ntrain:\n  <<: *b\n  lr: 0.2\n")
    assert load_yaml(tmp_path / "merge.yaml")["train"] == {"epochs": 1, "lr": 0.2}  # a merge's key overridden
    # an empty file ran every default (gen: hours of the default grid) for a file not yet written (helper)
    for text in ("", "# models: [lenet_300_100]\n\n"):
        (tmp_path / "empty.yaml").write_text(text)
        with pytest.raises(ConfigError, match=r"empty.yaml is empty .*drop --config to run the defaults"):
            load_yaml(tmp_path / "empty.yaml")
    (tmp_path / "blank.yaml").write_text("{}\n")  # an explicit empty mapping: every default, as written
    assert load_yaml(tmp_path / "blank.yaml") == {}
    # YAML 1.1 read `seed: 010` as seed 8 and `1:30` as 90, where the flags read 10 and refuse (hunt)
    (tmp_path / "numbers.yaml").write_text("a: 010\nb: 1:30\nc: [0, -007, 0x10, 1_000, 2.5, 1:30.5]\n")
    assert load_yaml(tmp_path / "numbers.yaml") == {"a": 10, "b": "1:30", "c": [0, -7, 16, 1000, 2.5, "1:30.5"]}
    assert parse_items("[010, 1:30]") == (10, "1:30")
    # a tab's error named neither the tab nor where it was (hunt)
    (tmp_path / "tab.yaml").write_text("train:\n\tepochs: 2\n")
    with pytest.raises(ConfigError, match=r"found character '\\t' that cannot start any token \(line 2, column 1\)"):
        load_yaml(tmp_path / "tab.yaml")


@dataclass
class Row:
    method: str
    hparams: dict = field(default_factory=dict)
    label: str = ""


@dataclass
class Grid:
    rows: list[Row] = field(default_factory=lambda: [Row("a")])
    seeds: list[int] = field(default_factory=lambda: [0])
    inner: Inner = field(default_factory=Inner)


def test_list_of_dataclasses_takes_short_forms() -> None:
    """A name is the first field, {name: mapping} the first two, one mapping a list of one: in YAML and flags alike."""
    cfg = from_dict(Grid, {"rows": ["snip", {"synflow": {"rounds": 10}}, {"method": "x", "label": "y"}, {"imp": None}]})
    assert cfg.rows == [Row("snip"), Row("synflow", {"rounds": 10}), Row("x", label="y"), Row("imp")]
    assert from_dict(Grid, {"rows": "snip, grasp"}).rows == [Row("snip"), Row("grasp")]
    assert from_dict(Grid, {"rows": {"method": "snip"}}).rows == [Row("snip")]
    # a one-key mapping whose key is a field, or whose value is no mapping, is read as fields (typos stay errors)
    with pytest.raises(ConfigError, match=r"unknown key metod \(did you mean method\?\)"):
        from_dict(Grid, {"rows": [{"metod": "snip"}]})
    # a single dataclass (not a list item) has no short form: a typo in `inner` must not become its first field
    with pytest.raises(ConfigError, match="mapping"):
        from_dict(Grid, {"inner": "3"})


def test_flags_of_a_list_of_dataclasses_read_like_yaml() -> None:
    p = argparse.ArgumentParser()
    add_dataclass_arguments(p, Grid)
    ns = p.parse_args(["--rows", "snip,synflow", "--seeds", "1,2"])
    assert from_dict(Grid, given(ns, Grid)) == Grid([Row("snip"), Row("synflow")], [1, 2])
    ns = p.parse_args(["--rows", '[{"method": "snip", "label": "s"}, "grasp"]'])
    assert from_dict(Grid, given(ns, Grid)).rows == [Row("snip", label="s"), Row("grasp")]
    with pytest.raises(SystemExit):
        p.parse_args(["--rows", "[{not json"])


def test_a_list_of_dataclasses_flag_takes_yaml_flow_syntax_as_the_help_says() -> None:
    """The help said "(YAML or JSON)", and `[{method: synflow, hparams: {rounds: 10}}]` was "not valid JSON"."""
    p = argparse.ArgumentParser()
    add_dataclass_arguments(p, Grid)
    as_yaml = p.parse_args(["--rows", "[{method: synflow, hparams: {rounds: 10}}, grasp]"])
    as_json = p.parse_args(["--rows", '[{"method": "synflow", "hparams": {"rounds": 10}}, "grasp"]'])
    expected = [Row("synflow", {"rounds": 10}), Row("grasp")]
    assert from_dict(Grid, given(as_yaml, Grid)).rows == from_dict(Grid, given(as_json, Grid)).rows == expected
    assert parse_items("{method: snip, label: s}") == ({"method": "snip", "label": "s"},)
    assert parse_items('[{"hparams": {"lr": 1e3}}]') == ({"hparams": {"lr": 1000.0}},)  # JSON's number stays one
    assert parse_items("snip, synflow") == ("snip", "synflow")  # a plain list as before
    # names and mappings mixed, without the brackets: the mapping was read as a method named "{method: …}" (helper)
    assert parse_items("random,{method: snip, hparams: {scope: erk}}") == (
        "random",
        {"method": "snip", "hparams": {"scope": "erk"}},
    )
    with pytest.raises(argparse.ArgumentTypeError, match="not valid YAML or JSON"):
        parse_items("random,{method: snip")
    assert parse_items("{method: snip}, random") == ({"method": "snip"}, "random")  # a mapping first (review)
    assert parse_items('{method: snip, label: "a) b"}') == ({"method": "snip", "label": "a) b"},)  # quotes (review)
    with pytest.raises(
        argparse.ArgumentTypeError, match=r"^not valid YAML or JSON \(expected ',' or '}'.* column \d+\)$"
    ):
        parse_items("[{not: closed")


def test_resolve_is_defaults_then_yaml_then_flags(tmp_path) -> None:
    yaml_file = tmp_path / "g.yaml"
    yaml_file.write_text("rows: [snip, {grasp: {t: 1}}]\nseeds: [3, 4]\ninner: {x: 5}\n")
    p = argparse.ArgumentParser()
    add_config_argument(p)
    add_arguments(p, Grid)
    (cfg,) = resolve(p.parse_args(["--config", str(yaml_file), "--seeds", "7", "--inner.x", "6"]), Grid)
    assert cfg == Grid([Row("snip"), Row("grasp", {"t": 1})], [7], Inner(6))
    (cfg,) = resolve(p.parse_args([]), Grid)
    assert cfg == Grid()
    yaml_file.write_text("seedz: [1]\n")
    with pytest.raises(
        ConfigError, match=r"unknown key seedz \(did you mean seeds\?\) in .* valid keys: inner, rows, seeds"
    ):
        resolve(p.parse_args(["--config", str(yaml_file)]), Grid)


def test_help_shows_defaults_as_typed() -> None:
    assert show_default([Row("snip"), Row("imp")]) == "snip,imp"
    assert show_default([Row("dpai", {"steps": 1})]) == '{"method": "dpai", "hparams": {"steps": 1}, "label": ""}'
    assert show_default(None) == "None" and show_default("") == '""' and show_default((0.5, 0.75)) == "0.5,0.75"
    p = argparse.ArgumentParser()
    add_dataclass_arguments(p, TrainConfig)
    text = p.format_help()  # a % in a field comment would break argparse's formatting
    assert "--step-milestones A,B,…" in text and "(default: 0.5,0.75)" in text and "--lr FLOAT" in text


def test_a_list_flag_given_twice_adds_up() -> None:
    # `--hp a=1 --hp b=2` once kept only b=2, silently
    p = argparse.ArgumentParser()
    add_dataclass_arguments(p, Outer)
    assert given(p.parse_args(["--widths", "5", "--widths", "6,7"]), Outer) == {"widths": (5, 6, 7)}
    assert given(p.parse_args(["--widths", "5"]), Outer) == {"widths": (5,)}


def test_wrong_types_in_yaml_are_config_errors_not_tracebacks() -> None:
    from autosparse.task import ModelSpec

    with pytest.raises(ConfigError, match=r"flag must be true or false, got 'maybe'"):
        from_dict(Outer, {"flag": "maybe"})
    with pytest.raises(ConfigError, match=r"model_kwargs must be a mapping"):
        from_dict(ModelSpec, {"model_kwargs": "widths=64"})
    with pytest.raises(ConfigError, match=r"model_kwargs must be a mapping"):
        from_dict(ModelSpec, {"model_kwargs": [64, 32]})


def test_key_value_lists_may_be_written_as_a_mapping() -> None:
    @dataclass
    class Job:
        hp: tuple[str, ...] = ()

    assert from_dict(Job, {"hp": {"rounds": 3, "scope": "uniform"}}).hp == ("rounds=3", "scope=uniform")
    assert from_dict(Job, {"hp": ["rounds=3"]}).hp == ("rounds=3",)
    # a key left empty is its default, as a setting's is (`hp: {scorer: }` asked for a scorer 'None'; hunt)
    assert from_dict(Job, {"hp": {"scorer": None, "scope": "uniform"}}).hp == ("scope=uniform",)


def test_key_value_flags_merge_into_a_yaml_mapping_key_by_key() -> None:
    # `hp: {rounds: 5}` in the config and `--hp scope=uniform` on the command line: both stay,
    # and a key given in both takes the flag's value
    from autosparse.core.config import merge

    @dataclass
    class Job:
        hp: tuple[str, ...] = ()

    merged = merge({"hp": {"rounds": 5, "scope": "erk"}}, {"hp": ["scope=uniform", "seed=3"]})
    assert from_dict(Job, merged).hp == ("rounds=5", "scope=uniform", "seed=3")
    assert merge({"hp": ["rounds=5"]}, {"hp": ["scope=uniform"]}) == {"hp": {"rounds": "5", "scope": "uniform"}}
    assert merge({"hp": {"a-b": 1}}, {"hp": ["a_b=2"]}) == {"hp": {"a_b": "2"}}  # one key however it is spelled
    assert merge({"seeds": {"a": 1}}, {"seeds": [1, 2]}) == {"seeds": [1, 2]}  # not KEY=VALUE text: replaced


def test_a_mapping_of_hyperparameters_keeps_lists_and_json_objects() -> None:
    @dataclass
    class Job:
        hp: tuple[str, ...] = ()

    got = from_dict(Job, {"hp": {"input_shape": [1, 28, 28], "base": {"scope": "erk"}}}).hp
    assert got == ("input_shape=1,28,28", 'base={"scope": "erk"}')  # as they would be typed after --hp

    @dataclass
    class WithDict:
        base: dict = field(default_factory=dict)

    assert from_dict(WithDict, {"base": '{"scope": "erk"}'}).base == {"scope": "erk"}  # --hp 'base={...}'
    with pytest.raises(ConfigError, match="not valid JSON"):
        from_dict(WithDict, {"base": "{scope"})


def test_a_scalar_where_a_list_is_expected_is_a_one_item_list() -> None:
    # `densities: 0.1` or `seeds: 0` in a YAML crashed with "'float' object is not iterable"
    @dataclass
    class Grid:
        densities: list[float] = field(default_factory=lambda: [0.1, 0.01])
        seeds: tuple[int, ...] = (0,)

    grid = from_dict(Grid, {"densities": 0.05, "seeds": 3})
    assert grid.densities == [0.05] and grid.seeds == (3,)
    assert from_dict(TrainConfig, {"step_milestones": 0.5}).step_milestones == (0.5,)


def test_an_empty_yaml_key_means_the_field_default() -> None:
    # `model_kwargs:` or `train:` left empty in YAML crashed with NoneType tracebacks later on
    from autosparse.task import ModelSpec

    assert from_dict(ModelSpec, {"model": "conv4", "model_kwargs": None}).model_kwargs == {}

    @dataclass
    class Job:
        train: TrainConfig = field(default_factory=TrainConfig)
        out: str | None = "x"

    job = from_dict(Job, {"train": None, "out": None})
    assert job.train == TrainConfig() and job.out is None  # None is a value where the type allows it

    @dataclass
    class Needs:
        size: int

    with pytest.raises(ConfigError, match="size needs a value"):
        from_dict(Needs, {"size": None})


def test_one_list_item_may_carry_a_list() -> None:
    # `--hp input_shape=[1,28,28]` split at its commas into three hyperparameters
    from autosparse.core.config import split_list

    assert split_list("rounds=3,input_shape=[1, 28, 28] x") == ["rounds=3", "input_shape=[1, 28, 28]", "x"]

    @dataclass
    class Shape:
        input_shape: tuple[int, ...] = ()

    assert from_dict(Shape, {"input_shape": "[1, 28, 28]"}).input_shape == (1, 28, 28)
    with pytest.raises(ConfigError, match=r"must be a list of int \(e.g. \[1, 28, 28\]\), got 'foo'"):
        from_dict(Shape, {"input_shape": "foo"})


@dataclass
class Numbers:
    n_train: int = 1
    lr: float = 0.1
    seeds: tuple[int, ...] = (0,)


def test_a_number_is_taken_as_written_or_refused() -> None:
    # int(256.5) is 256 and float(True) is 1.0: a YAML value must not run as something else than written
    with pytest.raises(ConfigError, match=r"n_train must be a whole number, got 256.5"):
        from_dict(Numbers, {"n_train": 256.5})
    with pytest.raises(ConfigError, match=r"n_train must be a whole number, got '1.9'"):
        from_dict(Numbers, {"n_train": "1.9"})
    with pytest.raises(ConfigError, match=r"lr must be float, got True"):
        from_dict(Numbers, {"lr": True})
    with pytest.raises(ConfigError, match=r"n_train must be int, got False"):
        from_dict(Numbers, {"n_train": False})
    ok = from_dict(Numbers, {"n_train": 256.0, "lr": "0.05", "seeds": ["12345678901234567890", 2]})
    assert (ok.n_train, ok.lr, ok.seeds) == (256, 0.05, (12345678901234567890, 2))
    assert type(ok.n_train) is int
    import numpy as np

    assert from_dict(Numbers, {"n_train": np.int64(2**53 + 1)}).n_train == 2**53 + 1  # exact, no float detour


def test_a_list_error_gives_an_example_of_its_own_kind() -> None:
    with pytest.raises(ConfigError, match=r"seeds must be a list of int \(e\.g\. \[0, 1, 2\]\)"):
        from_dict(Numbers, {"seeds": "zero"})


def test_a_command_line_option_in_the_yaml_says_to_pass_it_as_a_flag(tmp_path) -> None:
    """`store:` in a train-scorer YAML read as an unknown key "(did you mean steps?)"."""
    from autosparse.cli import build_parser

    path = tmp_path / "s.yaml"
    path.write_text("steps: 5\nstore: runs/s.zarr\nholdout: seed=1\n")
    args = build_parser().parse_args(["train-scorer", "--config", str(path), "--out", "o"])
    from autosparse.scorer.config import ScorerConfig

    with pytest.raises(
        ConfigError, match=r"^holdout, store in .* are command-line options .*: pass --holdout, --store$"
    ):
        resolve(args, ScorerConfig)


def test_a_missing_required_key_and_a_null_hyperparameter_read_as_the_yaml_says() -> None:
    """`methods: [{hparams: {}}]` raised a TypeError from __init__; `rounds: null` reached SynFlow as None."""
    import torch

    import autosparse
    from autosparse.bench.config import MethodSpec

    with pytest.raises(ConfigError, match=r"^methods\[0\]: method is required \(no default\): give method: …$"):
        from_dict(MethodSpec, {"hparams": {}}, where="methods[0]")
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    masks = autosparse.prune(net, "synflow", density=0.5, rounds=None, scope=None, input_shape=(4,))
    assert masks.kept == 24 and masks.meta["method"] == "synflow"


def test_yaml_pitfalls_are_named_not_run() -> None:
    """An empty list item, an unquoted off, a list for a one-value key and a flag's dotted spelling
    each gave a traceback or a misleading message (`unknown autos units 'False'`)."""
    with pytest.raises(ConfigError, match=r"seeds\[1\] is empty \(null\)"):
        from_dict(Grid, {"seeds": [0, None]})
    with pytest.raises(ConfigError, match=r"rows\[0\] is empty"):
        from_dict(Grid, {"rows": [None]})
    with pytest.raises(ConfigError, match="YAML reads an unquoted off, no or false as False; quote it"):
        from_dict(Outer, {"name": False})
    with pytest.raises(ConfigError, match="takes one value"):
        from_dict(Outer, {"name": ["a"]})
    with pytest.raises(ConfigError, match=r"inner.x .*in YAML nest it: inner: \{x: …\}"):
        from_dict(Outer, {"inner.x": 3})


def test_seeds_and_ray_resources_out_of_range_are_config_errors(caplog: pytest.LogCaptureFixture) -> None:
    """A seed past torch's range was an OverflowError from inside torch; negative Ray resources passed --check."""
    import torch

    from autosparse.bench.config import bench_config_from_dict
    from autosparse.models import build_model
    from data_gen.grid import GenConfig

    with pytest.raises(ConfigError, match=r"seed must be in \[-2\*\*63, 2\*\*64\)"):
        TrainConfig(seed=2**64)
    with pytest.raises(ConfigError, match=r"seed must be in \[-2\*\*63, 2\*\*64\)"):
        build_model("mlp", (1, 4, 4), 2, seed=-(2**63) - 1, widths=(4,))
    build_model("mlp", (1, 4, 4), 2, seed=-1, widths=(4,))  # torch takes negative seeds, and so did we
    TrainConfig(seed=-3)
    with caplog.at_level("WARNING", logger="autosparse"):  # but its CPU generator reads 32 bits: say so
        a = build_model("mlp", (1, 4, 4), 2, seed=2**32 + 7, widths=(4,))
    assert "seed 4294967303 draws what seed 7 draws" in caplog.text
    assert torch.equal(a.fc1.weight, build_model("mlp", (1, 4, 4), 2, seed=7, widths=(4,)).fc1.weight)
    with pytest.raises(ConfigError, match="num_cpus and num_gpus must be >= 0"):
        GenConfig(num_gpus=-1)
    with pytest.raises(ConfigError, match="num_cpus and num_gpus must be >= 0"):
        bench_config_from_dict({"num_cpus": -1}).validate()


def test_every_seed_torch_takes_builds_and_prunes() -> None:
    """Negative seeds reached numpy (phew, npb), which takes none: a raw ValueError at run time."""
    import torch

    import autosparse
    from autosparse.models import build_model

    build_model("mlp", (1, 4, 4), 2, seed=2**64 - 1, widths=(4,))
    data = (torch.randn(8, 1, 8, 8), torch.arange(8) % 4)
    for method in ("phew", "npb", "random"):
        model = build_model("mlp", (1, 8, 8), 4, seed=-1, widths=(16,))
        assert autosparse.prune(model, method, density=0.2, seed=-1, data=data, check=False).kept == round(0.2 * 1088)


def test_python_hyperparameters_of_a_one_value_or_mapping_field_are_read_or_refused_in_one_line() -> None:
    """`rounds=[1]`, `rounds=torch.tensor(3)` and `base_config='{"rounds": 2}'` reached the methods as raw
    TypeErrors and ValueErrors (helper)."""
    import numpy as np
    import torch

    from autosparse.core.config import typed_scalars

    @dataclass
    class Settings:
        rounds: int = 1
        scorer: str = "x"
        base: dict = field(default_factory=dict)

    read = typed_scalars(Settings, {"rounds": torch.tensor(3), "base": '{"rounds": 2}'}, where="m")
    assert read == {"rounds": 3, "base": {"rounds": 2}} and type(read["rounds"]) is int
    assert typed_scalars(Settings, {"rounds": np.int64(2)}) == {"rounds": 2}
    assert typed_scalars(Settings, {"scorer": Path("./s")}) == {"scorer": Path("./s")}  # built on purpose
    for bad, said in (
        ({"rounds": [1]}, "m.rounds takes one value, got [1]"),
        ({"rounds": torch.ones(2)}, "m.rounds takes one value, got a Tensor of 2 values"),
        ({"base": [1, 2]}, "m.base takes a mapping"),
        ({"base": "{not json"}, "m.base takes a mapping"),
    ):
        with pytest.raises(ConfigError, match=re.escape(said)):
            typed_scalars(Settings, bad, where="m")


def test_configs_built_in_python_refuse_a_string_where_a_number_belongs() -> None:
    """ScorerConfig(steps="20") and IRPConfig(rounds="2") failed in a comparison with a TypeError naming
    no field; TrainConfig said it clearly (Python-jobs hunt)."""
    from autosparse.scorer.config import ScorerConfig
    from autosparse.training.irp import IRPConfig

    with pytest.raises(ConfigError, match=r"ScorerConfig\.steps must be int, got '20' \(str\)"):
        ScorerConfig(steps="20")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"IRPConfig\.rounds must be int"):
        IRPConfig(rounds="2")  # type: ignore[arg-type]
    assert IRPConfig(rounds=2, prune_fraction=0.2).rounds == 2


def test_a_key_of_a_nested_section_at_the_top_says_where_it_goes() -> None:
    """`epochs:` at the top of a gen or bench YAML got "unknown key" and the valid keys; the flag --epochs
    gets "did you mean --train.epochs?" (hunt)."""
    from autosparse.bench.config import bench_config_from_dict
    from data_gen.grid import GenConfig

    with pytest.raises(
        ConfigError, match=r"epochs \(a field of train: write train: \{epochs: …\}\), rounds \(a field of irp"
    ):
        from_dict(GenConfig, {"epochs": 2, "rounds": 3})
    with pytest.raises(ConfigError, match=r"lr \(a field of train: .*modles \(did you mean models\?\)"):
        bench_config_from_dict({"lr": 0.1, "modles": ["mlp"]})


def test_a_percentage_where_a_fraction_belongs_says_so() -> None:
    """`--density 1%` got argparse's "invalid float value: '1%'" (hunt)."""
    import argparse

    from autosparse.core.flag_text import float_text, list_of

    assert float_text(" 0.01 ") == 0.01 and list_of(float)("0.1, 1e-2") == (0.1, 0.01)
    with pytest.raises(argparse.ArgumentTypeError, match=r"'1%' is a percentage; write the fraction, 0.01"):
        float_text("1%")
    with pytest.raises(argparse.ArgumentTypeError, match=r"'0.5%' is a percentage; write the fraction, 0.005"):
        list_of(float)("0.1,0.5%")
    with pytest.raises(ValueError):
        float_text("x%")
