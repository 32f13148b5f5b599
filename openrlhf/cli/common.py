"""What every entry point shares: config parsing, --print-config, and clear one-line failures."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from openrlhf.config import Config, ConfigError, dump_config
from openrlhf.config_loading import load_config
from openrlhf.utils.errors import UserError

# ``--plan-cluster X`` / ``--plan-model-size X`` are spelled-out aliases of ``--plan.cluster`` / ``--plan.model_size``.
PLAN_ALIASES = {"--plan-cluster": "--plan.cluster", "--plan-model-size": "--plan.model_size"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` of the argparse-based entry points: the description as written (its example commands keep their
    lines) and every option's default after its help, unless the help names it or there is none (None, off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if not action.option_strings or default is None or default is False or default is argparse.SUPPRESS:
            return text
        if "%(default)" in text or "(default" in text:
            return text
        return f"{text} (default: %(default)s)".strip()


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """``parser.parse_args(argv)``, or the exit code argparse asked for (0 after --help, 2 on a usage error)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2


def split_plan_args(argv: list[str]) -> tuple[list[str], bool]:
    """Take ``--plan`` out of ``argv`` and rewrite the ``--plan-*`` aliases; returns (argv, plan_requested)."""
    out: list[str] = []
    requested = False
    for arg in argv:
        name, eq, value = arg.partition("=")
        if arg == "--plan":
            requested = True
        elif name in PLAN_ALIASES:
            out.append(PLAN_ALIASES[name] + eq + value)
        else:
            out.append(arg)
    return out, requested


def print_plan(command: str, cfg: Config) -> int:
    """``--plan``: print the placement and memory plan; 0 if it fits, 1 if not (problems on stderr), 2 for a
    bad plan.cluster / plan.model_size. Ray is not started when plan.cluster is given."""
    from openrlhf.plan import check_plan, format_plan, parse_cluster_spec, parse_model_size

    try:
        if cfg.plan.cluster:
            parse_cluster_spec(cfg.plan.cluster)
        if cfg.plan.model_size:
            parse_model_size(cfg.plan.model_size)
    except ValueError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    unenforced = cfg.model_copy(update={"plan": cfg.plan.model_copy(update={"enforce": False})})
    try:
        plan = check_plan(unenforced)
    except (ValueError, FileNotFoundError) as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1
    print(format_plan(plan))
    for problem in plan.problems:
        print(f"{command}: {problem}", file=sys.stderr)
    return 0 if plan.fits else 1


def print_help(command: str, argv: list[str], description: str = "", *, allow_plan: bool = False) -> int | None:
    """``-h`` / ``--help [all | SECTION | KEY | openrlhf]`` in ``argv``: print the help (a one-screen summary
    without an argument) and return 0 (2 for an unknown section); None when no help was asked for."""
    from openrlhf.config_help import format_help, help_request

    section = help_request(argv)
    if section is None:
        return None
    if allow_plan and section.strip().lower() in ("", "all"):
        description = (
            f"{description.rstrip()}\n\n--plan: print the placement and memory plan and exit (0: it fits, 1: not);\n"
            "--plan-cluster NODESxGPUSxGB and --plan-model-size SIZE are --plan.cluster and --plan.model_size."
        )
    try:
        print(format_help(command, section, description), end="")
    except ConfigError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    return 0


def run_with_config(
    command: str,
    run: Callable[[Config], object],
    argv: list[str] | None = None,
    default_config: str | None = None,
    *,
    allow_plan: bool = False,
    description: str = "",
) -> int:
    """Parse the config, print it if asked, run; turn expected failures into a message and exit code.

    ``allow_plan``: accept ``--plan`` (print the placement and memory plan instead of running) and the
    ``--plan-cluster`` / ``--plan-model-size`` aliases. ``-h`` / ``--help [SECTION]`` prints the config
    tree's keys (openrlhf/config_help.py) after ``description`` and exits 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if (code := print_help(command, argv, description, allow_plan=allow_plan)) is not None:
        return code
    want_plan = False
    if allow_plan:
        argv, want_plan = split_plan_args(argv)
    try:
        cfg, print_config = load_config(argv, default_config=default_config)
    except ConfigError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    if print_config:
        print(dump_config(cfg), end="")
        return 0
    if want_plan:
        return print_plan(command, cfg)
    from openrlhf.trainer.driver import TrainingStopped

    try:
        run(cfg)
    except TrainingStopped as exc:
        print(f"{command}: stopped: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:
        # The user's own errors (a config value, a data file's row, a missing file) and failures with their own
        # clear message (reward service, checkpoint files, cluster resources, a server started on loopback: the
        # reward service, a served judge) print one line; anything else, an internal ValueError included, keeps
        # its traceback.
        if not _is_expected_failure(exc):
            raise
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _is_expected_failure(exc: BaseException) -> bool:
    from openrlhf.trainer.checkpoint_io import CheckpointError
    from openrlhf.trainer.reward_client import RewardError
    from openrlhf.utils.loopback_server import ServerStartError
    from openrlhf.workers.placement import PlacementError

    expected = (UserError, FileNotFoundError, RewardError, CheckpointError, ServerStartError, PlacementError)
    return isinstance(exc, expected)
