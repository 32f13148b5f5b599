"""openrlhf-serve: an OpenAI-compatible chat server (`/v1/chat/completions`) over one checkpoint.

openrlhf-serve --model outputs/tiny-lm --port 8001 --served-model-name judge --max-batch-size 32
openrlhf-serve --model outputs/tiny-lm --backend vllm --tensor-parallel-size 2

`--backend` picks the engine as `rollout.backend` does in training: hf (transformers generate), vllm (the
CUDA build on GPUs, the CPU build on CPUs; text models only there) or auto (vLLM on GPUs, else HF).

Binds loopback unless `--host` says otherwise. `--token-env NAME` requires the bearer token (the API key
of an OpenAI client) held in the environment variable NAME (default: `OPENRLHF_SERVE_TOKEN` when it is set);
a bind beyond loopback without a token is refused unless `--insecure` says so, as `openrlhf-reward-server`
does. The model is loaded before the port opens, so a 200 from `/health` means it is ready.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from openrlhf.cli.common import HelpFormatter, parse_args

DEFAULT_TOKEN_ENV = "OPENRLHF_SERVE_TOKEN"
PROG = "openrlhf-serve"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="Hugging Face checkpoint folder (LM or VLM) to serve")
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback unless you say otherwise)")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--served-model-name", default=None, help="the model name clients send (default: folder name)")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="cap on max_tokens / max_completion_tokens")
    p.add_argument("--max-prompt-tokens", type=int, default=4096, help="longer prompts are refused (400)")
    p.add_argument("--max-n", type=int, default=16, help="largest n (choices per request)")
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=32,
        help="most waiting requests (equal sampling parameters, no seed) run as one engine call; 1: one at a time",
    )
    p.add_argument(
        "--backend", default="hf", choices=["hf", "vllm", "auto"], help="rollout engine (as rollout.backend)"
    )
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM: workers the model is split over")
    p.add_argument(
        "--enforce-eager", action="store_true", help="vLLM: no torch.compile / graphs (starts sooner, decodes slower)"
    )
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="weights dtype")
    p.add_argument("--num-threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0, help="seed of the RNG for requests without a seed")
    p.add_argument("--trust-remote-code", action="store_true", help="run the checkpoint's own modelling code")
    p.add_argument(
        "--token-env",
        default=None,
        help=f"environment variable holding the bearer token to require (default: {DEFAULT_TOKEN_ENV} when set)",
    )
    p.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback --host without a token (anyone may generate)"
    )
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="log level"
    )
    return p


def _token(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(token or None, error message or None), as openrlhf-reward-server decides it."""
    from remote_rm.cli import is_loopback

    token = None
    if args.token_env:
        token = os.environ.get(args.token_env, "")
        if not token:
            return None, f"--token-env {args.token_env}: the variable is unset or empty"
    elif os.environ.get(DEFAULT_TOKEN_ENV):
        token = os.environ[DEFAULT_TOKEN_ENV]
    if token is None and not is_loopback(args.host) and not args.insecure:
        return None, (
            f"--host {args.host} binds beyond loopback without a token: set {DEFAULT_TOKEN_ENV} (or --token-env "
            "NAME) to require a bearer token, or pass --insecure to serve anyone who reaches the port"
        )
    return token, None


def _load(args: argparse.Namespace):
    """The served model (weights loaded, engine started) from the parsed arguments."""
    from openrlhf.serve.model import ChatModel

    return ChatModel(
        args.model,
        name=args.served_model_name,
        max_new_tokens=args.max_new_tokens,
        max_prompt_tokens=args.max_prompt_tokens,
        max_n=args.max_n,
        dtype=args.dtype,
        num_threads=args.num_threads,
        seed=args.seed,
        trust_remote_code=args.trust_remote_code,
        max_batch_size=args.max_batch_size,
        backend=args.backend,
        tensor_parallel_size=args.tensor_parallel_size,
        enforce_eager=args.enforce_eager,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse, load the model, serve; returns the exit code (2 for bad arguments, 1 when serving failed)."""
    args = parse_args(build_parser(), argv)
    if isinstance(args, int):
        return args
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token, problem = _token(args)
    for bad, message in (
        (problem is not None, problem),
        (not 0 < args.port < 65536, f"--port {args.port} is not a TCP port"),
        (args.max_new_tokens < 1, f"--max-new-tokens {args.max_new_tokens} must be >= 1"),
        (args.max_prompt_tokens < 1, f"--max-prompt-tokens {args.max_prompt_tokens} must be >= 1"),
        (args.max_n < 1, f"--max-n {args.max_n} must be >= 1"),
        (args.max_batch_size < 1, f"--max-batch-size {args.max_batch_size} must be >= 1"),
        (args.tensor_parallel_size < 1, f"--tensor-parallel-size {args.tensor_parallel_size} must be >= 1"),
        (not os.path.isdir(args.model), f"--model {args.model}: no such folder (a Hugging Face checkpoint folder)"),
    ):
        if bad:
            print(f"{PROG}: {message}", file=sys.stderr)
            return 2

    import uvicorn

    from openrlhf.serve.app import create_app
    from openrlhf.utils.errors import UserError

    try:
        model = _load(args)
    except UserError as exc:  # a backend this machine cannot run, a VLM on vLLM's CPU build, a bad checkpoint
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    info = model.engine.model_info()
    logging.getLogger("openrlhf.serve").info(
        "serving %s (%s, %s engine, %s on %s) at http://%s:%d/v1%s",
        model.name,
        args.model,
        info["backend"],
        info["dtype"],
        info["device"],
        args.host,
        args.port,
        " (bearer token required)" if token else "",
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(model, token=token), host=args.host, port=args.port, log_level=args.log_level)
    )
    try:
        server.run()
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        return 130
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
