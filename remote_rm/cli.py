"""openrlhf-reward-server: start the reward service (OpenRLHF's protocol) under uvicorn.

openrlhf-reward-server --host 127.0.0.1 --port 5000 --config configs/reward_recipes.yaml --workers 2
openrlhf-reward-server --config configs/reward_recipes.yaml --check    # validate, print the recipes, exit

Binds loopback unless `--host` says otherwise. `--token-env NAME` requires the bearer token held in the
environment variable NAME (default: `REMOTE_RM_TOKEN` when it is set). A bind beyond loopback without a token
is refused unless `--insecure` says so (anyone who reaches the port could then score, read /metrics and load
the server). `--check` validates the config, prints the resolved recipes and what METEOR has, and exits.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys

from remote_rm import __version__

DEFAULT_TOKEN_ENV = "REMOTE_RM_TOKEN"


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); False for 0.0.0.0, :: and the rest."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond loopback


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="openrlhf-reward-server", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s, loopback only)")
    p.add_argument("--port", type=int, default=5000, help="TCP port (default: %(default)s)")
    p.add_argument("--config", default=None, help="recipes YAML (default: the built-in recipes)")
    p.add_argument(
        "--workers", type=int, default=None, help="scoring worker processes (default: pool.workers, 0 = min(4, CPUs))"
    )
    p.add_argument(
        "--extra-logs-keys",
        choices=["all", "batch"],
        default=None,
        help="override extra_logs_keys (all: every component in every answer, for OpenRLHF's one-sample client; "
        "batch: only the request's components, what this project's trainer sends)",
    )
    p.add_argument(
        "--token-env",
        default=None,
        help=f"environment variable holding the bearer token to require (default: {DEFAULT_TOKEN_ENV} when set)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without a token (anyone who reaches the port can use the server)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level (default: %(default)s)",
    )
    p.add_argument("--check", action="store_true", help="validate the config, print it and WordNet's status, exit")
    p.add_argument("--version", action="version", version=f"remote_rm {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the config and serve; returns the exit code (2 for bad arguments/config)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 0 after --help / --version, 2 on usage errors
        return int(exc.code) if isinstance(exc.code, int) else 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from remote_rm.settings import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"openrlhf-reward-server: bad config:\n{exc}", file=sys.stderr)
        return 2
    if args.workers is not None:
        if args.workers < 1:
            print("openrlhf-reward-server: --workers must be >= 1", file=sys.stderr)
            return 2
        config.pool.workers = args.workers
    if args.extra_logs_keys is not None:
        config.extra_logs_keys = args.extra_logs_keys
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env, "")
        if not token:
            print(
                f"openrlhf-reward-server: --token-env {args.token_env}: the variable is unset or empty", file=sys.stderr
            )
            return 2
    elif os.environ.get(DEFAULT_TOKEN_ENV):
        token = os.environ[DEFAULT_TOKEN_ENV]
    if token is None and not is_loopback(args.host) and not args.insecure:
        print(
            f"openrlhf-reward-server: --host {args.host} binds beyond loopback without a token: set "
            f"{DEFAULT_TOKEN_ENV} (or --token-env NAME) to require a bearer token, or pass --insecure to serve "
            "anyone who reaches the port",
            file=sys.stderr,
        )
        return 2
    if not 0 < args.port < 65536:
        print(f"openrlhf-reward-server: --port {args.port} is not a TCP port", file=sys.stderr)
        return 2
    if args.check:
        from remote_rm import wordnet

        wn = config.wordnet
        wordnet.configure(wn.enabled, tuple(wn.source_dirs), wn.cache_dir or None)
        _, status = wordnet.load_wordnet()
        print(json.dumps({"config": config.model_dump(), "wordnet": status.as_dict()}, indent=2))
        return 0

    import uvicorn

    from remote_rm.app import create_app

    app = create_app(config, token=token)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=False,
            lifespan="on",
            timeout_keep_alive=config.limits.keep_alive_s,
        )
    )
    try:
        server.run()
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        return 130
    # uvicorn returns normally after a clean shutdown, and also when start-up failed (port in use,
    # lifespan error): only the former counts as success.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
