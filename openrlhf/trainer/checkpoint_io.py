"""Checkpoint files: atomic directories, rotation, the latest complete checkpoint, driver and RNG state.

Layout under the checkpoint root::

    <root>/global_step<N>/          one checkpoint (DeepSpeed state written by the workers, plus ...)
        driver_state.json           step, data position, RNG states of the driver
        complete                    written last: only directories holding it count
    <root>/.tmp-global_step<N>-...  a checkpoint being written (renamed into place when done)

A checkpoint is written into a sibling temp directory, fsynced, then renamed into place, so a crash
leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

COMPLETE_MARKER = "complete"
DRIVER_STATE_FILE = "driver_state.json"
CHECKPOINT_PREFIX = "global_step"
_STEP_DIR = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing or unreadable; the message names it."""


def checkpoint_dir(root: str | os.PathLike[str], step: int) -> Path:
    """Where the checkpoint of ``step`` lives: ``<root>/global_step<step>``."""
    return Path(root) / f"{CHECKPOINT_PREFIX}{step}"


def checkpoint_step(path: str | os.PathLike[str]) -> int | None:
    """The step of a ``global_step<N>`` directory name, else None."""
    match = _STEP_DIR.match(Path(path).name)
    return int(match.group(1)) if match else None


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (and root itself), so a rename after it is durable."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                _fsync_path(path)
        _fsync_path(Path(dirpath))


@contextlib.contextmanager
def atomic_directory(final_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a sibling temp directory to write into; on success mark it complete and rename it to ``final_dir``.

    On an exception the temp directory is removed and an existing ``final_dir`` is left as it was.
    An existing ``final_dir`` is replaced: moved aside, the new one renamed in, the old one removed.
    """
    tmp_dir = begin_directory(final_dir)
    try:
        yield tmp_dir
        commit_directory(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def begin_directory(final_dir: str | os.PathLike[str]) -> Path:
    """The temp directory of :func:`atomic_directory`, for a write that finishes later (:func:`commit_directory`;
    on failure remove it)."""
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = final_dir.with_name(f"{_TMP_PREFIX}{final_dir.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp_dir.mkdir()
    return tmp_dir


def commit_directory(tmp_dir: Path, final_dir: str | os.PathLike[str]) -> None:
    """Mark ``tmp_dir`` complete, fsync it and rename it to ``final_dir`` (an existing one is replaced)."""
    final_dir = Path(final_dir)
    token = tmp_dir.name.rsplit("-", 2)[-2:]
    (tmp_dir / COMPLETE_MARKER).write_text("ok\n")
    fsync_tree(tmp_dir)
    old_dir = None
    if final_dir.exists():
        old_dir = final_dir.with_name(f"{_OLD_PREFIX}{final_dir.name}-{'-'.join(token)}")
        os.rename(final_dir, old_dir)
    os.rename(tmp_dir, final_dir)
    _fsync_path(final_dir.parent)
    if old_dir is not None:
        shutil.rmtree(old_dir, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a file via a temp file in the same folder, fsync, and rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def list_checkpoints(root: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints under ``root`` (directories ``global_step<N>`` holding ``complete``), by step."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        step = checkpoint_step(path)
        if step is not None and path.is_dir() and (path / COMPLETE_MARKER).is_file():
            found.append((step, path))
    return [path for _step, path in sorted(found)]


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The complete checkpoint with the highest step, or None when there is none."""
    checkpoints = list_checkpoints(root)
    return checkpoints[-1] if checkpoints else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rotate_checkpoints(root: str | os.PathLike[str], keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest complete checkpoints, and temp/old leftovers of dead processes.

    Returns the removed paths. Directories without the ``complete`` marker that are not leftovers are
    not touched.
    """
    if keep < 1:
        raise ValueError(f"ckpt.keep must be >= 1, got {keep}")
    root = Path(root)
    removed = list_checkpoints(root)[:-keep]
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith((_TMP_PREFIX, _OLD_PREFIX)) and path.is_dir():
                pid = re.search(r"-(\d+)-[0-9a-f]{8}$", path.name)
                if pid and not _pid_alive(int(pid.group(1))):
                    removed.append(path)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


# --------------------------------------------------------------------------- RNG and driver state


def capture_rng_state() -> dict[str, Any]:
    """The RNG states of python ``random``, numpy's global generator, torch CPU (and CUDA when present),
    as plain JSON-able values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": cached},
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
    }
    if torch.cuda.is_available():
        state["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode("ascii") for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the RNGs back to a :func:`capture_rng_state` result."""
    try:
        py = state["python"]
        random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
        npy = state["numpy"]
        np.random.set_state(
            (npy["kind"], np.asarray(npy["keys"], dtype=np.uint32), npy["pos"], npy["has_gauss"], npy["cached"])
        )
        torch_bytes = base64.b64decode(state["torch"])
        torch.set_rng_state(torch.frombuffer(bytearray(torch_bytes), dtype=torch.uint8))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"RNG state is malformed ({exc!r}); expected capture_rng_state()'s output") from exc
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8) for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def save_driver_state(directory: str | os.PathLike[str], state: dict[str, Any], *, with_rng: bool = True) -> Path:
    """Write ``state`` (JSON-able: step, data position, ...) plus the RNG states as driver_state.json.

    NaN and infinities are written as Python's json writes them (``NaN``), and read back as floats.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = dict(state)
    if with_rng:
        payload["rng"] = capture_rng_state()
    try:
        text = json.dumps(payload, indent=1)  # NaN/inf kept (Python's JSON dialect) so metrics round-trip
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"driver state for {directory} is not JSON-serialisable: {exc}") from exc
    path = directory / DRIVER_STATE_FILE
    atomic_write_text(path, text + "\n")
    return path


def load_driver_state(directory: str | os.PathLike[str], *, restore_rng: bool = True) -> dict[str, Any]:
    """Read driver_state.json from a checkpoint directory; restores the RNG states unless told not to."""
    path = Path(directory) / DRIVER_STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint has no driver state: {path} not found")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the driver state must be a JSON object")
    if restore_rng and "rng" in state:
        restore_rng_state(state["rng"])
    return state
