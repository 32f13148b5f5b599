"""The package's layers point down only, and no function in it is over 100 lines.

Every module of openrlhf/ is parsed (not imported): each import at any depth counts, a function-level one or one
under ``if TYPE_CHECKING:`` as much as a module-level one, and relative imports are resolved. A module may import
from its own layer and the layers below it, never from one above. Low to high (:data:`LAYERS`):

    utils; models, data, openrlhf_flags; config_base; config_algo; config; config_loading, config_help;
    algorithms, plan; rollout; workers; trainer; eval, serve; demos; cli
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "openrlhf"

# Low to high. The tree (config_base, config_algo: the algo section, config) is below its loading and help
# (config_loading and config_help build on the tree).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("utils",),
    ("models", "data", "openrlhf_flags"),
    ("config_base",),
    ("config_algo",),
    ("config",),
    ("config_loading", "config_help"),
    ("algorithms", "plan"),
    ("rollout",),
    ("workers",),
    ("trainer",),
    ("eval", "serve"),
    ("demos",),
    ("cli",),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
MAX_FUNCTION_LINES = 100


def _modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module of the package; a package is its ``__init__``."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _layer(dotted: str) -> str | None:
    """The layer a module of the package belongs to (its name below ``openrlhf``); None outside the package."""
    parts = dotted.split(".")
    if parts[0] != "openrlhf" or len(parts) < 2:
        return None
    return parts[1]


def _imported(module: str, path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted name) of every module of the package ``tree`` imports, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source == "openrlhf":  # from openrlhf import config_loading: the names are the modules
                found += [(node.lineno, f"openrlhf.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, source))
    return [(line, name) for line, name in found if name == "openrlhf" or name.startswith("openrlhf.")]


def upward_imports() -> list[str]:
    problems = []
    for module, path in _modules():
        own = _layer(module)
        if own is None:
            continue
        for line, name in _imported(module, path, ast.parse(path.read_text(encoding="utf-8"))):
            target = _layer(name)
            if target in RANK and RANK[target] > RANK[own]:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {own} imports {name} ({target} is above)")
    return problems


def long_functions() -> list[str]:
    problems = []
    for _, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    problems.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.name} is {lines} lines")
    return problems


def test_every_part_of_the_package_has_a_layer():
    parts = {_layer(module) for module, _ in _modules()} - {None}
    assert sorted(parts - set(RANK)) == [], "add the new module or package to LAYERS in tests/test_layers.py"


def test_imports_point_down_only():
    problems = upward_imports()
    assert not problems, "imports from a lower layer to a higher one:\n" + "\n".join(problems)


def test_no_function_is_over_100_lines():
    problems = long_functions()
    assert not problems, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import openrlhf.trainer.driver", ["openrlhf.trainer.driver"]),
        ("from openrlhf import config_loading, utils", ["openrlhf.config_loading", "openrlhf.utils"]),
        ("def f():\n    from ..trainer.driver import RLTrainer", ["openrlhf.trainer.driver"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from openrlhf.cli import common", ["openrlhf.cli"]),
        ("from . import base", ["openrlhf.rollout"]),
        ("import torch\nfrom pydantic import BaseModel", []),
    ],
)
def test_the_scan_sees_imports_at_any_depth(source, expected):
    """The scan itself: function-level, TYPE_CHECKING and relative imports count (here as in openrlhf/rollout/x.py)."""
    names = [name for _, name in _imported("openrlhf.rollout.x", PACKAGE / "rollout" / "x.py", ast.parse(source))]
    assert names == expected
