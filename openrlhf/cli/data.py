"""openrlhf-data: check datasets before a cluster job, and write the synthetic demo tasks.

openrlhf-data inspect examples/data/vlm_r1_rec.jsonl examples/data/omnirl_mixed.json --image-root examples/data/images
    Per file: rows, text-only and image rows, images per row, tasks, label examples, and every invalid row
    as FILE:LINE: reason. Exit 0 when all rows are valid, 1 when any row or file is invalid, 2 on usage errors.
    --format, --input-key, --label-key, --image-key and --task-key set what data.* would (Hugging Face files).
openrlhf-data synth --task sums --out outputs/sums --num-train 2000 --num-heldout 200 --seed 0
    Write a demo task's train / held-out / SFT files (and images for shapes and preference); tasks: sums,
    arithmetic, shapes, preference.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import get_args

from openrlhf.cli.common import HelpFormatter

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

# `synth` flags: each sets the demo config field of the same name (``--num-train`` -> ``demo.num_train``).
SYNTH_KNOBS = (
    ("--num-train", int, "rows of the training set"),
    ("--num-heldout", int, "rows of the held-out set"),
    ("--difficulty", int, "arithmetic: 1..4"),
    ("--full-reasoning-prob", float, "share of worked SFT targets (sums, arithmetic, shapes' choice questions)"),
    ("--min-terms", int, "sums: fewest terms"),
    ("--max-terms", int, "sums: most terms"),
    ("--fact-share", float, "sums: share of one-step fact SFT rows"),
    ("--image-size", int, "shapes: image side in pixels"),
    ("--teacher-bias", float, "shapes: how often the SFT targets name blue for another colour"),
)


def _formats() -> list[str]:
    from openrlhf.config import DataFormat

    return list(get_args(DataFormat))


def _demo_defaults() -> dict:
    from openrlhf.config import DemoConfig

    return {name: field.default for name, field in DemoConfig.model_fields.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openrlhf-data", description=__doc__, formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{inspect,synth}")

    inspect = commands.add_parser(
        "inspect", help="check data files and print what they hold", formatter_class=HelpFormatter
    )
    inspect.add_argument("paths", nargs="+", metavar="PATH", help="data files or VLM-R1 data_config YAMLs")
    inspect.add_argument("--image-root", action="append", default=[], metavar="DIR", help="repeatable")
    inspect.add_argument("--format", default="auto", choices=_formats(), help="the rows' format")
    inspect.add_argument("--input-key", default=None, help="prompt column of a Hugging Face dataset (default: prompt)")
    inspect.add_argument("--label-key", default=None, help="label column of a Hugging Face dataset (default: label)")
    inspect.add_argument("--image-key", default=None, help="image column of a Hugging Face dataset (default: image)")
    inspect.add_argument("--task-key", default=None, help="task column (default: task)")
    inspect.add_argument("--examples", type=int, default=3, help="label examples shown per file")

    synth = commands.add_parser(
        "synth", help="write a synthetic demo task (defaults: the config's demo section)", formatter_class=HelpFormatter
    )
    from openrlhf.config import DemoConfig

    tasks = list(get_args(DemoConfig.model_fields["task"].annotation))
    synth.add_argument("--task", required=True, choices=tasks, help="the task")
    synth.add_argument("--out", required=True, metavar="DIR", help="output folder")
    synth.add_argument("--seed", type=int, default=0, help="seed of the generated rows")
    defaults = _demo_defaults()
    for flag, kind, text in SYNTH_KNOBS:
        field = flag[2:].replace("-", "_")
        synth.add_argument(flag, type=kind, default=None, help=f"{text} (default: demo.{field} {defaults[field]})")
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
    from pydantic import ValidationError

    from openrlhf.config import DemoConfig
    from openrlhf.data.synthetic import write_demo_task

    fields = [flag[2:].replace("-", "_") for flag, _, _ in SYNTH_KNOBS]
    try:
        demo = DemoConfig(task=args.task, **{f: getattr(args, f) for f in fields if getattr(args, f) is not None})
    except ValidationError as exc:
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["loc"]:
                message = f"--{str(err['loc'][0]).replace('_', '-')} {err.get('input')!r}: {message}"
            print(f"openrlhf-data synth: {message}", file=sys.stderr)
        return EXIT_USAGE
    try:
        paths = write_demo_task(demo, args.out, args.seed)
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
