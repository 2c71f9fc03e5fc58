"""What a config is hashed as: equal configs name one run, whichever way they were written."""

from __future__ import annotations

import dataclasses

import yaml

from autosparse.core.config import from_dict
from autosparse.core.config_record import config_hash, dump_yaml, record_dict, respelled, to_dict
from autosparse.training.trainer import TrainConfig


def test_an_int_in_a_float_field_hashes_as_the_flag_gives_it() -> None:
    """``TrainConfig(epochs=1)`` in Python and ``--epochs 1`` (read as 1.0) named two runs."""
    from_flag = from_dict(TrainConfig, {"epochs": "1"})
    assert from_flag.epochs == 1.0 and isinstance(from_flag.epochs, float)
    assert config_hash(TrainConfig(epochs=1)) == config_hash(from_flag)
    assert to_dict(TrainConfig(epochs=1))["epochs"] == 1.0


def test_the_default_keeps_its_declared_spelling() -> None:
    """Every pinned id was hashed with ``epochs: float = 8`` as 8 (tests/test_ids.py)."""
    assert to_dict(TrainConfig())["epochs"] == 8 and isinstance(to_dict(TrainConfig())["epochs"], int)
    assert config_hash(TrainConfig(epochs=8)) == config_hash(TrainConfig())
    # a float default that is a whole number is spelled as the float it is (review: 0 hashed apart from 0.0)
    assert (
        config_hash(TrainConfig(label_smoothing=0))
        == config_hash(TrainConfig())
        == config_hash(from_dict(TrainConfig, {"label_smoothing": "0"}))
    )


@dataclasses.dataclass
class _Mixed:
    rate: float | None = None
    count: int | float = 3
    name: str = "x"


def test_optional_floats_coerce_and_int_or_float_fields_do_not() -> None:
    assert to_dict(_Mixed(rate=2, count=5)) == {"rate": 2.0, "count": 5, "name": "x"}
    assert isinstance(to_dict(_Mixed(rate=2))["rate"], float)
    assert isinstance(to_dict(_Mixed(count=5))["count"], int)
    assert to_dict(_Mixed(rate=True))["rate"] is True  # a bool is not a number here


def test_a_record_reads_back_as_the_config_it_records() -> None:
    """YAML's 8 read back as 8.0, which hashes apart from the default's 8: a bench folder's recorded grid named
    other cells than its run's when the config left epochs out (review). The record leaves such a field out."""
    for config in (TrainConfig(), TrainConfig(epochs=8.0), TrainConfig(epochs=3), TrainConfig(label_smoothing=0.1)):
        back = from_dict(TrainConfig, yaml.safe_load(dump_yaml(config, record=True)))
        assert config_hash(back) == config_hash(config)
    assert "epochs" not in record_dict(TrainConfig()) and record_dict(TrainConfig(epochs=8.0))["epochs"] == 8.0


def test_respelled_gives_a_record_the_hash_of_the_config_that_wrote_it() -> None:
    for raw, default_spelled in (({"epochs": 8}, True), ({"epochs": 8.0}, False), ({"epochs": 3}, False)):
        back = respelled(from_dict(TrainConfig, raw), raw)
        assert (config_hash(back) == config_hash(TrainConfig())) is default_spelled
        assert back.epochs == raw["epochs"]
