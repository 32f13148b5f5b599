"""Start a real ``openrlhf-serve`` subprocess on a free loopback port (tests/serve, tests/remote_rm)."""

from __future__ import annotations

from pathlib import Path

from openrlhf.serve.local import LocalModelServer


def start_serve(
    model_path: Path, workdir: Path, *, name: str, args: list[str] = (), env: dict | None = None, timeout: float = 240
) -> LocalModelServer:
    """openrlhf-serve for ``model_path`` on one torch thread, started (``/health`` answered); ``.stop()`` it."""
    server = LocalModelServer(
        model_path, name=name, log_dir=workdir, startup_timeout=timeout, extra_args=list(args), env=env
    )
    return server.start()
