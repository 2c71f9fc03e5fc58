"""The package's public face (autosparse/__init__.py): every exported name resolves and is documented."""

from __future__ import annotations

import importlib

import pytest

import autosparse


@pytest.mark.parametrize("name", autosparse.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(autosparse, name) is not None


def test_the_package_docstring_lists_every_public_name() -> None:
    # `help(autosparse)` shows only the lazy __getattr__: the docstring is where a user sees the API
    assert autosparse.__doc__ is not None
    missing = [n for n in autosparse.__all__ if f"``{n}``" not in autosparse.__doc__]
    assert not missing, f"add {missing} to autosparse/__init__.py's docstring"


def test_dir_lists_the_lazy_exports() -> None:
    # tab completion and dir() read __dir__; the exports are resolved lazily, so they were missing
    assert set(autosparse.__all__) <= set(dir(autosparse))


def test_type_checkers_see_the_same_exports_as_the_lazy_getattr() -> None:
    """The `if TYPE_CHECKING:` imports are what mypy and pyright read (py.typed); with the lazy
    __getattr__ alone every public name was Any to them (helper). Both lists must stay equal."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(autosparse.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    seen = {a.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for a in node.names}
    assert seen == autosparse._EXPORTS
    assert sorted(autosparse.__all__) == sorted(autosparse._EXPORTS)


@pytest.mark.slow
def test_a_users_script_is_type_checked_against_our_annotations(tmp_path) -> None:
    """py.typed promises checked calls; with the lazy exports every name was Any, so a string density
    passed mypy, and masks.meta / masks.report() (typed object) could not be indexed (helper)."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "user.py"
    script.write_text(
        "import torch\n"
        "from torch import nn\n"
        "import autosparse\n"
        "class Net(nn.Module):\n"
        "    def __init__(self) -> None:\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(16, 4)\n"
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
        "        return self.fc(x.flatten(1))\n"
        "net = Net()\n"
        "data = (torch.randn(8, 16), torch.randint(0, 4, (8,)))\n"
        "masks: autosparse.Masks = autosparse.prune(net, 'snip', sparsity=0.9, data=data)\n"
        "paths: str = masks.meta['diagnostics']['paths']\n"
        "rows = [row['name'] for row in masks.report()['layers']]\n"
        "same: Net = masks.apply(net)\n"
        "copy: Net = autosparse.safe_deepcopy(same)\n"
        "result: autosparse.TrainResult\n"
        "autosparse.prune(net, 'snip', density='0.1', data=data)  # an error\n"
        "def typo(store: autosparse.FeatureStore) -> None:\n"
        "    store.reader(wher={'model': 'mlp'})  # an error: reader(**kwargs) passed it (helper)\n"
    )
    root = str(Path(autosparse.__file__).parents[1])  # the editable install is an import hook mypy cannot follow
    env = {"MYPYPATH": root, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--follow-imports=silent",
            "--cache-dir",
            str(tmp_path / "c"),
            "--no-error-summary",
            str(script),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, proc.stdout + proc.stderr
    assert ':18: error: Argument "density" to "prune" has incompatible type "str"' in errors[0]
    assert ':20: error: Unexpected keyword argument "wher" for "reader" of "FeatureStore"' in errors[1]


def test_dir_offers_the_api_not_this_modules_imports() -> None:
    names = dir(autosparse)
    assert not {"Any", "importlib", "annotations", "TYPE_CHECKING"} & set(names)
    assert "__version__" in names and "prune" in names
    importlib.import_module("autosparse.core")  # a submodule imported is an attribute: dir() lists it (review)
    assert "core" in dir(autosparse)
