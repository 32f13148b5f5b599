"""openrlhf-train: the RL driver (single controller). With no --config and no model it runs the embedded demo;
with --actor.model_name_or_path and no --config it trains that model on the config tree's defaults.

openrlhf-train                                   # configs/demo_text.yaml: tiny LM, SFT warm start, GRPO
openrlhf-train --config configs/grpo.yaml --actor.model_name_or_path DIR --data.train_paths '[train.jsonl]'
openrlhf-train --config configs/grpo.yaml --plan --plan-cluster 1x8x80 --plan-model-size 7B   # plan, don't run
ray job submit --working-dir . -- openrlhf-train --config configs/grpo.yaml     # on a Ray cluster
"""

from __future__ import annotations

import sys

from openrlhf.cli.common import run_with_config
from openrlhf.config import Config
from openrlhf.config_loading import default_config_path


def _run(cfg: Config) -> None:
    if cfg.demo.enable:
        from openrlhf.demos.pipeline import run_demo

        run_demo(cfg)
    else:
        from openrlhf.trainer.driver import RLTrainer

        RLTrainer(cfg).fit()


def _names_a_model(argv: list[str]) -> bool:
    return any(a.split("=", 1)[0] == "--actor.model_name_or_path" for a in argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    demo = None if _names_a_model(argv) else default_config_path("demo_text.yaml")
    return run_with_config(
        "openrlhf-train",
        _run,
        argv,
        default_config=demo,
        allow_plan=True,
        description=__doc__,
    )


if __name__ == "__main__":
    sys.exit(main())
