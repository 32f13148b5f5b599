"""The placement and memory planner: (config, cluster, model size) -> placement and memory per GPU, verdict.

    from openrlhf.plan import check_plan, format_plan, make_plan, parse_cluster_spec, parse_model_size
    plan = make_plan(cfg, parse_cluster_spec("1x8x80"), model_from_size(parse_model_size("7B")))
    print(format_plan(plan)); plan.fits; plan.problems

``make_plan`` and everything in :mod:`~openrlhf.plan.memory` are pure (no Ray, no torch);
:func:`check_plan` resolves the cluster (plan.cluster, else Ray) and the model (plan.model_size, else the
checkpoint's config.json on the meta device) and raises :class:`PlanError` when enforced and refused.
"""

from openrlhf.plan.check import PlanError, check_plan, resolve_cluster, resolve_models
from openrlhf.plan.cluster import (
    DEFAULT_GPU_MEMORY_GB,
    ClusterSpec,
    cluster_from_ray,
    cluster_from_ray_nodes,
    local_cluster,
    parse_cluster_spec,
)
from openrlhf.plan.core import GpuUse, Plan, RolePlan, make_plan, plan_backend
from openrlhf.plan.memory import (
    ModelStates,
    VllmMemory,
    activation_bytes,
    kv_bytes_per_token,
    model_states_bytes,
    vllm_memory,
)
from openrlhf.plan.model import (
    ModelSpec,
    count_parameters,
    lora_params,
    model_from_checkpoint,
    model_from_size,
    parse_model_size,
    shapes_from_config,
)
from openrlhf.plan.report import format_plan

__all__ = [
    "DEFAULT_GPU_MEMORY_GB",
    "ClusterSpec",
    "GpuUse",
    "ModelSpec",
    "ModelStates",
    "Plan",
    "PlanError",
    "RolePlan",
    "VllmMemory",
    "activation_bytes",
    "check_plan",
    "cluster_from_ray",
    "cluster_from_ray_nodes",
    "count_parameters",
    "format_plan",
    "kv_bytes_per_token",
    "local_cluster",
    "lora_params",
    "make_plan",
    "model_from_checkpoint",
    "model_from_size",
    "model_states_bytes",
    "parse_cluster_spec",
    "parse_model_size",
    "plan_backend",
    "resolve_cluster",
    "resolve_models",
    "shapes_from_config",
    "vllm_memory",
]
