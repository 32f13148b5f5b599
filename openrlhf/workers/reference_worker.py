"""The reference worker: the frozen initial policy, scoring responses for the KL term.

One rank of its own data-parallel group; under ZeRO-3 its parameters are sharded like the policy's.
None is started when KL is off (algo.kl.init_kl_coef == 0).
"""

from __future__ import annotations

from typing import Any

import torch

from openrlhf.config import Config
from openrlhf.utils.threads import set_num_threads
from openrlhf.workers.distributed import init_process_group
from openrlhf.workers.ds_config import eval_ds_config
from openrlhf.workers.experience import Experience
from openrlhf.workers.model_io import load_for_deepspeed, score_experience


class ReferenceWorker:
    def __init__(
        self,
        cfg_dict: dict[str, Any],
        rank: int,
        world_size: int,
        master_addr: str,
        master_port: int,
        *,
        workers_on_node: int = 1,
    ) -> None:
        import deepspeed

        self.cfg = Config.model_validate(cfg_dict)
        self.rank = rank
        set_num_threads(self.cfg.train.num_threads_per_worker, workers_on_node)
        init_process_group(rank, world_size, master_addr, master_port)
        ds_config = eval_ds_config(
            self.cfg, micro_batch_size=self.cfg.train.micro_rollout_batch_size, world_size=world_size
        )
        path = self.cfg.ref.model_name_or_path or self.cfg.actor.model_name_or_path
        model = load_for_deepspeed(self.cfg, path, ds_config)
        model.requires_grad_(False)
        self.engine, *_ = deepspeed.initialize(model=model, config=ds_config)
        self.engine.eval()

    def compute_log_probs(self, exp: Experience) -> torch.Tensor:
        return score_experience(self.engine, self.cfg, exp)
