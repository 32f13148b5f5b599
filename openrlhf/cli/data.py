"""openrlhf-data: check datasets before a cluster job, and write the synthetic demo tasks.

openrlhf-data inspect PATH... [--image-root DIR]... [--format F] [--input-key K] [--label-key K]
    Per file: rows, text-only and image rows, images per row, tasks, label examples, and every invalid row
    as FILE:LINE: reason. Exit 0 when all rows are valid, 1 when any row or file is invalid, 2 on usage errors.
openrlhf-data synth --task arithmetic|shapes --out DIR [--num-train N] [--num-heldout N] [--seed S]
    Write the demo task's train / held-out / SFT files (and images for shapes).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import get_args

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _formats() -> list[str]:
    from openrlhf.config import DataFormat

    return list(get_args(DataFormat))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openrlhf-data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{inspect,synth}")

    inspect = commands.add_parser("inspect", help="check data files and print what they hold")
    inspect.add_argument("paths", nargs="+", metavar="PATH", help="data files or VLM-R1 data_config YAMLs")
    inspect.add_argument("--image-root", action="append", default=[], metavar="DIR", help="repeatable")
    inspect.add_argument("--format", default="auto", choices=_formats())
    inspect.add_argument("--input-key", default=None, help="prompt column of a Hugging Face dataset")
    inspect.add_argument("--label-key", default=None, help="label column of a Hugging Face dataset")
    inspect.add_argument("--image-key", default=None)
    inspect.add_argument("--task-key", default=None)
    inspect.add_argument("--examples", type=int, default=3, help="label examples shown per file")

    synth = commands.add_parser("synth", help="write a synthetic demo task")
    synth.add_argument("--task", required=True, choices=["sums", "arithmetic", "shapes"])
    synth.add_argument("--out", required=True, metavar="DIR")
    synth.add_argument("--num-train", type=int, default=2000)
    synth.add_argument("--num-heldout", type=int, default=200)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--difficulty", type=int, default=3, help="arithmetic: 1..4")
    synth.add_argument(
        "--full-reasoning-prob", type=float, default=0.4, help="sums/arithmetic: share of worked SFT targets"
    )
    synth.add_argument("--min-terms", type=int, default=5, help="sums: fewest terms")
    synth.add_argument("--max-terms", type=int, default=7, help="sums: most terms")
    synth.add_argument("--fact-share", type=float, default=0.4, help="sums: share of one-step fact SFT rows")
    synth.add_argument("--image-size", type=int, default=56, help="shapes: image side in pixels")
    return parser


def run_inspect(args: argparse.Namespace) -> int:
    from openrlhf.config import DataConfig
    from openrlhf.data.errors import DatasetError
    from openrlhf.data.loader import load_samples
    from openrlhf.data.summary import render_summary, summarize

    for root in args.image_root:
        if not Path(root).is_dir():
            print(f"openrlhf-data inspect: --image-root {root}: no such folder", file=sys.stderr)
            return EXIT_USAGE
    keys = {
        name: getattr(args, name)
        for name in ("input_key", "label_key", "image_key", "task_key")
        if getattr(args, name) is not None
    }
    logging.getLogger("openrlhf.data").setLevel(logging.ERROR)  # skipped rows are printed below instead
    cfg = DataConfig(format=args.format, image_roots=args.image_root, on_invalid="skip", **keys)
    rows = valid = invalid = 0
    failed_files = 0
    for path in args.paths:
        try:
            result = load_samples([path], cfg)
        except DatasetError as exc:
            print(f"== {path}\n{exc}")
            failed_files += 1
            continue
        for summary in summarize(result, examples=args.examples):
            print("\n".join(render_summary(summary)))
            rows += summary.rows
            valid += summary.valid
            invalid += len(summary.invalid)
    status = "OK" if not (invalid or failed_files) else "INVALID"
    print(f"== total: {rows} rows, {valid} valid, {invalid} invalid, {failed_files} unreadable file(s): {status}")
    return EXIT_OK if status == "OK" else EXIT_INVALID


def run_synth(args: argparse.Namespace) -> int:
    from openrlhf.data.synthetic import write_arithmetic_task, write_shapes_task, write_sums_task

    try:
        if args.task == "sums":
            paths = write_sums_task(
                args.out,
                args.num_train,
                args.num_heldout,
                args.seed,
                min_terms=args.min_terms,
                max_terms=args.max_terms,
                worked_prob=args.full_reasoning_prob,
                fact_share=args.fact_share,
            )
        elif args.task == "arithmetic":
            paths = write_arithmetic_task(
                args.out,
                args.num_train,
                args.num_heldout,
                args.seed,
                difficulty=args.difficulty,
                full_reasoning_prob=args.full_reasoning_prob,
            )
        else:
            paths = write_shapes_task(args.out, args.num_train, args.num_heldout, args.seed, image_size=args.image_size)
    except ValueError as exc:
        print(f"openrlhf-data synth: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for name, path in paths.items():
        print(f"{name}: {path}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "inspect":
        return run_inspect(args)
    return run_synth(args)


if __name__ == "__main__":
    sys.exit(main())
