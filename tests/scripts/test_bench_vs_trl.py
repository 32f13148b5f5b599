"""bench/vs_trl.py is runnable as documented, and its TRL side stays independent of the project (it runs in
TRL's own venv, where openrlhf is not installed)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_help_names_the_shapes_and_variants():
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "vs_trl.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    for word in ("--shapes", "--variants", "--trl-transformers", "small", "hybrid"):
        assert word in out.stdout


def test_bad_shape_is_refused_by_name():
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "vs_trl.py"), "--shapes", "huge"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "huge" in out.stderr


def test_trl_side_imports_nothing_from_the_project():
    tree = ast.parse((REPO / "bench" / "vs_trl_trl_side.py").read_text())
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert modules and not [m for m in modules if m.split(".")[0] == "openrlhf"]
