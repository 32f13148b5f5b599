"""Start the reward service (``remote_rm``) as a subprocess on a free loopback port, and stop it.

The embedded default: the driver runs ``python -m remote_rm.cli --host 127.0.0.1 --port P`` itself,
waits for ``GET /health``, sends rewards to ``/get_reward``, and stops the server at the end, also
when the driver crashes (atexit, and on Linux the child is told to exit when its parent dies).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from openrlhf.config import ConfigError, RewardConfig
from openrlhf.trainer.reward_client import RewardSource, create_reward_source
from openrlhf.utils.loopback_server import LoopbackServer


class LocalRewardServer(LoopbackServer):
    """``remote_rm`` on a free loopback port, as a context manager.

    >>> with LocalRewardServer(config_path=None, log_dir="outputs/run") as server:
    ...     client = RemoteRewardClient(server.url)

    ``url`` is the ``/get_reward`` URL, ``base_url`` the server root, ``log_path`` its log file.
    """

    label = "the local reward server"
    log_name = "reward_server.log"

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
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
        super().__init__(host, log_dir=log_dir, startup_timeout=startup_timeout)
        self.config_path = config_path
        self.token_env = token_env
        self.workers = workers
        self.extra_args = list(extra_args or [])

    @property
    def url(self) -> str:
        return f"{self.base_url}/get_reward"

    def command(self, port: int) -> list[str]:
        cmd = [sys.executable, "-m", "remote_rm.cli", "--host", self.host, "--port", str(port)]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        if self.token_env:
            cmd += ["--token-env", self.token_env]
        if self.workers is not None:  # None: the server's own default (pool.workers of its config)
            cmd += ["--workers", str(self.workers)]
        return cmd + self.extra_args


@contextlib.contextmanager
def open_reward_source(reward_cfg: RewardConfig, log_dir: str | os.PathLike[str]) -> Iterator[RewardSource]:
    """The run's reward source, with the local server started first when ``reward.launch_local_server``.

    Closes the client and stops the server on exit.
    """
    if reward_cfg.launch_local_server and (reward_cfg.remote_url or reward_cfg.reward_func):
        raise ConfigError(
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
        source.launched_server = server if reward_cfg.launch_local_server else None  # restarted if it dies
        yield source
