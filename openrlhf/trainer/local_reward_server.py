"""Start the reward service (``remote_rm``) as a subprocess on a free loopback port, and stop it.

The embedded default: the driver runs ``python -m remote_rm.cli --host 127.0.0.1 --port P`` itself,
waits for ``GET /health``, sends rewards to ``/get_reward``, and stops the server at the end, also
when the driver crashes (atexit, and on Linux the child is told to exit when its parent dies).
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
from collections.abc import Iterator
from pathlib import Path

import httpx

from openrlhf.config import RewardConfig
from openrlhf.trainer.reward_client import RewardSource, create_reward_source


class RewardServerStartError(RuntimeError):
    """The local reward server exited or did not answer /health in time; the message holds its log tail."""


def find_free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free on ``host`` now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 30) -> str:
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
    sys.exit("the process that started the reward server is gone")
os.execv(sys.argv[2], sys.argv[2:])
"""


class LocalRewardServer:
    """``remote_rm`` on a free loopback port, as a context manager.

    >>> with LocalRewardServer(config_path=None, log_dir="outputs/run") as server:
    ...     client = RemoteRewardClient(server.url)

    ``url`` is the ``/get_reward`` URL, ``base_url`` the server root, ``log_path`` its log file.
    """

    def __init__(
        self,
        config_path: str | None = None,
        host: str = "127.0.0.1",
        *,
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        token_env: str | None = None,
        workers: int | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        if config_path and not Path(config_path).is_file():
            raise FileNotFoundError(f"reward.server_config: file not found: {config_path}")
        self.config_path = config_path
        self.host = host
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="reward_server_"))
        self.startup_timeout = startup_timeout
        self.token_env = token_env
        self.workers = workers
        self.extra_args = list(extra_args or [])
        self.port: int | None = None
        self.log_path = self.log_dir / "reward_server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the local reward server is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/get_reward"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self, port: int) -> list[str]:
        cmd = [sys.executable, "-m", "remote_rm.cli", "--host", self.host, "--port", str(port)]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        if self.token_env:
            cmd += ["--token-env", self.token_env]
        if self.workers is not None:  # None: the server's own default (pool.workers of its config)
            cmd += ["--workers", str(self.workers)]
        return cmd + self.extra_args

    def start(self, attempts: int = 3) -> LocalRewardServer:
        """Start the server and wait until ``GET /health`` answers 200; retries on a port taken meanwhile."""
        if self._proc is not None:
            raise RuntimeError("the local reward server is already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            port = find_free_port(self.host)
            self._spawn(port)
            try:
                self._wait_healthy()
                atexit.register(self.stop)
                return self
            except RewardServerStartError as exc:
                self.stop()
                port_taken = "address already in use" in _log_tail(self.log_path).lower()
                if not port_taken or attempt == attempts - 1:
                    raise exc from None
        raise AssertionError("unreachable")

    def _spawn(self, port: int) -> None:
        self.port = port
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(f"$ {' '.join(self.command(port))}\n".encode())
        self._log_file.flush()
        cmd = self.command(port)
        # PDEATHSIG fires when the starting *thread* exits, so it is only asked for from the main thread.
        if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
            cmd = [sys.executable, "-c", _PARENT_WATCH, str(os.getpid()), *cmd]
        # Its own process group, so stop() can also reap its scoring workers if it died without them.
        self._proc = subprocess.Popen(
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        health = f"{self.base_url}/health"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RewardServerStartError(
                    f"the local reward server exited with code {code} before answering {health}; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            try:
                if httpx.get(health, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RewardServerStartError(
                    f"the local reward server did not answer {health} within {self.startup_timeout:g} s; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.1)

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

    def __enter__(self) -> LocalRewardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def open_reward_source(reward_cfg: RewardConfig, log_dir: str | os.PathLike[str]) -> Iterator[RewardSource]:
    """The run's reward source, with the local server started first when ``reward.launch_local_server``.

    Closes the client and stops the server on exit.
    """
    if reward_cfg.launch_local_server and (reward_cfg.remote_url or reward_cfg.reward_func):
        raise ValueError(
            "reward.launch_local_server starts a reward server, so reward.remote_url and reward.reward_func "
            "must be empty"
        )
    with contextlib.ExitStack() as stack:
        urls = None
        if reward_cfg.launch_local_server:
            server = LocalRewardServer(
                reward_cfg.server_config or None,
                log_dir=log_dir,
                token_env=reward_cfg.token_env or None,
                # this trainer sends whole batches: logs only of the components the batch has
                extra_args=["--extra-logs-keys", "batch"],
            )
            stack.enter_context(server)
            urls = [server.url]
        source = create_reward_source(reward_cfg, urls=urls)
        stack.callback(source.close)
        yield source
