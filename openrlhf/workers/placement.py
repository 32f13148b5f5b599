"""Ray placement groups and groups of worker actors (policy, reference, rollout engines).

Each role gets its own placement group of one bundle per worker, or roles share bundles when colocated
(``train.colocate_actor_ref``: policy rank i and reference rank i share bundle i; ``train.colocate_all``:
the rollout engines join them too). With no GPU the bundles ask for CPUs only; sharing actors split a
bundle's resources between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openrlhf.plan.layout import RunLayout


class PlacementError(RuntimeError):
    """The cluster cannot hold the requested bundles; the message says what was asked and what exists."""


@dataclass
class BundleSpec:
    cpus: float
    gpus: float

    def as_bundle(self) -> dict[str, float]:
        bundle = {"CPU": self.cpus}
        if self.gpus:
            bundle["GPU"] = self.gpus
        return bundle


def bundle_spec(layout: RunLayout) -> BundleSpec:
    """One GPU per bundle when the cluster has GPUs (the layout counted the cluster's, not the driver's node's)."""
    return BundleSpec(cpus=layout.cpus_per_bundle, gpus=layout.gpus_per_bundle)


def create_placement_group(num_bundles: int, spec: BundleSpec, *, name: str, timeout_s: float = 120.0):
    """Reserve ``num_bundles`` bundles; fail with a clear message when the cluster cannot hold them."""
    import ray
    from ray.util.placement_group import placement_group

    pg = placement_group([spec.as_bundle() for _ in range(num_bundles)], strategy="PACK", name=name)
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        total = ray.cluster_resources()
        raise PlacementError(
            f"placement group '{name}': could not reserve {num_bundles} bundles of {spec.as_bundle()} within "
            f"{timeout_s:.0f} s; the cluster has {dict(total)}. Lower the worker counts or train.cpus_per_worker."
        )
    return pg


def _address_and_port() -> tuple[str, int]:
    from openrlhf.workers.distributed import free_port, node_ip

    return node_ip(), free_port()


def ranks_per_node(total_ranks: int, ranks_per_node_asked: int) -> int:
    """How many ranks of one role compute at once on a node: all of them on a one-node Ray cluster (a laptop,
    CI), else the role's ``num_gpus_per_node``. Sizes each worker's torch threads (set_num_threads)."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")] if ray.is_initialized() else []
    return max(1, total_ranks if len(alive) <= 1 else min(total_ranks, ranks_per_node_asked))


class WorkerGroup:
    """N actors of one worker class forming one data-parallel group, placed on given bundles."""

    def __init__(
        self,
        worker_cls: type,
        num_workers: int,
        pg,
        *,
        bundle_offset: int = 0,
        share: int = 1,
        ranks_per_node: int = 1,
        spec: BundleSpec,
        init_kwargs: dict[str, Any],
        env_vars: dict[str, str] | None = None,
        name: str = "worker",
    ) -> None:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        def strategy(index: int):
            return PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=index)

        addr_fn = ray.remote(num_cpus=0)(_address_and_port)
        master_addr, master_port = ray.get(addr_fn.options(scheduling_strategy=strategy(bundle_offset)).remote())
        remote_cls = ray.remote(worker_cls)
        self.name = name
        self.handles = []
        for rank in range(num_workers):
            options: dict[str, Any] = {
                "num_cpus": spec.cpus / share,
                "num_gpus": spec.gpus / share if spec.gpus else 0,
                "scheduling_strategy": strategy(bundle_offset + rank),
                "name": None,
            }
            if env_vars:
                options["runtime_env"] = {"env_vars": env_vars}
            handle = remote_cls.options(**options).remote(
                rank=rank,
                world_size=num_workers,
                master_addr=master_addr,
                master_port=master_port,
                workers_on_node=ranks_per_node,
                **init_kwargs,
            )
            self.handles.append(handle)

    @classmethod
    def in_driver(cls, worker_cls: type, *, init_kwargs: dict[str, Any], name: str = "worker") -> WorkerGroup:
        """One rank built in this process (openrlhf/utils/actor_calls.py), called as the actors are."""
        from openrlhf.utils.actor_calls import InDriverHandle
        from openrlhf.workers.distributed import free_port

        group = cls.__new__(cls)
        group.name = name
        worker = worker_cls(
            rank=0, world_size=1, master_addr="127.0.0.1", master_port=free_port(), workers_on_node=1, **init_kwargs
        )
        group.handles = [InDriverHandle(worker)]
        return group

    def __len__(self) -> int:
        return len(self.handles)

    def call(self, method: str, *args, **kwargs) -> list:
        """Call ``method`` with the same arguments on every rank; wait for all results."""
        from openrlhf.utils.actor_calls import wait_for

        return wait_for([getattr(h, method).remote(*args, **kwargs) for h in self.handles], f"{self.name}.{method}")

    def call_per_rank(self, method: str, per_rank_args: list[tuple], **kwargs) -> list:
        from openrlhf.utils.actor_calls import wait_for

        if len(per_rank_args) != len(self.handles):
            raise ValueError(f"{self.name}: {len(per_rank_args)} argument sets for {len(self.handles)} workers")
        return wait_for(
            [getattr(h, method).remote(*a, **kwargs) for h, a in zip(self.handles, per_rank_args, strict=False)],
            f"{self.name}.{method}",
        )

    def shutdown(self) -> None:
        from openrlhf.utils.actor_calls import is_in_driver

        for handle in self.handles:
            if is_in_driver(handle):
                handle.close()
            else:
                import ray

                ray.kill(handle, no_restart=True)
        self.handles = []
