"""``openrlhf-serve`` as a subprocess on a free loopback port: a real model behind the OpenAI protocol for a run
that needs one (the R1-Reward demo's consistency judge) and for the tests.

>>> with LocalModelServer("outputs/judge_model", name="judge", log_dir="outputs/run") as judge:
...     client = openai.OpenAI(base_url=judge.openai_url, api_key="unused")
"""

from __future__ import annotations

import os
import sys

from openrlhf.utils.loopback_server import LoopbackServer


class LocalModelServer(LoopbackServer):
    """``python -m openrlhf.cli.serve --model MODEL`` on loopback; ``openai_url`` is its ``/v1`` root.

    The model loads before the port opens, so start-up waits up to ``startup_timeout`` (default 240 s).
    ``num_threads``: torch threads of the server (0: torch's default); ``extra_args``: more openrlhf-serve flags.
    """

    label = "openrlhf-serve"

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        name: str = "model",
        host: str = "127.0.0.1",
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 240.0,
        num_threads: int = 1,
        extra_args: list[str] | tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_name = f"serve-{name}.log"
        super().__init__(host, log_dir=log_dir, startup_timeout=startup_timeout, env=env)
        self.model = str(model)
        self.name = name
        self.num_threads = num_threads
        self.extra_args = list(extra_args)

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "openrlhf.cli.serve",
            "--model",
            self.model,
            "--host",
            self.host,
            "--port",
            str(port),
            "--served-model-name",
            self.name,
            "--num-threads",
            str(self.num_threads),
            "--log-level",
            "warning",
            *self.extra_args,
        ]
