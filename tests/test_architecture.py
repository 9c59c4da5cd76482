"""The package's layers: import-linter's contracts (pyproject.toml) hold, and would catch a
break; modules and functions stay small enough to read."""

import ast
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO

PACKAGE = REPO / "src" / "jaxsoftmax"
LAYERS = ["cli", "estimators", "plots", "outputs", "search", "trained", "sweep", "data", "core"]


def lint_imports(root: pathlib.Path, path: pathlib.Path) -> subprocess.CompletedProcess:
    """import-linter with `root`'s pyproject.toml over the package found first in `path`."""
    code = "from importlinter.cli import lint_imports_command; lint_imports_command(['--no-cache'])"
    command = [sys.executable, "-c", code]
    environment = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_the_import_contracts_hold():
    done = lint_imports(REPO, PACKAGE.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("core/model.py", "from jaxsoftmax.sweep import config", "layers"),
        ("trained/run.py", "from jaxsoftmax.outputs import logdirs", "layers"),
        ("sweep/loop.py", "import argparse", "argparse only under cli"),
        ("core/engine.py", "import tensorboardX", "core is pure"),
    ],
)
def test_the_contracts_catch_an_upward_import(tmp_path, module, line, contract):
    """Mutation check of the contracts themselves: one bad import in a copy breaks one."""
    shutil.copytree(PACKAGE, tmp_path / "jaxsoftmax", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "jaxsoftmax" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    done = lint_imports(tmp_path, tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "1 broken" in done.stdout
    broken = done.stdout.split("Broken contracts", 1)[1]
    assert contract in broken and module.replace("/", ".").removesuffix(".py") in broken


def test_every_layer_is_a_package_and_only_shims_stay_on_top():
    on_top = {path.name for path in PACKAGE.glob("*.py")}
    shims = {"train.py": "train", "predict.py": "predict", "report.py": "report",
             "export.py": "export", "__main__.py": "commands"}  # fmt: skip
    assert on_top == {"__init__.py", "errors.py", "files.py", "starting.py"} | set(shims)
    for shim, command in shims.items():
        body = ast.parse((PACKAGE / shim).read_text()).body
        imports = [node for node in body if isinstance(node, ast.ImportFrom)]
        assert [node.module for node in imports] == [f"jaxsoftmax.cli.{command}"]
    assert sorted(path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()) == (
        sorted(LAYERS)
    )


def test_modules_and_functions_stay_readable():
    """No module over 400 lines, no function over 60 (the flag lists of parsers aside)."""
    too_long = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > 400:
            too_long.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 60 and "parser" not in node.name:
                    too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length}")
    assert not too_long
