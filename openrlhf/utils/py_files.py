"""Python files a user names in the config (a reward function, an agent), imported as modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def import_python_file(path: str | Path, prefix: str) -> ModuleType:
    """The module of ``path``, imported under a name unique to its resolved path (``prefix`` + a hash), so two
    files of the same name do not collide. Raises ImportError when it cannot be loaded as a module, and whatever
    the file raises while it runs."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"{prefix}_{abs(hash(str(path.resolve())))}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
