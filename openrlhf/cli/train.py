"""openrlhf-train: the RL driver (single controller). With no --config it runs the embedded default demo.

openrlhf-train                                   # configs/demo_text.yaml: tiny LM, SFT warm start, GRPO
openrlhf-train --config configs/grpo.yaml --actor.model_name_or_path DIR --vllm.num_engines 4
ray job submit --working-dir . -- openrlhf-train --config ...
openrlhf-train --config configs/grpo.yaml --plan --plan-cluster 1x8x80 --plan-model-size 7B   # plan, don't run
"""

from __future__ import annotations

import sys

from openrlhf.cli.common import default_config_path, run_with_config
from openrlhf.config import Config


def _run(cfg: Config) -> None:
    if cfg.demo.enable:
        from openrlhf.trainer.demo import run_demo

        run_demo(cfg)
    else:
        from openrlhf.trainer.driver import RLTrainer

        RLTrainer(cfg).fit()


def main(argv: list[str] | None = None) -> int:
    return run_with_config(
        "openrlhf-train", _run, argv, default_config=default_config_path("demo_text.yaml"), allow_plan=True
    )


if __name__ == "__main__":
    sys.exit(main())
