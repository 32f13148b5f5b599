"""Start and stop a real ``openrlhf-serve`` subprocess on a free loopback port (tests/serve, tests/remote_rm)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningServe:
    """A started server: ``base_url`` is its ``/v1`` root (what an OpenAI client takes)."""

    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path, name: str) -> None:
        self.proc, self.port, self.log_path, self.name = proc, port, log_path, name
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_serve(
    model_path: Path, workdir: Path, *, name: str, args: list[str] = (), env: dict | None = None, timeout: float = 240
) -> RunningServe:
    """``python -m openrlhf.cli.serve --model model_path`` on one torch thread; waits for /health."""
    port = free_port()
    log_path = workdir / f"serve-{name}.log"
    cmd = [sys.executable, "-m", "openrlhf.cli.serve", "--model", str(model_path), "--port", str(port)]
    cmd += ["--served-model-name", name, "--num-threads", "1", "--log-level", "warning", *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
    server = RunningServe(proc, port, log_path, name)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"openrlhf-serve exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.root}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"openrlhf-serve did not answer /health in {timeout} s:\n{server.log()}")
        time.sleep(0.2)
