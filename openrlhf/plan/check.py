"""check_plan: resolve the cluster and the model for a config, plan, and refuse what does not fit.

Not pure: it may read Ray's resources (:func:`openrlhf.plan.cluster.cluster_from_ray`) and build the model
on the meta device (:func:`openrlhf.plan.model.model_from_checkpoint`). The planning itself is
:func:`openrlhf.plan.core.make_plan`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from openrlhf.config import Config
from openrlhf.plan.cluster import ClusterSpec, cluster_from_ray, local_cluster, parse_cluster_spec
from openrlhf.plan.core import Plan, make_plan
from openrlhf.plan.layout import RunLayout
from openrlhf.plan.model import (
    ModelSpec,
    model_from_checkpoint,
    model_from_size,
    parse_model_size,
    read_config_json,
    shapes_from_config,
)
from openrlhf.utils.errors import UserError
from openrlhf.utils.vllm_builds import installed_vllm_build


class PlanError(UserError):
    """The plan does not fit; the message holds one line per problem, ``plan`` the whole plan."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        super().__init__(
            "the placement and memory plan does not fit (see `openrlhf-train ... --plan`; "
            "--plan.enforce false to run anyway):\n  " + "\n  ".join(plan.problems)
        )


def _ray_initialized() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def resolve_cluster(cfg: Config, required_cpus: int = 0) -> ClusterSpec:
    """plan.cluster when set (never touches Ray); else the Ray cluster this process is connected to; else
    the cluster in RAY_ADDRESS (connect, read, disconnect); else this machine as ``init_ray`` would start it."""
    if cfg.plan.cluster:
        return parse_cluster_spec(cfg.plan.cluster)
    if _ray_initialized():
        return cluster_from_ray()
    if os.environ.get("RAY_ADDRESS"):
        import ray

        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        try:
            return cluster_from_ray()
        finally:
            ray.shutdown()
    return local_cluster(required_cpus)


def _checkpoint(path: str) -> Path | None:
    p = Path(path).expanduser() if path else None
    return p if p is not None and (p / "config.json").is_file() else None


def resolve_models(cfg: Config) -> tuple[ModelSpec | None, ModelSpec | None, list[str]]:
    """(policy, reference, notes). The policy: plan.model_size (shapes from the checkpoint's config.json when
    there is one, else rule-of-thumb shapes), else counted from actor.model_name_or_path on the meta device.
    The reference: counted from ref.model_name_or_path when it names another checkpoint, else the policy."""
    notes: list[str] = []
    actor_dir = _checkpoint(cfg.actor.model_name_or_path)
    model: ModelSpec | None = None
    if cfg.plan.model_size:
        size = parse_model_size(cfg.plan.model_size)
        shapes = None
        if actor_dir is not None:
            try:
                shapes = shapes_from_config(read_config_json(actor_dir))
            except ValueError as exc:
                notes.append(f"shapes from the rule of thumb: {exc}")
        source = f"plan.model_size {cfg.plan.model_size}" + (f"; shapes from {actor_dir}/config.json" if shapes else "")
        model = model_from_size(size, shapes, source=source)
    elif actor_dir is not None:
        try:
            model = model_from_checkpoint(actor_dir, trust_remote_code=cfg.actor.trust_remote_code)
        except (ValueError, OSError) as exc:
            notes.append(f"could not count the parameters of {actor_dir}: {exc}")
    elif cfg.actor.model_name_or_path:
        notes.append(f"actor.model_name_or_path {cfg.actor.model_name_or_path!r} has no config.json here")
    ref_model = model
    ref_dir = _checkpoint(cfg.ref.model_name_or_path)
    if ref_dir is not None and (actor_dir is None or ref_dir.resolve() != actor_dir.resolve()):
        try:
            ref_model = model_from_checkpoint(ref_dir, trust_remote_code=cfg.actor.trust_remote_code)
        except (ValueError, OSError) as exc:
            notes.append(f"reference sized as the policy: could not count {ref_dir}: {exc}")
    return model, ref_model, notes


def check_plan(cfg: Config, cluster: ClusterSpec | None = None, *, layout: RunLayout | None = None) -> Plan:
    """Plan ``cfg`` on ``cluster`` (default: :func:`resolve_cluster`) for the resolved model sizes.

    Raises :class:`PlanError` when ``cfg.plan.enforce`` and the plan does not fit. On a CPU-only cluster
    only the bundle counts are checked, against logical CPUs. ``layout``: the run's layout as the driver
    resolved it (openrlhf/plan/layout.py); without one (``--plan`` before any cluster is joined) the backend
    is planned as auto would resolve it on ``cluster``: vLLM on GPUs, else HF.
    """
    backend = layout.backend if layout is not None else None
    build = installed_vllm_build()
    if cluster is None:
        cluster = resolve_cluster(cfg, required_cpus=make_plan(cfg, _NO_CLUSTER, None).required_cpus)
    if cluster.gpus_per_node > 0:
        model, ref_model, notes = resolve_models(cfg)
    else:  # a CPU cluster: only bundles are checked, so the checkpoint need not be opened at start-up
        model, ref_model, notes = None, None, []
    plan = make_plan(
        cfg, cluster, model, ref_model=ref_model, backend=backend, vllm_build=build.name if build else None
    )
    plan.notes.extend(notes)
    if cfg.plan.enforce and not plan.fits:
        raise PlanError(plan)
    return plan


# A placeholder cluster for counting bundles before the real one is known (CPUs unknown: nothing checked).
_NO_CLUSTER = ClusterSpec(nodes=1, gpus_per_node=0, gpu_memory_gb=0.0, source="bundle count only")
