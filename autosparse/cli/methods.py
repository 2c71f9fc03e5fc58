"""``autosparse methods|models|datasets``: what the registries hold, as tables a person reads."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import fnmatch
import shutil
import textwrap
from collections.abc import Sequence

from autosparse.core.errors import ConfigError

#: name families outside the zoo's list, one line each (name pattern, what it is)
MODEL_FAMILIES = [
    (
        "tv:<name>",
        "any torchvision classification model, e.g. tv:resnet18 (options: cifar_stem, and torchvision's own; "
        "list them with: autosparse models tv:)",
    ),
    (
        "timm:<name>",
        "any timm model, e.g. timm:convnext_atto (optional extra: pip install 'autosparse[timm]'; "
        "list them with: autosparse models 'timm:GLOB', e.g. 'timm:convnext*')",
    ),
]


#: every method takes input_shape (autosparse.pruners.entry.prune); only the methods that run the model
#: without data list it among their hyperparameters, so a user reading the others' tables would not know
INPUT_SHAPE_NOTE = (
    "autosparse.prune(..., input_shape=(C, H, W)) takes the shape of one example (no batch axis) with every "
    "method: the data-free methods that list it run the model on it; for the others it is what the path "
    "diagnostics run when no pruning data is given (the CLI always has its --dataset's)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "methods",
        help="list pruning methods and their hyperparameters",
        description="List the registered pruning methods; with a METHOD, each of its hyperparameters (pass them "
        "as `prune --hp KEY=VALUE`, in YAML under `hp:`, or as keywords of autosparse.prune).",
    )
    p.add_argument(
        "method", nargs="?", default=None, help="one method: each hyperparameter with its default and what it does"
    )
    p.set_defaults(func=_methods)
    p = sub.add_parser(
        "models",
        help="list models in the zoo with their inputs and options",
        description="List the zoo's models with the inputs they take and their options (`--model-kwargs`). "
        "Any torchvision classifier is `tv:<name>` and any timm model `timm:<name>` (with the timm extra); "
        "`autosparse models tv:` and `autosparse models 'timm:convnext*'` list their names.",
    )
    p.add_argument(
        "pattern",
        nargs="?",
        default=None,
        help="only the names matching this glob: a zoo name (e.g. 'resnet*'), or tv:[GLOB] / timm:[GLOB] for "
        "torchvision's classifiers and timm's models, one per line as --model takes them",
    )
    p.set_defaults(func=_models)
    p = sub.add_parser(
        "datasets",
        help="list datasets with their shapes and sizes",
        description="List the datasets with their input shapes, classes and sizes, and whether their files are "
        "found (in --data-root, else the default data folders); `fake:<name>` generates random data of a "
        "dataset's shape, for smoke tests.",
    )
    p.add_argument(
        "--data-root", default=None, help="look for the datasets' files here, as --data-root of train/prune/bench"
    )
    p.set_defaults(func=_datasets)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> str:
    """Columns padded to their widest cell; the last column wraps within ``width`` (the terminal's).

    When the last column would be narrower than 30 characters it goes on its own indented lines.
    """
    width = width or shutil.get_terminal_size((120, 24)).columns
    fixed = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    indent = sum(fixed) + 2 * len(fixed)
    room = width - indent
    own_line = room < 30
    lines = []
    for row in [headers, *rows]:
        head = "  ".join(str(c).ljust(w) for c, w in zip(row[:-1], fixed, strict=False)) + "  "
        if own_line:
            lines.append(head.rstrip())
            lines += textwrap.wrap(str(row[-1]), width - 4, initial_indent="    ", subsequent_indent="    ")
            continue
        wrapped = textwrap.wrap(str(row[-1]), room) or [""]
        lines.append(head + wrapped[0])
        lines += [" " * indent + w for w in wrapped[1:]]
    return "\n".join(line.rstrip() for line in lines)


def _methods(args: argparse.Namespace) -> int:
    from autosparse.pruners import available, get_pruner

    if getattr(args, "method", None):
        return _one_method(args.method)
    rows = []
    for name in available():
        cls = get_pruner(name)
        rows.append([name, _data_word(cls), cls.description])
    print(text_table(["method", "data", "what it does"], rows))
    print(
        "\nhyperparameters (defaults; set with `autosparse prune --hp KEY=VALUE`, `hp: {KEY: VALUE}` in a prune config or `hparams:` in a bench config):"
    )
    for name in available():
        cls = get_pruner(name)
        hps = [f"{f.name}={_default(f)!r}" for f in dataclasses.fields(cls.Config)]
        print(textwrap.fill(", ".join(hps) or "none", 100, initial_indent=f"  {name:12s} ", subsequent_indent=" " * 15))
    print(f"\n{INPUT_SHAPE_NOTE}")
    print("in a bench config an imp row takes other hparams (it trains with the bench's data): autosparse methods imp")
    print("what each one does: autosparse methods METHOD")
    return 0


def _data_word(cls: type) -> str:
    """Whether a method reads the pruning batch; imp reads none but trains on a whole training set
    (its ``dataset`` hyperparameter), which a bare "no" hid (docs review)."""
    if cls.data_dependent:
        return "yes"
    if any(f.name == "dataset" for f in dataclasses.fields(cls.Config)):
        return "trains"
    return "no"


def _one_method(name: str) -> int:
    """Why: the defaults alone do not say what ``collapse`` or ``rescale_normalized`` change; the
    meaning lives in the comment on each config field, which is also the CLI's --help text."""
    from autosparse.pruners import get_pruner

    cls = get_pruner(name)  # an unknown name: one error listing the methods
    print(f"{name}: {cls.description}")
    word = _data_word(cls)
    print(
        "needs data: no pruning batch; trains on its dataset (hyperparameter)\n"
        if word == "trains"
        else f"needs data: {word}\n"
    )
    print(_hparam_table(cls.Config))
    if not any(f.name == "input_shape" for f in dataclasses.fields(cls.Config)):
        print(f"\n{INPUT_SHAPE_NOTE}")
    if name == "imp":  # the bench's imp row is an IRP run with the bench's own data and recipe
        from autosparse.bench.config import ImpSettings

        print(f"\nset them with `autosparse prune --method {name} --hp KEY=VALUE`")
        print("\nin a bench config an imp row trains with the bench's data and recipe, and takes only these hparams:")
        print(_hparam_table(ImpSettings))
        return 0
    print(
        f"\nset them with `autosparse prune --method {name} --hp KEY=VALUE`, `hp: {{KEY: VALUE}}` in a prune config or `hparams:` in a bench config"
    )
    return 0


def _hparam_table(config_cls: type) -> str:
    """Each field of a hyperparameter dataclass: name, default, and its comment (field_docs)."""
    from autosparse.core.config import field_docs

    docs = field_docs(config_cls)
    rows = [[f.name, repr(_default(f)), docs.get(f.name, "")] for f in dataclasses.fields(config_cls)]
    return text_table(["hyperparameter", "default", "what it does"], rows) if rows else "no hyperparameters"


def _default(f: dataclasses.Field) -> object:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def _models(args: argparse.Namespace) -> int:
    from autosparse.models import available_models, model_info

    pattern = getattr(args, "pattern", None)
    if pattern is not None and ":" in pattern:
        return _family_names(pattern)
    names = [n for n in available_models() if pattern is None or fnmatch.fnmatchcase(n, pattern)]
    if not names:
        raise ConfigError(
            f"no zoo model matches {pattern!r}; the zoo has {', '.join(available_models())}. torchvision's and "
            "timm's models are listed with `autosparse models tv:` and `autosparse models 'timm:GLOB'`"
        )
    rows = []
    for name in names:
        info = model_info(name)
        opts = ", ".join(f"{k}={v}" for k, v in info.options.items()) or "none"
        rows.append([name, ", ".join(info.inputs), opts, info.description])
    if pattern is None:
        rows += [[family, "", "", what] for family, what in MODEL_FAMILIES]
    print(text_table(["model", "inputs", "options (defaults)", "description"], rows))
    print("\ninputs: flat = any shape, flattened; signal = 1-D (C, L); image = (C, H, W). Set options with")
    print(
        "--model-kwargs JSON or model_kwargs: in a config, e.g. --model mlp --model-kwargs '{\"widths\": [500, 150]}'"
    )
    return 0


def _family_names(pattern: str) -> int:
    """``tv:GLOB`` / ``timm:GLOB``: the names a family can build, prefixed as ``--model`` takes them.

    Why: timm has ~1,400 architectures and torchvision ~80; a user choosing one should not have to
    leave the tool (``python -c "import timm; ..."``) to see which names exist.
    """
    from autosparse.models.info import TIMM_PREFIX, TV_PREFIX

    prefix, _, glob = pattern.partition(":")
    prefix += ":"
    glob = glob or "*"
    if prefix == TV_PREFIX:
        from autosparse.models.torchvision_models import torchvision_names

        names = torchvision_names()
    elif prefix == TIMM_PREFIX:
        from autosparse.models.timm_models import timm_names

        names = timm_names()
    else:
        raise ConfigError(
            f"unknown model family {prefix!r} in {pattern!r}; the families are {TV_PREFIX} (torchvision) and "
            f"{TIMM_PREFIX} (timm), e.g. `autosparse models tv:resnet*`"
        )
    found = [n for n in names if fnmatch.fnmatchcase(n, glob)]
    if not found:
        near = difflib.get_close_matches(glob, names, n=5, cutoff=0.5)
        raise ConfigError(
            f"no {prefix} model matches {glob!r}"
            + (f"; similar names: {', '.join(prefix + n for n in near)}" if near else "")
            + f" (globs: * any text, ? one character; `autosparse models {prefix}` lists all {len(names)})"
        )
    print("\n".join(prefix + n for n in found))
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from autosparse.core.errors import DatasetNotFoundError
    from autosparse.data import available_datasets, check_dataset_files, dataset_info

    rows, missing = [], []
    for name in available_datasets():
        info = dataset_info(name)
        sizes = f"{info.n_train or '?'}/{info.n_test or '?'}"
        shape = "x".join(map(str, info.input_shape))
        try:  # looks for the files, reads none: why a user's first load would fail, said before it
            check_dataset_files(name, args.data_root)
            found = "yes"
        except DatasetNotFoundError as exc:
            found = "no"
            missing.append(str(exc))
        rows.append([name, shape, str(info.num_classes), sizes, found, ", ".join(info.aliases), info.description])
    print(text_table(["dataset", "input", "classes", "train/test", "found", "aliases", "description"], rows))
    for why in missing:
        print(f"\n{why}")
    print("\nfake:<name> gives random data of <name>'s shapes (no files), e.g. fake:cifar10 for timing")
    return 0
