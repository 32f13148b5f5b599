"""A server subprocess on a free loopback port: started, waited for (``GET /health``), and stopped for sure.

The reward service (:class:`openrlhf.trainer.local_reward_server.LocalRewardServer`) and a served model
(:class:`openrlhf.serve.local.LocalModelServer`, ``openrlhf-serve``) both run this way. The child is stopped at
the end, also when the starting process crashes (atexit, and on Linux the child is told to exit when its parent
dies), and its whole process group is reaped, so worker processes of a server that died abruptly go too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


class ServerStartError(RuntimeError):
    """The server exited or did not answer /health in time; the message holds its log tail."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free on ``host`` now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join("    " + line for line in tail) or "    (log is empty)"


# Runs as the child before it becomes the server (exec keeps the process, so the setting stays):
# on Linux ask for SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG), and exit if the parent is
# already gone. Done in a fresh interpreter rather than a preexec_fn, which is unsafe with threads.
_PARENT_WATCH = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit("the process that started the server is gone")
os.execv(sys.argv[2], sys.argv[2:])
"""


class LoopbackServer:
    """A server subprocess on a free port of ``host``, as a context manager; subclasses give :meth:`command`.

    ``base_url`` is the server root, ``log_path`` its log file (``<log_dir>/<log_name>``), ``label`` how
    messages name it.
    """

    label = "the server"
    log_name = "server.log"

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="loopback_server_"))
        self.startup_timeout = startup_timeout
        self.env = dict(env or {})
        self.port: int | None = None
        self.log_path = self.log_dir / self.log_name
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.label} is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log(self) -> str:
        """The log's last lines (for a failing test's message)."""
        return log_tail(self.log_path, 60)

    def start(self, attempts: int = 3) -> LoopbackServer:
        """Start the server and wait until ``GET /health`` answers 200; retries on a port taken meanwhile."""
        if self._proc is not None:
            raise RuntimeError(f"{self.label} is already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            port = find_free_port(self.host)
            self._spawn(port)
            try:
                self._wait_healthy()
                atexit.register(self.stop)
                return self
            except ServerStartError as exc:
                self.stop()
                port_taken = "address already in use" in log_tail(self.log_path).lower()
                if not port_taken or attempt == attempts - 1:
                    raise exc from None
        raise AssertionError("unreachable")

    def _spawn(self, port: int) -> None:
        self.port = port
        cmd = self.command(port)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(f"$ {' '.join(cmd)}\n".encode())
        self._log_file.flush()
        # PDEATHSIG fires when the starting *thread* exits, so it is only asked for from the main thread.
        if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
            cmd = [sys.executable, "-c", _PARENT_WATCH, str(os.getpid()), *cmd]
        # Its own process group, so stop() can also reap its workers if it died without them.
        self._proc = subprocess.Popen(
            cmd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **self.env} if self.env else None,
        )

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        health = f"{self.base_url}/health"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.label} exited with code {code} before answering {health}; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            try:
                if httpx.get(health, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.label} did not answer {health} within {self.startup_timeout:g} s; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def restart(self) -> LoopbackServer:
        """Start the server again after it died: on its old port when that is free (its clients keep their
        URL), else on a new one (read ``base_url`` again)."""
        old_port = self.port
        self.stop()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._spawn(old_port)
            self._wait_healthy()
            atexit.register(self.stop)
            return self
        except ServerStartError:
            self.stop()
            return self.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (SIGTERM), kill it if it still runs after ``timeout`` s, then kill
        whatever is left of its process group (worker processes of a server that died abruptly)."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
