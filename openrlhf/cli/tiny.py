"""openrlhf-tiny: build a tiny offline checkpoint (Qwen2 LM or Qwen2.5-VL) with a locally trained tokenizer.

openrlhf-tiny --kind lm --out outputs/tiny-lm
openrlhf-tiny --kind vlm --out outputs/tiny-vlm --seed 1 --overwrite
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from openrlhf.cli.common import HelpFormatter, parse_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openrlhf-tiny", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--kind", required=True, choices=["lm", "vlm"], help="lm: Qwen2 causal LM; vlm: Qwen2.5-VL")
    parser.add_argument("--out", required=True, help="output folder (a Hugging Face checkpoint folder)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tokenizer corpus and the weights")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(_parser(), argv)
    if isinstance(args, int):
        return args
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"openrlhf-tiny: --out {out} exists and is not a folder", file=sys.stderr)
        return 2
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        print(f"openrlhf-tiny: --out {out} is not empty (pass --overwrite to write into it)", file=sys.stderr)
        return 2
    from openrlhf.models.loading import load_model
    from openrlhf.models.tiny import build_tiny

    start = time.perf_counter()
    build_tiny(args.kind, out, seed=args.seed)
    model = load_model(out, device="cpu")
    params = sum(p.numel() for p in model.parameters())
    print(
        f"openrlhf-tiny: wrote a {args.kind} ({type(model).__name__}, {params / 1e6:.2f} M parameters, "
        f"vocab {model.config.get_text_config().vocab_size}) to {out} in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
