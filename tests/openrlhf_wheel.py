"""The real OpenRLHF 0.11.2 wheel, fetched once, and its PPO parser's flags read with ``ast`` (never imported).

OpenRLHF's wheel (200 KB, no dependencies fetched) holds ``openrlhf/cli/train_ppo_ray.py``, whose
``parser.add_argument`` calls define the flags a migrating user passes. The wheel lands in the same cache as
the vLLM wheel (tests/vllm_wheel.py: ``$OPENRLHF_WHEEL_CACHE``, default ``~/.cache/openrlhf-r1/wheels``). A
failed fetch fails the tests that need it: they are never skipped.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vllm_wheel import wheel_cache  # noqa: E402

OPENRLHF_VERSION = "0.11.2"
PPO_CLI = "openrlhf/cli/train_ppo_ray.py"
UNKNOWN = "<expression>"


def openrlhf_wheel_path() -> Path:
    """The pinned wheel file, downloaded (without dependencies) on first use.

    The wheel is tagged cp311 / manylinux1 but holds only Python sources: the tags are pinned so any
    interpreter fetches the same file.
    """
    cache_dir = wheel_cache()
    pattern = f"openrlhf-{OPENRLHF_VERSION}-*.whl"
    found = sorted(cache_dir.glob(pattern))
    if found:
        return found[0]
    cmd = [
        sys.executable, "-m", "pip", "download", f"openrlhf=={OPENRLHF_VERSION}", "--no-deps",
        "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
        "--platform", "manylinux1_x86_64", "-d", str(cache_dir),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    found = sorted(cache_dir.glob(pattern))
    if proc.returncode != 0 or not found:
        raise RuntimeError(
            f"could not fetch the OpenRLHF {OPENRLHF_VERSION} wheel: {' '.join(cmd)}\n{proc.stderr[-2000:]}"
        )
    return found[0]


def wheel_source(path: str = PPO_CLI) -> str:
    """The text of ``path`` (``openrlhf/...``) inside the wheel (its ``*.data/purelib`` tree)."""
    with zipfile.ZipFile(openrlhf_wheel_path()) as zf:
        names = [n for n in zf.namelist() if n == path or n.endswith("/purelib/" + path)]
        if not names:
            raise FileNotFoundError(f"{path} is not in {zf.filename}")
        return zf.read(names[0]).decode()


@dataclass(frozen=True)
class Flag:
    """One ``parser.add_argument`` of OpenRLHF's parser: what a command line may pass."""

    name: str  # without the leading --
    action: str | None
    nargs: Any
    type: str | None
    default: Any
    choices: tuple[Any, ...] | None

    @property
    def takes_values(self) -> bool:
        return self.action not in ("store_true", "store_false")


def wheel_function(path: str, name: str, prelude: str = "") -> Any:
    """The top-level function ``name`` of the wheel's ``path``, executed as written after ``prelude`` (its
    imports), without importing the rest of the module (its package name is this project's)."""
    source = wheel_source(path)
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace: dict[str, Any] = {}
    exec(compile(prelude + "\n" + ast.get_source_segment(source, node), f"{path} (OpenRLHF wheel)", "exec"), namespace)
    return namespace[name]


def _value(node: ast.AST, env: dict[str, Any]) -> Any:
    """A literal (or a literal computed from the loop variable), else UNKNOWN."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_value(e, env) for e in node.elts)
    if isinstance(node, ast.Name):
        return env.get(node.id, node.id if node.id in ("int", "float", "str") else UNKNOWN)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _value(node.operand, env)
        return -inner if isinstance(inner, (int, float)) else UNKNOWN
    if isinstance(node, ast.JoinedStr):
        parts = []
        for piece in node.values:
            part = _value(piece.value if isinstance(piece, ast.FormattedValue) else piece, env)
            if part is UNKNOWN:
                return UNKNOWN
            parts.append(str(part))
        return "".join(parts)
    if isinstance(node, ast.IfExp) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1:
        left, right = _value(node.test.left, env), _value(node.test.comparators[0], env)
        if isinstance(node.test.ops[0], ast.Eq) and UNKNOWN not in (left, right):
            return _value(node.body if left == right else node.orelse, env)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("int", "float"):
        args = [_value(a, env) for a in node.args]
        if len(args) == 1 and args[0] is not UNKNOWN:
            return {"int": int, "float": float}[node.func.id](args[0])
    return UNKNOWN


def _calls(body: list[ast.stmt], env: dict[str, Any]):
    """(add_argument call, loop variables) in ``body``, unrolling ``for x in (literal, ...)`` loops."""
    for stmt in body:
        if isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Name):
            values = _value(stmt.iter, env)
            if isinstance(values, tuple) and UNKNOWN not in values:
                for value in values:
                    yield from _calls(stmt.body, {**env, stmt.target.id: value})
                continue
        if isinstance(stmt, (ast.If, ast.With, ast.For, ast.While)):
            yield from _calls(stmt.body, env)
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                yield node, env


@cache
def ppo_flags() -> dict[str, Flag]:
    """Every flag of OpenRLHF 0.11.2's ``train_ppo_ray`` parser, by name without ``--``."""
    tree = ast.parse(wheel_source(PPO_CLI))
    main = next(
        node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.dump(node.test)
    )  # the parser is built under `if __name__ == "__main__":`
    flags: dict[str, Flag] = {}
    for call, env in _calls(main.body, {}):
        names = [_value(a, env) for a in call.args]
        keywords = {k.arg: k.value for k in call.keywords if k.arg}
        opts = {key: _value(node, env) for key, node in keywords.items()}
        type_node = keywords.get("type")
        for name in names:
            if isinstance(name, str) and name.startswith("--"):
                flags[name[2:]] = Flag(
                    name=name[2:],
                    action=opts.get("action"),
                    nargs=opts.get("nargs"),
                    type=type_node.id if isinstance(type_node, ast.Name) else None,
                    default=opts.get("default"),
                    choices=opts.get("choices"),
                )
    return flags
