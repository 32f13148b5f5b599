"""Checks and fixes a run's config gets before any worker starts (the driver's and the SFT runner's)."""

from __future__ import annotations

import time
from pathlib import Path

from openrlhf.config import Config
from openrlhf.utils.errors import UserError


def absolutize_model_paths(cfg: Config) -> None:
    """Local checkpoint paths become absolute: Ray workers do not run in the driver's directory."""
    for section in (cfg.actor, cfg.ref):
        path = section.model_name_or_path
        if path and Path(path).exists():
            section.model_name_or_path = str(Path(path).resolve())


def check_reward_urls_reachable(reward_cfg) -> None:
    """Fail fast, before the (slow) worker setup, when a reward.remote_url accepts no TCP connection.

    Tries each URL ``reward.retries + 1`` times, sleeping ``backoff * 2**k`` s between tries, like the
    client does; raises a UserError naming the URL (the CLI prints it as one line).
    """
    import socket
    from urllib.parse import urlsplit

    for url in reward_cfg.remote_url:
        parts = urlsplit(url)  # an http(s) URL with a host: checked when the config loads (RewardConfig)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        last_error: OSError | None = None
        for attempt in range(reward_cfg.retries + 1):
            if attempt:
                time.sleep(reward_cfg.backoff * 2 ** (attempt - 1))
            try:
                with socket.create_connection((parts.hostname, port), timeout=min(reward_cfg.timeout, 10.0)):
                    last_error = None
                    break
            except OSError as exc:
                last_error = exc
        if last_error is not None:
            raise UserError(
                f"reward.remote_url: the reward server {url} is not reachable "
                f"({reward_cfg.retries + 1} tries): {last_error}"
            )
