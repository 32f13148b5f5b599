"""What a run holds while it trains, built in one place and torn down in one place.

:class:`RunResources`: the policy and reference worker groups, the rollout engines, the placement groups
they sit in and the weight pusher between them, laid out as the run's :class:`~openrlhf.plan.layout.RunLayout`
says. :func:`start_policy_group` is the one way a policy group is placed, shared with the SFT runner.
"""

from __future__ import annotations

from typing import Any

from openrlhf.config import Config
from openrlhf.plan.layout import RunLayout


def start_policy_group(
    cfg: Config, layout: RunLayout, *, name: str, init_kwargs: dict[str, Any], share: int = 1
) -> tuple[Any, Any]:
    """``layout.policy_ranks`` PolicyWorker ranks: Ray actors in a placement group of their own, or (worker mode
    in_driver) one object in this process. Returns (worker group, placement group or None)."""
    from openrlhf.workers.placement import WorkerGroup, bundle_spec, create_placement_group, ranks_per_node
    from openrlhf.workers.policy_worker import PolicyWorker

    if layout.worker_mode == "in_driver":
        return WorkerGroup.in_driver(PolicyWorker, name=name, init_kwargs=init_kwargs), None
    from openrlhf.trainer.ray_setup import worker_env

    spec = bundle_spec(layout)
    pg = create_placement_group(layout.policy_ranks, spec, name=name)
    group = WorkerGroup(
        PolicyWorker,
        layout.policy_ranks,
        pg,
        share=share,
        ranks_per_node=ranks_per_node(layout.policy_ranks, cfg.actor.num_gpus_per_node),
        spec=spec,
        env_vars=worker_env(),
        name=name,
        init_kwargs=init_kwargs,
    )
    return group, pg


def _node_id(_actor: Any) -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


class RunResources:
    """The worker groups, engines, placement groups and weight pusher of one run; :meth:`close` frees them all."""

    def __init__(self, cfg: Config, layout: RunLayout) -> None:
        self.cfg = cfg
        self.layout = layout
        self.policy: Any = None
        self.reference: Any = None
        self.engines: list[Any] = []
        self.placement_groups: list[Any] = []
        self.pusher: Any = None
        self.placement: dict[str, list[str]] = {}  # role -> Ray node id of each rank (Ray actors only)

    def start(self, total_optimizer_steps: int) -> RunResources:
        """Place and start every role (policy, reference, engines) as the layout says; returns self."""
        from openrlhf.trainer.weight_push import WeightPusher

        cfg, layout = self.cfg, self.layout
        cfg_dict = cfg.model_dump(mode="json")
        print(f"[train] {layout.describe()}")
        self.policy, policy_pg = start_policy_group(
            cfg,
            layout,
            name="policy",
            share=layout.share,
            init_kwargs={"cfg_dict": cfg_dict, "total_optimizer_steps": total_optimizer_steps},
        )
        if policy_pg is not None:
            self.placement_groups.append(policy_pg)
        if layout.reference_ranks:
            self.reference = self._start_reference(cfg_dict, policy_pg)
        if layout.engines_are_policy:
            self.engines = self.policy.handles[: layout.engine_count]  # the policy ranks generate themselves
        else:
            self.engines = self._start_engines(policy_pg)
        self.pusher = WeightPusher(cfg, self.policy, self.engines, layout)
        if layout.worker_mode == "ray":
            self.placement = self._placement()
            print(
                "[train] placed: "
                + "; ".join(f"{role} on {', '.join(n[:8] for n in nodes)}" for role, nodes in self.placement.items())
            )
        return self

    def _placement(self) -> dict[str, list[str]]:
        """The Ray node id each rank of each role runs on (where a lost part was, and what the tests check)."""
        from openrlhf.utils.actor_calls import wait_for

        roles = {"policy": self.policy.handles, "engines": self.engines}
        if self.reference is not None:
            roles["reference"] = self.reference.handles
        return {
            role: wait_for([h.__ray_call__.remote(_node_id) for h in handles], f"{role}: node id")
            for role, handles in roles.items()
            if handles
        }

    def _start_reference(self, cfg_dict: dict, policy_pg: Any) -> Any:
        from openrlhf.workers.placement import WorkerGroup, bundle_spec, create_placement_group, ranks_per_node
        from openrlhf.workers.reference_worker import ReferenceWorker

        cfg, layout = self.cfg, self.layout
        init_kwargs = {"cfg_dict": cfg_dict}
        if layout.worker_mode == "in_driver":
            return WorkerGroup.in_driver(ReferenceWorker, name="reference", init_kwargs=init_kwargs)
        from openrlhf.trainer.ray_setup import worker_env

        spec = bundle_spec(layout)
        if layout.reference_on_policy_bundles:
            pg = policy_pg
        else:
            pg = create_placement_group(layout.reference_ranks, spec, name="reference")
            self.placement_groups.append(pg)
        return WorkerGroup(
            ReferenceWorker,
            layout.reference_ranks,
            pg,
            share=layout.share if layout.reference_on_policy_bundles else 1,
            ranks_per_node=ranks_per_node(layout.reference_ranks, cfg.ref.num_gpus_per_node),
            spec=spec,
            env_vars=worker_env(),
            name="reference",
            init_kwargs=init_kwargs,
        )

    def _start_engines(self, policy_pg: Any) -> list[Any]:
        from openrlhf.rollout.factory import create_rollout_engines
        from openrlhf.workers.placement import bundle_spec, create_placement_group

        layout = self.layout
        if layout.engines_on_policy_bundles:
            return create_rollout_engines(
                self.cfg,
                layout,
                placement_group=policy_pg,
                bundle_indices=list(range(layout.engine_bundles)),
                share=layout.share,
            )
        engine_pg = create_placement_group(layout.engine_bundles, bundle_spec(layout), name="rollout")
        self.placement_groups.append(engine_pg)
        return create_rollout_engines(self.cfg, layout, placement_group=engine_pg)

    def close(self) -> None:
        """Kill whatever of the workers, engines and placement groups was started (safe to call twice)."""
        for group in (self.policy, self.reference):
            if group is not None:
                group.shutdown()
        engines, self.engines = self.engines, []
        if self.layout.worker_mode == "in_driver":
            # The engine was the policy itself, closed above. The process group of one stays: DeepSpeed keeps
            # its groups in module globals, and a later in-driver run in this process reuses both.
            return
        import ray
        from ray.util.placement_group import remove_placement_group

        for engine in engines:
            ray.kill(engine, no_restart=True)  # (policy ranks serving as engines: already gone, a no-op)
        for pg in self.placement_groups:
            remove_placement_group(pg)
        self.placement_groups = []
