"""openrlhf-sft: supervised warm start on the same data formats, with the same DeepSpeed workers.

openrlhf-sft --actor.model_name_or_path DIR --data.train_paths '[rows.json]' --sft.epochs 3 --sft.output_dir outputs/sft
    The target of a row is its top-level "response" (a full reference answer), else its label text; the model
    and its tokenizer land in sft.output_dir (default <train.output_dir>/sft_model).
"""

from __future__ import annotations

import sys

from openrlhf.cli.common import run_with_config
from openrlhf.config import Config


def _run(cfg: Config) -> None:
    from openrlhf.trainer.sft import run_sft

    run_sft(cfg)


def main(argv: list[str] | None = None) -> int:
    return run_with_config("openrlhf-sft", _run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
