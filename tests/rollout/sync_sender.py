"""Policy rank 0 for the weight-sync tests: a process already in a default gloo group (as DeepSpeed makes
it), holding a model, and sending its weights with the real sender API of openrlhf.rollout.weight_sync."""

from __future__ import annotations

import torch
import torch.distributed as dist

from openrlhf.models.loading import load_model
from openrlhf.rollout.weight_sync import (
    broadcast_named_tensors,
    create_sync_group_sender,
    pack_state_dict,
    weight_meta,
)
from openrlhf.workers.distributed import free_port, node_ip


class PolicyRankZero:
    def __init__(self, model_path: str, default_group_port: int) -> None:
        torch.set_num_threads(1)
        # The training world (here of one rank) that DeepSpeed's init_distributed would have set up.
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{default_group_port}", rank=0, world_size=1)
        self.model = load_model(model_path, dtype="float32")
        self.group = None

    def sync_address(self) -> tuple[str, int]:
        return node_ip(), free_port("")

    def meta(self):
        return weight_meta(self.model.named_parameters())

    def create_group(self, address: str, port: int, world_size: int, name: str, backend: str = "gloo") -> int:
        self.group = create_sync_group_sender(address, port, world_size, name, backend, timeout_s=120)
        return self.group.rank

    def broadcast(self) -> int:
        return broadcast_named_tensors(self.model.named_parameters(), self.group)

    def default_group_still_works(self) -> bool:
        flag = torch.ones(1)
        dist.all_reduce(flag)
        return dist.get_world_size() == 1 and float(flag) == 1.0 and dist.is_initialized()

    def packed(self):
        return pack_state_dict(self.model.named_parameters())
