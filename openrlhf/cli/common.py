"""What every entry point shares: config parsing, --print-config, and clear one-line failures."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from openrlhf.config import Config, ConfigError, dump_config, load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def default_config_path(name: str) -> str | None:
    path = CONFIG_DIR / name
    return str(path) if path.is_file() else None


def run_with_config(
    command: str, run: Callable[[Config], object], argv: list[str] | None = None, default_config: str | None = None
) -> int:
    """Parse the config, print it if asked, run; turn expected failures into a message and exit code."""
    from openrlhf.trainer.driver import TrainingStopped

    try:
        cfg, print_config = load_config(argv, default_config=default_config)
    except ConfigError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    if print_config:
        print(dump_config(cfg), end="")
        return 0
    try:
        run(cfg)
    except TrainingStopped as exc:
        print(f"{command}: stopped: {exc}", file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError) as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # Failures with their own clear message (reward service, checkpoint files, cluster resources,
        # the local reward server) print one line; anything else keeps its traceback.
        if not _is_expected_failure(exc):
            raise
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _is_expected_failure(exc: BaseException) -> bool:
    from openrlhf.trainer.checkpoint_io import CheckpointError
    from openrlhf.trainer.local_reward_server import RewardServerStartError
    from openrlhf.trainer.reward_client import RewardError
    from openrlhf.workers.placement import PlacementError

    return isinstance(exc, (RewardError, CheckpointError, RewardServerStartError, PlacementError))
