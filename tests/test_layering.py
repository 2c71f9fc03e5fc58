"""The package's imports run one way: down the pipeline, never up, never in a circle.

docs/ARCHITECTURE.md draws the layers; this test is their enforcement. It reads every module's
imports (top-level and inside functions) from the source, so an import hidden in a function to
dodge a cycle counts like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (module prefix, layer): a module takes the layer of the longest prefix that matches it.
LAYERS: list[tuple[str, int]] = [
    ("autosparse.core", 1),
    ("autosparse.data", 2),
    ("autosparse.models", 2),
    ("autosparse.task", 2),
    ("autosparse.topology", 3),
    ("autosparse.pruners", 4),
    ("autosparse.training", 4),
    ("autosparse.features", 5),
    ("autosparse.store", 6),
    ("autosparse.sources", 7),
    ("autosparse.scorer", 8),
    ("autosparse.api", 9),
    ("autosparse.bench", 10),
    ("data_gen", 11),
    ("autosparse.demo", 12),
    ("autosparse.cli", 12),
    ("autosparse.__main__", 12),
    ("autosparse", 12),  # the package's own __init__: lazy exports only
]
#: what the store may see besides the vocabulary: the feature schema it records
STORE_MAY_IMPORT = ("autosparse.core", "autosparse.features.schema")
#: where a function-level import of our own modules is allowed: the CLI keeps `--help` fast by
#: importing torch (through our modules) only when a subcommand runs
LAZY_OK = ("autosparse.cli", "data_gen.cli")


def layer_of(module: str) -> int:
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return dict(LAYERS)[best]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, known: set[str]) -> str | None:
    """The module an imported name lives in (``from a.b import c`` may import module ``a.b.c``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _imports() -> dict[str, list[tuple[str, bool, int]]]:
    """module -> [(imported module, inside a function, line)] for imports of our packages."""
    files = sorted([*ROOT.glob("autosparse/**/*.py"), *ROOT.glob("data_gen/**/*.py")])
    known = {_module_name(p) for p in files}
    out: dict[str, list[tuple[str, bool, int]]] = {}
    for path in files:
        mod = _module_name(path)
        tree = ast.parse(path.read_text())
        edges: list[tuple[str, bool, int]] = []
        # `if TYPE_CHECKING:` imports never run: what a type checker reads (autosparse/__init__.py), not late imports
        typing_only = {
            id(inner)
            for node in tree.body
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                if not (t.startswith("autosparse") or t.startswith("data_gen")):
                    continue
                target = _resolve(t, known)
                if target and target != mod:
                    edges.append((target, node.col_offset > 0 and id(node) not in typing_only, node.lineno))
        out[mod] = edges
    return out


IMPORTS = _imports()


def test_the_layer_table_covers_every_module() -> None:
    for mod in IMPORTS:
        assert layer_of(mod) >= 1, mod


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{mod} (layer {layer_of(mod)}) imports {target} (layer {layer_of(target)}) at line {line}"
        for mod, edges in IMPORTS.items()
        for target, _, line in edges
        if layer_of(target) > layer_of(mod) and not (mod == "autosparse" or mod.startswith("autosparse.__"))
    ]
    assert not upward, "\n".join(upward)


def test_the_library_never_imports_data_gen() -> None:
    bad = [f"{m} -> {t}" for m, edges in IMPORTS.items() if m.startswith("autosparse") for t, _, _ in edges]
    assert not [b for b in bad if "-> data_gen" in b]


def test_the_store_sees_only_the_vocabulary_and_the_schema() -> None:
    bad = [
        f"{m} -> {t}"
        for m, edges in IMPORTS.items()
        if m.startswith("autosparse.store")
        for t, _, _ in edges
        if not t.startswith("autosparse.store") and not t.startswith(STORE_MAY_IMPORT)
    ]
    assert not bad, bad


def test_no_import_cycle() -> None:
    graph = {m: {t for t, _, _ in edges} for m, edges in IMPORTS.items()}
    # a package's __init__ re-exporting its modules is not a cycle with them
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w.startswith(v + "."):  # a package importing its own submodule
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    assert not sccs, f"import cycles: {sccs}"


def test_function_level_imports_of_our_modules_only_in_the_cli() -> None:
    late = [
        f"{m}:{line} imports {t} inside a function"
        for m, edges in IMPORTS.items()
        for t, inside, line in edges
        if inside and not m.startswith(LAZY_OK)
    ]
    assert not late, "\n".join(late)


@pytest.mark.parametrize("path", sorted(ROOT.glob("autosparse/**/*.py")) + sorted(ROOT.glob("data_gen/**/*.py")))
def test_no_source_file_over_600_lines(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= 600, f"{path.relative_to(ROOT)} has {n} lines; find the second job inside it and give it a file"
