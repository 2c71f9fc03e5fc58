"""Typed hyperparameter dataclasses that *are* the CLI and the YAML config.

open_lth's idea: one dataclass per concern (training recipe, pruner hyperparameters, IRP
settings, bench grid), whose fields become ``--dashed-flags``, whose YAML form is the same
field names, and whose hash names the run folder. Precedence is defaults < YAML < flags.

We do this in ~150 lines instead of depending on jsonargparse because we want dashed flags
(``--batch-size``), one-line errors that list the valid keys, and nested dataclasses in YAML
without a framework deciding how the CLI looks.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import hashlib
import inspect
import io
import json
import textwrap
import tokenize
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from autosparse.core.errors import ConfigError

T = TypeVar("T")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(tp: Any) -> Any:
    """Strip Optional[...] / X | None."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _base_type(args[0])
    return tp


def _parse_bool(text: str) -> bool:
    low = str(text).lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _converter(tp: Any) -> tuple[Any, dict[str, Any]]:
    """argparse ``type=`` and extra kwargs for a field type."""
    tp = _base_type(tp)
    origin = get_origin(tp)
    if tp is bool:
        return _parse_bool, {"metavar": "BOOL"}
    if origin is Literal:
        choices = list(get_args(tp))
        return type(choices[0]), {"choices": choices}
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        inner = _base_type(args[0]) if args else str
        return (lambda s: tuple(inner(v) for v in str(s).replace(",", " ").split())), {"metavar": "A,B,…"}
    if origin in (dict, Mapping) or tp is dict:
        return json.loads, {"metavar": "JSON"}
    if tp in (int, float, str):
        return tp, {}
    if tp is Path:
        return Path, {}
    return str, {}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """One line of help per field: ``metadata["help"]``, else the docstring under the field, else
    the comment at the end of its line (as tyro reads them).

    Why comments count: the config dataclasses are read by people first, and a short comment next
    to a field is where its meaning already lives; making that the ``--help`` text keeps one
    source of truth instead of a second description that drifts.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            src = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # no source (frozen app): help falls back to the default
            continue
        body = ast.parse(src).body[0].body  # type: ignore[attr-defined]
        comments = {
            tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokenize.generate_tokens(io.StringIO(src).readline)
            if tok.type == tokenize.COMMENT
        }
        for i, node in enumerate(body):
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            text = comments.get(node.end_lineno or node.lineno) or comments.get(node.lineno)
            nxt = body[i + 1] if i + 1 < len(body) else None
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                text = inspect.cleandoc(nxt.value.value)
            if text:
                docs[node.target.id] = " ".join(text.split())
    for f in dataclasses.fields(cls):
        if f.metadata.get("help"):
            docs[f.name] = str(f.metadata["help"])
    return docs


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    prefix: str = "",
    exclude: Sequence[str] = (),
) -> None:
    """Add one ``--flag`` per field. Defaults are SUPPRESSed so we can tell what was given."""
    hints = _hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(_base_type(tp)):
            add_dataclass_arguments(parser, _base_type(tp), prefix=f"{prefix}{f.name}.", exclude=())
            continue
        conv, extra = _converter(tp)
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
            )
        )
        parser.add_argument(
            _flag(prefix + f.name),
            dest=prefix + f.name,
            type=conv,
            default=argparse.SUPPRESS,
            help=f"{docs[f.name]} (default: {default})" if f.name in docs else f"(default: {default})",
            **extra,
        )


def given(ns: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The fields of ``cls`` that were given on the command line, as a nested dict."""
    out: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        if dataclasses.is_dataclass(tp):
            sub = given(ns, tp, f"{prefix}{f.name}.")
            if sub:
                out[f.name] = sub
        elif hasattr(ns, prefix + f.name):
            out[f.name] = getattr(ns, prefix + f.name)
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; see configs/ for examples")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse {path} as YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of field: value, got {type(data).__name__}")
    return data


def _coerce(value: Any, tp: Any, where: str) -> Any:
    tp = _base_type(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping of {tp.__name__} fields")
        return from_dict(tp, value, where=where)  # type: ignore[arg-type]
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where} must be one of {list(get_args(tp))}, got {value!r}")
        return value
    if origin in (tuple, list) or tp in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split()]
        args = [a for a in get_args(tp) if a is not Ellipsis]
        inner = _base_type(args[0]) if args else None
        items = [_coerce(v, inner, where) if inner is not None else v for v in value]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if tp is bool:
        return value if isinstance(value, bool) else _parse_bool(value)
    if tp in (int, float):
        try:
            return tp(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} must be {tp.__name__}, got {value!r}") from exc
    if tp is str:
        return str(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build a dataclass from a (YAML) mapping; unknown keys are an error listing valid ones."""
    hints = _hints(cls)  # type: ignore[arg-type]
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    normalised = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(normalised) - names)
    if unknown:
        raise ConfigError(
            f"unknown {'key' if len(unknown) == 1 else 'keys'} {', '.join(unknown)}"
            f"{' in ' + where if where else ''}; valid keys: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where + '.' if where else ''}{k}") for k, v in normalised.items()}
    return cls(**kwargs)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        k = str(k).replace("-", "_")
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def to_dict(obj: Any) -> Any:
    """JSON/YAML-safe form of a (nested) dataclass: tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_hash(obj: Any, length: int = 10) -> str:
    """A stable short hash of a config: run folders and store run ids are named by it."""
    blob = json.dumps(to_dict(obj), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)
