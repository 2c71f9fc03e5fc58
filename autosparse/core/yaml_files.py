"""YAML files as configs are read: one mapping of keys, each given once, and errors naming the fix.

Apart from :mod:`autosparse.core.config` (the dataclasses those mappings become) because reading a
file well is its own job: a folder or a binary file given as ``--config``, a key given twice (YAML
keeps the last silently), merge keys.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from autosparse.core.errors import ConfigError


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; see configs/ for examples")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; pass a YAML file (configs/ has examples)")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path} as text ({exc.reason}); pass a YAML file") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse {path} as YAML: {_where(exc)}") from exc
    if data is None:
        # an empty file ran every default: `gen --config empty.yaml` started full Fashion-MNIST, 10 rounds of 8
        # epochs, for a file the user had not written yet (helper)
        raise ConfigError(
            f"config file {path} is empty (nothing but comments or blank lines); write the fields to set, or drop "
            "--config to run the defaults"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of field: value, got {type(data).__name__}")
    return data


def yaml_value(text: str) -> Any:
    """One value written in YAML, read as config files are (``010`` is 10, ``1:30`` stays text)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def _where(exc: yaml.YAMLError) -> str:
    """The parser's complaint with its line and column: its first line alone ("while scanning for the
    next token") named neither the problem (a tab) nor where it was (hunt)."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc).splitlines()[0]


#: YAML 1.1 integers a flag reads otherwise: ``010`` (octal 8 to PyYAML, 10 to ``--seed 010``) and
#: base-60 ``1:30`` (90 to PyYAML, no number to a flag)
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_BASE_60 = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (it silently kept the last:
    ``method: synflow`` then, lines later, ``method: snip`` ran snip)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` merges (its keys may be overridden); complex keys are the loader's
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); keep one",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        """Read ``010`` as 10, as the command line does; keep base-60 ``1:30`` as the text it is (a number
        field then refuses it by name). PyYAML read ``seed: 010`` as seed 8 and ``1:30`` as 90 (hunt)."""
        text = str(node.value)
        if _OCTAL.fullmatch(text):
            return int(text.replace("_", ""), 10)
        if _BASE_60.fullmatch(text):
            return text
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        return str(node.value) if _BASE_60.fullmatch(str(node.value)) else super().construct_yaml_float(node)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _UniqueKeyLoader.construct_yaml_float)
