from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from autosparse.core.config import add_dataclass_arguments, config_hash, from_dict, given, load_yaml, to_dict
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
