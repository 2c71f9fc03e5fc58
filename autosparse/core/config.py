"""Typed hyperparameter dataclasses that *are* the CLI and the YAML config.

open_lth's idea: one dataclass per concern (training recipe, pruner hyperparameters, IRP
settings, bench grid), whose fields become ``--dashed-flags``, whose YAML form is the same
field names, and whose hash names the run folder. Precedence is defaults < YAML < flags.

We do this in a few hundred lines instead of depending on jsonargparse because we want dashed flags
(``--batch-size``), one-line errors that list the valid keys, and nested dataclasses in YAML
without a framework deciding how the CLI looks.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import functools
import inspect
import io
import json
import numbers
import textwrap
import tokenize
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from autosparse.core.config_record import to_dict
from autosparse.core.errors import ConfigError
from autosparse.core.flag_text import float_text, json_mapping, list_of, parse_bool, parse_items, split_list
from autosparse.core.yaml_files import load_yaml

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


def _converter(tp: Any) -> tuple[Any, dict[str, Any]]:
    """argparse ``type=`` and extra kwargs for a field type."""
    tp = _base_type(tp)
    origin = get_origin(tp)
    if tp is bool:
        return parse_bool, {"metavar": "BOOL"}
    if origin is Literal:
        choices = list(get_args(tp))
        return type(choices[0]), {"choices": choices}
    if _is_list(tp):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        inner = _base_type(args[0]) if args else str
        if dataclasses.is_dataclass(inner):
            return parse_items, {"metavar": "A,B,…|YAML"}
        return list_of(inner), {"metavar": "A,B,…"}
    if origin in (dict, Mapping) or tp is dict:
        return json_mapping, {"metavar": "JSON"}
    if tp in (int, float, str):
        return float_text if tp is float else tp, {"metavar": {int: "INT", float: "FLOAT", str: "TEXT"}[tp]}
    if tp is Path:
        return Path, {"metavar": "PATH"}
    return str, {"metavar": "TEXT"}


def _flag_text(value: Any) -> str:
    """A YAML value as it would be typed after ``KEY=`` on the command line (lists comma-joined)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value)
    return str(value)


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
    hide: Sequence[str] = (),
) -> None:
    """Add one ``--flag`` per field. Defaults are SUPPRESSed so we can tell what was given.

    ``hide`` names fields (a nested one dotted: ``train.seed``) whose flag stays out of ``--help``:
    one the command refuses whatever its value (``gen --help`` offered ``--train.seed``, helper),
    still parsed so that the refusal says why."""
    hints = _hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(_base_type(tp)):
            inner = tuple(h.split(".", 1)[1] for h in hide if h.startswith(f"{f.name}."))
            add_dataclass_arguments(parser, _base_type(tp), prefix=f"{prefix}{f.name}.", hide=inner)
            continue
        conv, extra = _converter(tp)
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
            )
        )
        text = f"{docs[f.name]} (default: {show_default(default)})" if f.name in docs else ""
        if _is_list(tp):
            extra["action"] = _ExtendAction
        parser.add_argument(
            _flag(prefix + f.name),
            dest=prefix + f.name,
            type=conv,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS if f.name in hide else text.replace("%", "%%"),  # argparse formats help with %
            **extra,
        )


def _is_list(tp: Any) -> bool:
    tp = _base_type(tp)
    return get_origin(tp) in (tuple, list, Sequence) or tp in (tuple, list)


class _ExtendAction(argparse.Action):
    """A list flag given twice adds up (``--hp a=1 --hp b=2``) instead of the second silently winning."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        before = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, tuple(before) + tuple(values) if before is not None else values)


def show_default(value: Any) -> str:
    """A default as a user would type it: ``snip,synflow`` for a list of methods, not their reprs."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [f for f in dataclasses.fields(value) if f.init]
        rest = {f.name: getattr(value, f.name) for f in fields[1:]}
        if all(v in ((), [], {}, "", None) for v in rest.values()):
            return str(getattr(value, fields[0].name))
        return json.dumps(to_dict(value))
    if isinstance(value, (list, tuple)):
        return ",".join(show_default(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return json.dumps(to_dict(value))
    if value == "":
        return '""'
    return str(value)


def add_config_argument(parser: argparse.ArgumentParser, help: str = "") -> None:
    """``--config YAML``: a file of the same options as the flags (without the ``--``)."""
    parser.add_argument(
        "--config", metavar="YAML", help=help or "YAML file of these options (without the --); flags override it"
    )


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *classes: type,
    exclude: Sequence[str] = (),
    hide: Sequence[str] = (),
) -> None:
    """One flag per field of ``classes``; a field name shared by two classes is one flag (the first's)."""
    seen: set[str] = set(exclude)
    for cls in classes:
        add_dataclass_arguments(parser, cls, exclude=tuple(seen), hide=hide)
        seen.update(f.name for f in dataclasses.fields(cls))


def read_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--config`` YAML (keys with ``-`` read as ``_``), or ``{}`` when none was given."""
    path = getattr(args, "config", None)
    return {str(k).replace("-", "_"): v for k, v in load_yaml(path).items()} if path else {}


#: attributes the CLI sets on its namespace that are not options (a YAML key of that name is just unknown)
_NOT_OPTIONS = frozenset({"func", "resumes", "command", "asked_kind"})


def resolve(
    args: argparse.Namespace,
    *classes: type,
    exclude: Sequence[str] = (),
    data: Mapping[str, Any] | None = None,
) -> list[Any]:
    """Build each dataclass from defaults < YAML (``--config``, or ``data`` when given) < flags.

    The one loading path of every subcommand. One flat YAML mapping serves several dataclasses:
    each key goes to the class that has it, and a key no class has (or one in ``exclude``) is an
    error listing the valid keys.
    """
    yaml_data = read_config(args) if data is None else dict(data)
    owned = [{f.name for f in dataclasses.fields(c)} - set(exclude) for c in classes]
    unknown = sorted(set(yaml_data) - set().union(*owned))
    where = getattr(args, "config", None) or "the config"
    flags = [k for k in unknown if k not in _NOT_OPTIONS and hasattr(args, str(k).replace("-", "_"))]
    if flags:  # `store:` / `out:` in a train-scorer YAML: where things go stays on the command line
        raise ConfigError(
            f"{', '.join(flags)} in {where} {'is a command-line option' if len(flags) == 1 else 'are command-line options'}"
            f" of this command, not a config key: pass {', '.join('--' + str(k).replace('_', '-') for k in flags)}"
        )
    if unknown:
        raise unknown_keys(unknown, set().union(*owned), f" in {where}")
    out = []
    for cls, names in zip(classes, owned, strict=True):
        section = {k: v for k, v in yaml_data.items() if k in names}
        out.append(from_dict(cls, merge(section, given(args, cls))))
    return out


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


def list_item(cls: type, value: Any) -> Any:
    """An item of a list of dataclasses in its short forms, as the mapping of fields it means.

    ``snip`` means ``{method: snip}`` (the first field), and ``{snip: {rounds: 10}}`` — one key
    that is no field, mapped to a mapping — means ``{method: snip, hparams: {rounds: 10}}`` (the
    first two fields). Why: a grid lists many methods or models, most with defaults, and
    ``[lenet_300_100, snip]`` reads better than a mapping per entry; it applies to every such list
    (bench methods and models, gen models, demo sources) instead of one rule per config.
    """
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    if isinstance(value, str):
        return {names[0]: value}
    if isinstance(value, Mapping) and len(value) == 1 and len(names) >= 2:
        ((key, rest),) = value.items()
        if str(key).replace("-", "_") not in names and (rest is None or isinstance(rest, Mapping)):
            return {names[0]: key} if rest is None else {names[0]: key, names[1]: rest}
    return value


def load_config(cls: type[T], path: str | Path) -> T:
    """A config dataclass from a YAML file of its fields (what ``--config`` reads before the flags)."""
    return from_dict(cls, load_yaml(path), where=str(path))


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
        args = [a for a in get_args(tp) if a is not Ellipsis]
        inner = _base_type(args[0]) if args else None
        written = value  # as the user wrote it, for the error
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)  # a list written as JSON (`--hp input_shape=[1,28,28]`)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not a valid JSON list ({exc})") from None
        if isinstance(value, str):
            value = split_list(value)
        elif isinstance(value, Mapping) and dataclasses.is_dataclass(inner):
            value = [value]  # one entry written without the list
        elif isinstance(value, Mapping) and inner is str:
            # KEY=VALUE pairs as a mapping (`hp: {rounds: 10}`); a key left empty means its default, as a
            # setting's does (`hp: {scorer: }` asked for a scorer named 'None'; hunt)
            value = [f"{k}={_flag_text(v)}" for k, v in value.items() if v is not None]
        elif not isinstance(value, (list, tuple, Mapping)):
            value = [value]  # one item written without the list (`seeds: 0`, `densities: 0.1`)
        nulls = [i for i, v in enumerate(value) if v is None] if isinstance(value, (list, tuple)) else []
        if nulls:  # `- ` left empty, or `[0.1, null]`: a TypeError or AttributeError further on
            raise ConfigError(f"{where}[{nulls[0]}] is empty (null); give it a value or remove it")
        if dataclasses.is_dataclass(inner):
            value = [list_item(inner, v) for v in value]  # type: ignore[arg-type]
        try:
            items = [_coerce(v, inner, where) if inner is not None else v for v in value]
        except ConfigError:
            if inner not in (int, float):
                raise
            example = "[1, 28, 28]" if "shape" in where else "[0, 1, 2]" if inner is int else "[0.01, 0.005]"
            raise ConfigError(f"{where} must be a list of {inner.__name__} (e.g. {example}), got {written!r}") from None
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        try:
            return parse_bool(value)
        except argparse.ArgumentTypeError:
            raise ConfigError(f"{where} must be true or false, got {value!r}") from None
    if (origin in (dict, Mapping) or tp is dict) and isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)  # a JSON object given as KEY=VALUE text (--hp 'base_config={"scope": "erk"}')
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc})") from None
    if (origin in (dict, Mapping) or tp is dict) and not isinstance(value, Mapping):
        raise ConfigError(
            f"{where} must be a mapping (YAML `{{width: 0.5}}`, JSON '{{\"width\": 0.5}}'), got {value!r}"
        )
    if tp in (int, float):
        return _number(value, tp, where)
    if tp is str:
        if isinstance(value, bool):  # YAML 1.1 reads unquoted off / no / on / yes as booleans
            word = "on, yes or true" if value else "off, no or false"
            raise ConfigError(
                f"{where} must be text, got {value}: YAML reads an unquoted {word} as {value}; quote it ('off')"
            )
        if isinstance(value, (list, tuple, Mapping)):
            raise ConfigError(f"{where} takes one value, got {value!r}")
        return str(value)
    return value


def _number(value: Any, tp: type, where: str) -> int | float:
    """``value`` as an int or float field takes it, refusing what ``int()`` would quietly change.

    Why: ``int(256.5)`` is 256 and ``float(True)`` is 1.0, so a YAML ``n_train: 256.5`` or
    ``seed: 1.9`` ran as something else than written, while the same value as a CLI flag was
    refused. A float with a whole value (``n_train: 1000.0``) is taken as that int.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be {tp.__name__}, got {value!r}")
    try:
        if tp is int and isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)  # exact, however long
        if tp is int and isinstance(value, numbers.Integral):
            return int(value)  # numpy ints too, exactly (a float detour rounds past 2**53)
        number = float(value) if tp is float or not isinstance(value, int) else value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} must be {tp.__name__}, got {value!r}") from exc
    if tp is float:
        return number
    if isinstance(number, float):
        if not number.is_integer():
            raise ConfigError(f"{where} must be a whole number, got {value!r}")
        return int(number)
    return int(number)


def typed_scalars(cls: type, values: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
    """``values`` with each scalar (text, bool, number) read as its field of ``cls`` reads it from YAML.

    Why: Python callers pass hyperparameters as keywords (``prune(model, "synflow", rounds="ten")``)
    that skip the YAML/CLI path, so a wrong type surfaced as a ``ValueError`` deep in the method. A
    one-value field takes a numpy number or a one-element tensor as its item and refuses a list; a
    mapping field takes its JSON text as the command line does. Other objects (a ``Path``, a
    ``torch.device``) pass unchanged: the caller built them on purpose.
    """
    hints = _hints(cls)
    out = dict(values)
    for key, value in values.items():
        if key not in hints:
            continue
        if value is None and not _allows_none(hints[key]):
            out.pop(key)  # `rounds: null` in a bench YAML: the default, as from_dict reads an empty key
            continue
        base, name = _base_type(hints[key]), f"{where}{'.' if where else ''}{key}"
        if base in (int, float, str, bool) or get_origin(base) is Literal:
            value = _one_value(value, name)
            if isinstance(value, (str, bool, int, float)):
                out[key] = _coerce(value, hints[key], name)
        elif (base is dict or get_origin(base) in (dict, Mapping)) and value is not None:
            out[key] = _mapping_value(value, name)
    return out


def _one_value(value: Any, where: str) -> Any:
    """A one-value field's value as a Python scalar: a numpy number or a one-element tensor or array
    read as its item; a list, a mapping or a tensor of several values refused, which reached the
    method as a raw ``TypeError`` (``rounds=[1]``, ``rounds=torch.tensor(3)``; helper)."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple, set, Mapping)):
        raise ConfigError(f"{where} takes one value, got {value!r}")
    if not hasattr(value, "item"):
        return value  # a Path for a scorer, a torch.device: objects the caller built on purpose pass unchanged
    count = value.numel() if callable(getattr(value, "numel", None)) else getattr(value, "size", None)  # torch, numpy
    if isinstance(value, numbers.Number) or count == 1:
        return value.item()
    raise ConfigError(f"{where} takes one value, got a {type(value).__name__} of {count} values")


def _mapping_value(value: Any, where: str) -> Mapping[str, Any]:
    """A mapping field's value: a mapping, or its JSON text as the command line writes it
    (``base_config='{"rounds": 2}'``, which raised a ``ValueError`` from Python; helper)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f'{where} takes a mapping, e.g. {{"rounds": 2}}; got {value!r}') from None
    if not isinstance(value, Mapping):
        raise ConfigError(f'{where} takes a mapping, e.g. {{"rounds": 2}}; got {value!r}')
    return value


#: the names other libraries give these settings, which difflib finds no likeness in (a YAML's or a flag's)
OTHER_NAMES = {"learning_rate": "lr", "wd": "weight_decay", "bs": "batch_size", "max_epochs": "epochs"}


def meant_key(key: str, valid: Collection[str]) -> str | None:
    """The setting ``key`` was likely meant as: ``learning_rate`` for ``lr``, a typo for its field."""
    if (other := OTHER_NAMES.get(key)) in valid:
        return other
    close = difflib.get_close_matches(key, sorted(valid), n=1)
    return close[0] if close else None


def unknown_keys(
    unknown: Sequence[str], valid: set[str], where: str, nested: Mapping[str, str] | None = None
) -> ConfigError:
    """The error for keys no setting has, with the key each was likely meant as: a YAML typo
    should get the hint a mistyped flag gets. ``nested``: keys that are a field of a nested section
    (``epochs`` of ``train``), named with where they go, as the flag's did-you-mean names ``--train.epochs``."""
    nested = nested or {}
    meant = {k: meant_key(k, valid) for k in unknown}
    named = ", ".join(
        f"{k} (a field of {nested[k]}: write {nested[k]}: {{{k}: …}})"
        if k in nested
        else f"{k} (did you mean {m}?)"
        if m
        else k
        for k, m in meant.items()
    )
    return ConfigError(
        f"unknown {'key' if len(unknown) == 1 else 'keys'} {named}{where}; valid keys: {', '.join(sorted(valid))}"
    )


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build a dataclass from a (YAML) mapping; unknown keys are an error listing valid ones."""
    hints = _hints(cls)  # type: ignore[arg-type]
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    normalised = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(normalised) - names)
    dotted = [k for k in unknown if "." in k and k.split(".", 1)[0] in names]
    if dotted:  # the flags' spelling (--irp.rounds) written as a YAML key
        outer, inner = dotted[0].split(".", 1)
        raise ConfigError(
            f"key {dotted[0]}{' in ' + where if where else ''} is a flag's spelling; in YAML nest it: "
            f"{outer}: {{{inner}: …}}"
        )
    if unknown:
        sections = {n: tp for n, tp in hints.items() if n in names and dataclasses.is_dataclass(tp)}
        nested = {k: n for k in unknown for n, tp in sections.items() if k in {f.name for f in dataclasses.fields(tp)}}
        raise unknown_keys(unknown, names, f" in {where}" if where else "", nested)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    required = [
        k
        for k, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and k not in normalised
    ]
    if required:  # `methods: [{hparams: {}}]` raised "__init__() missing 1 required positional argument"
        raise ConfigError(
            f"{where + ': ' if where else ''}{', '.join(required)} {'is' if len(required) == 1 else 'are'} required "
            f"(no default): give {', '.join(f'{k}: …' for k in required)}"
        )
    kwargs = {}
    for k, v in normalised.items():
        if v is None and not _allows_none(hints[k]):
            # `train:` or `model_kwargs:` left empty in YAML: the field's default, as if the key were absent
            if fields[k].default is dataclasses.MISSING and fields[k].default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where + '.' if where else ''}{k} needs a value; it has no default")
            continue
        kwargs[k] = _coerce(v, hints[k], f"{where + '.' if where else ''}{k}")
    return cls(**kwargs)


def _allows_none(tp: Any) -> bool:
    """Whether ``None`` is a value of the annotation (``X | None``, ``Optional[X]``, ``Any``)."""
    if tp is Any or tp is type(None):
        return True
    return get_origin(tp) in (typing.Union, types.UnionType) and type(None) in get_args(tp)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, mappings key by key.

    A KEY=VALUE list flag (``--hp a=1``) over a YAML mapping or KEY=VALUE list of the same field
    (``hp: {b: 2}``, ``hp: [b=2]``) also merges key by key — a user adding one hyperparameter on the command line expects the
    config's others to stay, not to vanish.
    """
    out = dict(base)
    for k, v in override.items():
        k = str(k).replace("-", "_")
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        elif _is_pairs(v) and (isinstance(out.get(k), Mapping) or _is_pairs(out.get(k))):
            out[k] = {**_pairs(out[k]), **_pairs(v)}
        else:
            out[k] = v
    return out


def _is_pairs(value: Any) -> bool:
    """A non-empty list of ``KEY=VALUE`` texts (``--hp a=1 --hp b=2``, or ``hp: [a=1]`` in YAML)."""
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(i, str) and "=" in i for i in value)


def _pairs(value: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE texts or a mapping as one mapping, keys spelled as fields are (``a-b`` is ``a_b``)."""
    items = value.items() if isinstance(value, Mapping) else (i.split("=", 1) for i in value)
    return {str(k).strip().replace("-", "_"): v.strip() if isinstance(v, str) else v for k, v in items}


def listed(value: Any, item: type | None = None, *, where: str = "") -> list[Any]:
    """A list field of a config built in Python, as its YAML gives it: one value where a list belongs
    becomes a list of it (``datasets="fake:fashion-mnist"`` was read as the datasets f, a, k, …), and
    with ``item`` (a dataclass whose first field a bare name fills) a name or a mapping becomes one."""
    if isinstance(value, str):
        values: list[Any] = split_list(value)  # "snip,synflow", as a YAML string or a flag gives it
    elif isinstance(value, (bytes, numbers.Number, Mapping)) or dataclasses.is_dataclass(value):
        values = [value]
    else:
        values = list(value)
    if item is None:
        return values
    # the short forms YAML takes too (`snip`, `{synflow: {rounds: 10}}`): list_item, the same rule (review)
    return [v if isinstance(v, item) else from_dict(item, list_item(item, v), where=where) for v in values]
