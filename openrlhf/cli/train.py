"""openrlhf-train: the RL driver (single controller). With no --config and no model it runs the embedded demo.

A command that names a model (--actor.model_name_or_path, or OpenRLHF's flat --pretrain) without --config trains
that model on the config tree's defaults, as a pasted OpenRLHF command expects; the demo is for the bare command.

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


def _names_a_model(argv: list[str]) -> bool:
    return any(a.split("=", 1)[0] in ("--actor.model_name_or_path", "--pretrain") for a in argv)


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
