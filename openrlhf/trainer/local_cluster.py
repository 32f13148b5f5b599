"""Local Ray clusters this project starts, and what a killed run leaves of them.

A driver killed with SIGKILL takes Ray's head processes with it (Ray's reaper ends its process group), but
Ray's dashboard agent and runtime-env agent ignore that and live on, holding memory and ports. So each driver
that starts a local cluster writes a marker into its Ray session folder (:func:`mark_session`: its pid and
start time), and the next start (:func:`end_leftovers_of_dead_runs`) finds sessions whose driver is gone and
ends every process still working in them (its command line, working folder or an open file is in the session
folder). Clusters this project did not start (``ray start``, ``RAY_ADDRESS``) carry no marker and are never
touched; a live driver's session is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

MARKER = "openrlhf_driver.json"
ENDED_MARKER = "openrlhf_driver.ended.json"


def ray_temp_root() -> Path:
    """Where Ray keeps its session folders (``$RAY_TMPDIR/ray``, default ``/tmp/ray``)."""
    return Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray"


def mark_session(session_dir: str | os.PathLike[str]) -> Path:
    """Record this process as the driver of the local cluster in ``session_dir``."""
    import psutil

    me = psutil.Process()
    path = Path(session_dir) / MARKER
    path.write_text(json.dumps({"pid": me.pid, "create_time": me.create_time()}))
    return path


def _driver_alive(record: dict) -> bool:
    import psutil

    try:
        proc = psutil.Process(int(record["pid"]))
        return abs(proc.create_time() - float(record["create_time"])) < 1.0  # not a reused pid
    except (psutil.NoSuchProcess, KeyError, ValueError, TypeError):
        return False


def _uses(proc, folder: str) -> bool:
    """True when ``proc`` works in ``folder``: in its command line, as its working folder, or an open file."""
    import psutil

    try:
        if any(folder in part for part in proc.cmdline()):
            return True
        if proc.cwd().startswith(folder):
            return True
        return any(f.path.startswith(folder) for f in proc.open_files())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return False


def session_processes(session_dir: str | os.PathLike[str]) -> list:
    """Live processes (not zombies) working in ``session_dir``, this one excluded."""
    import psutil

    folder = str(Path(session_dir))
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if _uses(proc, folder):
            found.append(proc)
    return found


def end_leftovers_of_dead_runs(root: str | os.PathLike[str] | None = None, *, wait_s: float = 5.0) -> int:
    """End the processes of every marked session under ``root`` whose driver is gone; returns how many.

    They get SIGKILL (the driver that could have used them is dead, and the agents ignore SIGTERM); each
    handled session's marker is renamed, so it is looked at once.
    """
    import psutil

    root = Path(root) if root is not None else ray_temp_root()
    ended = 0
    for marker in sorted(root.glob(f"session_*/{MARKER}")):
        try:
            record = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if _driver_alive(record):
            continue
        procs = session_processes(marker.parent)
        for proc in procs:
            try:
                proc.send_signal(signal.SIGKILL)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        gone, alive = psutil.wait_procs(procs, timeout=wait_s)
        ended += len(gone)
        if procs:
            logger.warning(
                "ended %d process(es) left by a killed run (Ray session %s, driver pid %s)%s",
                len(gone),
                marker.parent.name,
                record.get("pid"),
                f"; {len(alive)} did not exit: {[p.pid for p in alive]}" if alive else "",
            )
        try:
            marker.rename(marker.with_name(ENDED_MARKER))
        except OSError:
            pass
    return ended
