"""The real vLLM 0.33.0 wheel, fetched once and unpacked, for contract tests that need no GPU.

vLLM has no CPU wheel, but the CUDA wheel is a zip: its pure-Python modules (``vllm.v1.serial_utils``,
``vllm.sampling_params``, ...) import with the CPU torch, and its metadata and sources can be read.
The wheel lands in ``$OPENRLHF_WHEEL_CACHE`` (default ``~/.cache/openrlhf-r1/wheels``), outside the
checkout, so fresh clones on one machine fetch it once (``pip download`` takes ~10 s). A failed fetch
fails the tests that need it: they are never skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

VLLM_VERSION = "0.33.0"


def wheel_cache() -> Path:
    root = os.environ.get("OPENRLHF_WHEEL_CACHE") or str(Path.home() / ".cache" / "openrlhf-r1" / "wheels")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def vllm_wheel_path() -> Path:
    """The pinned wheel file, downloaded (without dependencies) on first use."""
    cache = wheel_cache()
    found = sorted(cache.glob(f"vllm-{VLLM_VERSION}-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", f"vllm=={VLLM_VERSION}", "--no-deps", "-d", str(cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    found = sorted(cache.glob(f"vllm-{VLLM_VERSION}-*.whl"))
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"could not fetch the vLLM {VLLM_VERSION} wheel: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return found[0]


def unpacked_vllm() -> Path:
    """A directory holding the wheel's ``vllm/`` Python sources and its dist-info (no compiled objects)."""
    wheel = vllm_wheel_path()
    target = wheel_cache() / f"vllm-{VLLM_VERSION}-src"
    marker = target / ".complete"
    if not marker.exists():
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if not n.endswith((".so", ".cubin", ".fatbin"))]
            zf.extractall(target, members=names)
        marker.write_text(wheel.name)
    return target


def wheel_metadata() -> str:
    """The wheel's METADATA text (its Requires-Dist lines are what a GPU install resolves)."""
    with zipfile.ZipFile(vllm_wheel_path()) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(name).decode()


# Small pure-Python (or wheel-shipped) packages the wheel's modules import on the way to
# vllm.v1.serial_utils, vllm.sampling_params, vllm.engine.arg_utils and vllm.multimodal.processing;
# the heavy ones (xgrammar, flashinfer, CUDA kernels) are never reached. They belong in the dev extra.
CONTRACT_PIP_PACKAGES = ("msgspec", "pyzmq", "cbor2", "oss-harmony", "pybase64", "cachetools", "uvloop")
_MODULE_TO_PACKAGE = {
    "msgspec": "msgspec",
    "zmq": "pyzmq",
    "cbor2": "cbor2",
    "openai_harmony": "oss-harmony",
    "pybase64": "pybase64",
    "cachetools": "cachetools",
    "uvloop": "uvloop",
}


def vllm_module(name: str):
    """Import ``name`` (``vllm.sampling_params``, ``vllm.v1.serial_utils``, ...) from the unpacked wheel.

    The wheel's folder is on ``sys.path`` only while importing: once ``vllm`` is in ``sys.modules`` its
    submodules resolve through the package's own ``__path__``, and nothing later in the test session
    finds a vLLM *distribution* (``vllm_engine.vllm_available()`` reads pip metadata), so no test mistakes
    these CUDA-less sources for a usable vLLM. Fails, naming the pip packages, when a small dependency is
    missing; fails when some other ``vllm`` was imported first.
    """
    import importlib

    root = str(unpacked_vllm())
    loaded = sys.modules.get("vllm")
    if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(root):
        raise RuntimeError(f"another vllm ({loaded.__file__}) is imported; the contract tests need the {root} wheel")
    sys.path.insert(0, root)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        package = _MODULE_TO_PACKAGE.get((exc.name or "").split(".")[0])
        hint = f"pip install {' '.join(CONTRACT_PIP_PACKAGES)}" if package else "a vLLM dependency outside the list"
        raise RuntimeError(f"importing {name} from the vLLM {VLLM_VERSION} wheel: {exc} ({hint})") from exc
    finally:
        sys.path.remove(root)


def vllm_source(relative_path: str) -> str:
    """The text of one file of the wheel's ``vllm/`` package, e.g. ``entrypoints/llm.py``."""
    return (unpacked_vllm() / "vllm" / relative_path).read_text()


def vllm_class_ast(relative_path: str, class_name: str):
    """The ``ast.ClassDef`` of a top-level class in a wheel source file (for modules that cannot import here)."""
    import ast

    tree = ast.parse(vllm_source(relative_path))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return node
    raise LookupError(f"vllm/{relative_path} defines no class {class_name}")


def method_params(class_node, name: str) -> list[str]:
    """The parameter names of method ``name`` of a wheel class's ``ast.ClassDef`` (self first)."""
    import ast

    for node in class_node.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            a = node.args
            return [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
    raise AssertionError(f"{class_node.name} has no method {name}")


def method_source(relative_path: str, class_name: str, function: str) -> str:
    """A method of a wheel class as ``ast.unparse`` writes it (normalised spacing)."""
    import ast

    node = vllm_class_ast(relative_path, class_name)
    return ast.unparse(next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == function))


def compiled_method(relative_path: str, class_name: str, function: str, namespace: dict):
    """A method of a wheel class compiled from the wheel's own source as a plain function, its free names taken
    from ``namespace`` (for classes whose modules cannot import here)."""
    import ast

    node = next(n for n in vllm_class_ast(relative_path, class_name).body if getattr(n, "name", "") == function)
    node.decorator_list = []
    code = compile(ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[])), f"vllm/{relative_path}", "exec")
    exec(code, namespace)
    return namespace[function]
