"""make_plan: (config, cluster, model) -> placement and memory per GPU, with a verdict. Pure.

Placement mirrors ``RLTrainer._start_workers`` (openrlhf/trainer/driver.py) and
openrlhf/workers/placement.py: one placement group per role, in the order policy, reference, rollout, of
bundles of one GPU (on a CPU-only cluster: ``train.cpus_per_worker`` CPUs). ``train.colocate_actor_ref``
puts reference rank i on policy bundle i; ``train.colocate_all`` also puts the engines on the policy's
bundles; a vLLM engine with tensor_parallel_size k takes k consecutive bundles. Ray's PACK strategy is
modelled as: a group goes on the first node that holds all of it, else fills nodes in order.

Memory per GPU is the peak over three phases of a step (GB = 1e9 bytes):

    generate    engines' memory + the policy's states (none when ds.enable_sleep) + reference weights
    experience  policy states + log-prob activations, reference weights + activations,
                engines' memory unless vllm.enable_sleep
    train       policy states + training activations, reference weights, engines' memory unless
                vllm.enable_sleep

so when both sleep, peak = max(train phase, generation phase); without vllm.enable_sleep vLLM's share stays
resident during training. Every process on a GPU adds CUDA_CONTEXT_GB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from openrlhf.config import Config
from openrlhf.plan.cluster import ClusterSpec
from openrlhf.plan.memory import (
    CUDA_CONTEXT_GB,
    GB,
    ModelStates,
    VllmMemory,
    activation_bytes,
    hf_engine_bytes,
    model_states_bytes,
    precision_bytes,
    vllm_memory,
    zero3_gather_bytes,
)
from openrlhf.plan.model import ModelSpec, lora_params

PHASES = ("generate", "experience", "train")
COMPONENTS = (
    "weights",
    "grads",
    "optimizer",
    "gathered",
    "activations",
    "reference",
    "vLLM share",
    "engine",
    "context",
)


@dataclass
class RolePlan:
    """One role's workers and where they sit. ``bundles``: bundles of its own placement group (0 on another's)."""

    role: str
    workers: int
    bundles: int
    group: str
    bundles_per_worker: int = 1
    slots: list[tuple[int, int]] = field(default_factory=list)
    missing: int = 0

    @property
    def shares_with(self) -> str | None:
        return None if self.group == self.role else self.group


@dataclass
class GpuUse:
    """One GPU (or, on a CPU-only cluster, one bundle slot) and who sits on it, with GB per phase and component."""

    node: int
    index: int
    occupants: list[str] = field(default_factory=list)
    phases: dict[str, dict[str, float]] = field(default_factory=lambda: {p: {} for p in PHASES})

    @property
    def name(self) -> str:
        return f"node{self.node}:{self.index}"

    def add(self, phase: str, component: str, gb: float) -> None:
        if gb:
            self.phases[phase][component] = self.phases[phase].get(component, 0.0) + gb

    def total(self, phase: str) -> float:
        return sum(self.phases[phase].values())

    @property
    def peak_phase(self) -> str:
        return max(PHASES, key=self.total)

    @property
    def peak_gb(self) -> float:
        return self.total(self.peak_phase)

    def breakdown(self, phase: str | None = None) -> dict[str, float]:
        values = self.phases[phase or self.peak_phase]
        return {c: values[c] for c in COMPONENTS if values.get(c)}


@dataclass
class Plan:
    cluster: ClusterSpec
    model: ModelSpec | None
    backend: str
    roles: list[RolePlan]
    gpus: list[GpuUse]
    bundle_kind: str  # "GPU" or "CPU"
    required_cpus: int
    vllm: VllmMemory | None = None
    memory_checked: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems

    def role(self, name: str) -> RolePlan | None:
        return next((r for r in self.roles if r.role == name), None)

    @property
    def total_bundles(self) -> int:
        return sum(r.bundles for r in self.roles)


# --------------------------------------------------------------------------- placement


def plan_backend(cfg: Config, cluster: ClusterSpec, vllm_build: str | None = None) -> str:
    """rollout.backend, with 'auto' resolved as the driver would on this cluster: vLLM on GPUs (the build the
    target cluster will have is not known here); on CPUs as :func:`openrlhf.plan.layout.resolve_backend` decides
    with ``vllm_build`` (vLLM's CPU build for a text model and a long enough run), else HF."""
    from openrlhf.plan.layout import planned_generated_tokens, resolve_backend

    if cfg.rollout.backend != "auto":
        return cfg.rollout.backend
    if cluster.has_gpus:
        return "vllm"
    return resolve_backend(cfg, 0, vllm_build, generated_tokens=planned_generated_tokens(cfg))


def _auto_note(cfg: Config, cluster: ClusterSpec, backend: str, vllm_build: str | None) -> str:
    from openrlhf.plan.layout import auto_backend_reason, planned_generated_tokens

    if cluster.has_gpus:
        return f"rollout.backend=auto planned as {backend} (GPUs)"
    tokens = planned_generated_tokens(cfg)
    why = auto_backend_reason(0, vllm_build, vision_model=False, generated_tokens=tokens)
    return f"rollout.backend=auto planned as {backend} ({why}; a vision model would get hf)"


def use_reference(cfg: Config) -> bool:
    return cfg.algo.kl.init_kl_coef > 0


def _slot_capacity(cluster: ClusterSpec, cpus_per_worker: float) -> list[int] | None:
    """Bundles each node can hold: its GPUs, or on a CPU-only cluster floor(CPUs / cpus_per_worker); None: unknown."""
    if cluster.has_gpus:
        return cluster.node_gpus()
    if not cluster.cpus:
        return None
    return [int(math.floor(c / cpus_per_worker + 1e-9)) for c in cluster.node_cpus()]


def _pack(count: int, free: list[list[int]]) -> tuple[list[tuple[int, int]], int]:
    """Ray PACK, approximately: the first node holding all ``count`` bundles, else nodes in order.

    ``free[node]`` = [next free slot index, slots left]; updated in place.
    """
    for node, (start, left) in enumerate(free):
        if left >= count:
            free[node] = [start + count, left - count]
            return [(node, start + i) for i in range(count)], 0
    taken: list[tuple[int, int]] = []
    for node, (start, left) in enumerate(free):
        take = min(left, count - len(taken))
        taken += [(node, start + i) for i in range(take)]
        free[node] = [start + take, left - take]
    return taken, count - len(taken)


def _place_roles(cfg: Config, backend: str) -> list[RolePlan]:
    """Roles and their bundle counts, as ``RLTrainer._start_workers`` creates them."""
    world = cfg.actor.num_nodes * cfg.actor.num_gpus_per_node
    colocate_ref = cfg.train.colocate_actor_ref or cfg.train.colocate_all
    roles = [RolePlan("policy", world, world, "policy")]
    if use_reference(cfg):
        if colocate_ref:
            roles.append(RolePlan("reference", world, 0, "policy"))
        else:
            ref_world = cfg.ref.num_nodes * cfg.ref.num_gpus_per_node
            roles.append(RolePlan("reference", ref_world, ref_world, "reference"))
    tp = cfg.vllm.tensor_parallel_size if backend == "vllm" else 1
    engines = cfg.vllm.num_engines
    if cfg.train.colocate_all:
        roles.append(RolePlan("rollout", engines, 0, "policy", bundles_per_worker=tp))
    else:
        roles.append(RolePlan("rollout", engines, engines * tp, "rollout", bundles_per_worker=tp))
    return roles


def _bundle_terms(roles: list[RolePlan]) -> list[str]:
    terms = []
    for r in roles:
        if not r.bundles:
            continue
        if r.bundles_per_worker > 1:
            terms.append(f"{r.role} {r.bundles} ({r.workers} engines x tp {r.bundles_per_worker})")
        else:
            terms.append(f"{r.role} {r.bundles}")
    return terms


# --------------------------------------------------------------------------- the plan


def make_plan(
    cfg: Config,
    cluster: ClusterSpec,
    model: ModelSpec | None,
    *,
    ref_model: ModelSpec | None = None,
    backend: str | None = None,
    vllm_build: str | None = None,
) -> Plan:
    """Placement and memory per GPU of ``cfg`` on ``cluster`` for ``model`` (None: memory not estimated).

    ``ref_model``: the reference checkpoint when it differs from the policy's (default: ``model``);
    ``backend``: 'vllm' or 'hf' (default: :func:`plan_backend`); ``vllm_build``: the vLLM build installed
    ("cuda", "cpu" or None: openrlhf/utils/vllm_builds.py), which decides whether vLLM runs without GPUs.
    Pure: no Ray, no torch.
    """
    backend = backend or plan_backend(cfg, cluster, vllm_build)
    cpw = cfg.train.cpus_per_worker
    roles = _place_roles(cfg, backend)
    plan = Plan(
        cluster=cluster,
        model=model,
        backend=backend,
        roles=roles,
        gpus=[],
        bundle_kind="GPU" if cluster.has_gpus else "CPU",
        required_cpus=0,
    )
    plan.required_cpus = math.ceil(plan.total_bundles * cpw) + 1
    plan.notes.extend(cluster.notes)
    if cfg.rollout.backend == "auto":
        plan.notes.append(_auto_note(cfg, cluster, backend, vllm_build))
    if backend == "vllm" and not cluster.has_gpus and vllm_build != "cpu":
        plan.problems.append(
            f"rollout: rollout.backend=vllm needs GPUs or vLLM's CPU build; {cluster.describe()} has no GPU"
        )

    _assign_slots(cfg, plan)
    _check_cpus(cfg, plan)
    if not cluster.has_gpus:
        plan.notes.append("CPU-only cluster: memory is not checked, bundles are checked against logical CPUs")
        return plan
    if model is None:
        plan.problems.append(
            "policy: memory not checked: the model size is unknown (set plan.model_size, e.g. "
            "--plan-model-size 7B, or actor.model_name_or_path to a folder with config.json)"
        )
        return plan
    _estimate_memory(cfg, plan, model, ref_model or model)
    return plan


def _assign_slots(cfg: Config, plan: Plan) -> None:
    cluster = plan.cluster
    capacity = _slot_capacity(cluster, cfg.train.cpus_per_worker)
    unlimited = capacity is None
    if unlimited:
        capacity = [10**9] * cluster.nodes
        plan.notes.append("logical CPUs unknown: bundle counts are not checked (give NODESxGPUSxGBxCPUS)")
    free = [[0, c] for c in capacity]
    own: dict[str, list[tuple[int, int]]] = {}
    for role in plan.roles:
        if role.bundles:
            role.slots, role.missing = _pack(role.bundles, free)
            own[role.group] = role.slots
    policy_slots = own.get("policy", [])
    for role in plan.roles:
        if role.bundles:
            continue
        needed = role.workers * role.bundles_per_worker
        role.slots = policy_slots[:needed]
        if needed > plan.role("policy").bundles:
            what = f"{role.workers} engines x tp {role.bundles_per_worker}" if role.role == "rollout" else "ranks"
            plan.problems.append(
                f"{role.role}: colocated on the policy's bundles, {what} = {needed} bundles > "
                f"{plan.role('policy').bundles} policy bundles (lower vllm.num_engines or raise actor.num_gpus_per_node)"
            )
    if not unlimited:
        terms = _bundle_terms(plan.roles)
        total = plan.total_bundles
        for role in plan.roles:
            if not role.missing:
                continue
            if plan.bundle_kind == "GPU":
                plan.problems.append(
                    f"{role.role}: needs {role.missing} more GPU bundle{'s' if role.missing != 1 else ''}: "
                    f"{' + '.join(terms)} = {total} one-GPU bundles do not fit on {cluster.describe()}"
                )
            else:
                cpw = cfg.train.cpus_per_worker
                cpus = " + ".join(f"{c:g}" for c in cluster.node_cpus())
                plan.problems.append(
                    f"{role.role}: needs {role.missing} more bundle{'s' if role.missing != 1 else ''} of "
                    f"{cpw:g} CPU: {' + '.join(terms)} = {total} bundles x {cpw:g} CPU = {total * cpw:g} CPUs do not "
                    f"fit on {cluster.nodes} node{'s' if cluster.nodes != 1 else ''} with {cpus} logical CPUs"
                )
    # one entry per used slot, in order
    by_slot: dict[tuple[int, int], GpuUse] = {}

    def slot(key: tuple[int, int]) -> GpuUse:
        if key not in by_slot:
            by_slot[key] = GpuUse(*key)
        return by_slot[key]

    for role in plan.roles:
        for i, key in enumerate(role.slots):
            if role.role == "rollout":
                engine, shard = divmod(i, role.bundles_per_worker)
                label = f"engine {engine}" + (
                    f" shard {shard}/{role.bundles_per_worker}" if role.bundles_per_worker > 1 else ""
                )
            else:
                label = f"{role.role} rank {i}"
            slot(key).occupants.append(label)
    plan.gpus = [by_slot[k] for k in sorted(by_slot)]


def _check_cpus(cfg: Config, plan: Plan) -> None:
    """On a GPU cluster with known CPUs: each node's bundles x train.cpus_per_worker <= its logical CPUs."""
    cluster = plan.cluster
    if not cluster.has_gpus or not cluster.cpus:
        return
    cpw = cfg.train.cpus_per_worker
    per_node: dict[int, int] = {}
    for role in plan.roles:
        if role.bundles:
            for node, _ in role.slots:
                per_node[node] = per_node.get(node, 0) + 1
    cpus = cluster.node_cpus()
    for node, count in sorted(per_node.items()):
        if count * cpw > cpus[node] + 1e-9:
            plan.problems.append(
                f"cpus: node{node} holds {count} bundles x {cpw:g} CPU = {count * cpw:g} CPUs > its "
                f"{cpus[node]:g} logical CPUs (lower train.cpus_per_worker)"
            )


@dataclass(frozen=True)
class _RoleBytes:
    """What one rank of each role holds on its GPU, in bytes (the engine's in GB): the inputs of the per-GPU sum."""

    states: ModelStates  # the policy's weights, gradients, optimizer (and what sits in host memory)
    gather: float  # ZeRO-3: the largest layer's gathered parameters
    train_act: float
    infer_act: float
    ref_weights: float
    ref_gather: float
    ref_act: float
    engine_gb: float


def _policy_bytes(
    cfg: Config, model: ModelSpec, workers: int, geometry: dict
) -> tuple[ModelStates, float, float, float]:
    """The policy rank's (states, ZeRO-3 gather, training activations, inference activations)."""
    bf16, stage = cfg.ds.bf16, cfg.ds.zero_stage
    adapters = lora_params(model, cfg.actor.lora.rank, cfg.actor.lora.target_modules)
    if adapters:
        total_params, trainable = model.num_params + adapters, adapters
    elif cfg.actor.freeze_vision_tower:
        total_params, trainable = model.num_params, model.num_params - model.vision_params
    else:
        total_params = trainable = model.num_params
    states = model_states_bytes(
        total_params,
        trainable,
        zero_stage=stage,
        dp_world=workers,
        bf16=bf16,
        adam_offload=cfg.ds.adam_offload,
    )
    gather = zero3_gather_bytes(model, bf16) if stage == 3 else 0.0
    train_act = activation_bytes(
        model,
        micro_batch=cfg.train.micro_train_batch_size,
        training=True,
        checkpointing=cfg.ds.gradient_checkpointing,
        **geometry,
    )
    infer_act = activation_bytes(
        model, micro_batch=cfg.train.micro_rollout_batch_size, training=False, checkpointing=False, **geometry
    )
    return states, gather, train_act, infer_act


def _engine_gb(cfg: Config, plan: Plan, model: ModelSpec, max_model_len: int) -> float:
    """One rollout engine's share of its GPU in GB (vLLM: its gpu_memory_utilization share, set on ``plan.vllm``)."""
    if plan.backend == "vllm":
        rollout = plan.role("rollout")
        sequences = math.ceil(cfg.train.rollout_batch_size * cfg.rollout.n_samples_per_prompt / max(1, rollout.workers))
        plan.vllm = vllm_memory(
            model,
            gpu_memory_gb=plan.cluster.gpu_memory_gb,
            utilization=cfg.vllm.gpu_memory_utilization,
            tensor_parallel=rollout.bundles_per_worker,
            max_model_len=max_model_len,
            sequences_per_step=sequences,
        )
        return plan.vllm.share / GB
    weight_bytes = 4 if cfg.actor.dtype == "float32" else 2
    weights, cache = hf_engine_bytes(
        model, batch=cfg.rollout.generate_batch_size, max_model_len=max_model_len, weight_bytes=weight_bytes
    )
    return (weights + cache) / GB


def _role_bytes(cfg: Config, plan: Plan, model: ModelSpec, ref_model: ModelSpec) -> _RoleBytes:
    """What a rank of each role holds: the policy's states and activations, the reference, an engine."""
    bf16, stage = cfg.ds.bf16, cfg.ds.zero_stage
    seq_len = cfg.data.prompt_max_len + cfg.rollout.max_new_tokens
    geometry = {"seq_len": seq_len, "response_len": cfg.rollout.max_new_tokens, "bf16": bf16}
    states, gather, train_act, infer_act = _policy_bytes(cfg, model, plan.role("policy").workers, geometry)
    reference = plan.role("reference")
    ref_weights = ref_gather = ref_act = 0.0
    if reference is not None:
        ref_weights = precision_bytes(bf16)[0] * ref_model.num_params / (reference.workers if stage == 3 else 1)
        ref_gather = zero3_gather_bytes(ref_model, bf16) if stage == 3 else 0.0
        ref_act = activation_bytes(
            ref_model, micro_batch=cfg.train.micro_rollout_batch_size, training=False, checkpointing=False, **geometry
        )
    engine_gb = _engine_gb(cfg, plan, model, cfg.vllm.max_model_len or seq_len)
    return _RoleBytes(states, gather, train_act, infer_act, ref_weights, ref_gather, ref_act, engine_gb)


def _add_to_gpus(plan: Plan, sizes: _RoleBytes, *, ds_sleep: bool, engine_sleep: bool) -> None:
    """Each GPU's memory per phase: the sum over its occupants of what their role holds in that phase."""
    states = sizes.states
    for gpu in plan.gpus:
        for occupant in gpu.occupants:
            for phase in PHASES:
                gpu.add(phase, "context", CUDA_CONTEXT_GB)
            if occupant.startswith("policy"):
                for phase in PHASES:
                    if phase == "generate" and ds_sleep:
                        continue
                    gpu.add(phase, "weights", states.weights / GB)
                    gpu.add(phase, "grads", states.grads / GB)
                    gpu.add(phase, "optimizer", states.optimizer / GB)
                gpu.add("experience", "gathered", sizes.gather / GB)
                gpu.add("experience", "activations", sizes.infer_act / GB)
                gpu.add("train", "gathered", sizes.gather / GB)
                gpu.add("train", "activations", sizes.train_act / GB)
            elif occupant.startswith("reference"):
                for phase in PHASES:
                    gpu.add(phase, "reference", sizes.ref_weights / GB)
                gpu.add("experience", "reference", sizes.ref_gather / GB)
                gpu.add("experience", "activations", sizes.ref_act / GB)
            else:
                component = "vLLM share" if plan.backend == "vllm" else "engine"
                gpu.add("generate", component, sizes.engine_gb)
                if not engine_sleep:
                    gpu.add("experience", component, sizes.engine_gb)
                    gpu.add("train", component, sizes.engine_gb)


def _memory_notes(cfg: Config, plan: Plan, states: ModelStates, *, ds_sleep: bool) -> None:
    """The notes under the memory table: which sleep rule sets a colocated peak, and host memory per node."""
    if cfg.train.colocate_all:
        rule = {
            (True, True): "ds.enable_sleep + vllm.enable_sleep: peak = max(train phase, generation phase)",
            (False, True): "vllm.enable_sleep only: the policy's states stay resident while the engines generate",
            (True, False): "ds.enable_sleep only: vLLM's share stays resident during training",
            (False, False): "no sleep: vLLM's share and the policy's states are both resident in every phase",
        }[(cfg.ds.enable_sleep, cfg.vllm.enable_sleep)]
        plan.notes.append(f"train.colocate_all: {rule}")
    host = states.host + (states.total if ds_sleep else 0.0)
    if host:
        per_node: dict[int, int] = {}
        for node, _ in plan.role("policy").slots:
            per_node[node] = per_node.get(node, 0) + 1
        busiest = max(per_node.values(), default=0)
        what = " + ".join(
            w for w, on in (("adam_offload optimizer states", states.host), ("ds.enable_sleep states", ds_sleep)) if on
        )
        plan.notes.append(
            f"host memory: {what} {host / GB:.1f} GB per policy rank, {host * busiest / GB:.1f} GB on the busiest node"
        )


def _estimate_memory(cfg: Config, plan: Plan, model: ModelSpec, ref_model: ModelSpec) -> None:
    """Per-GPU memory per phase from what each role holds, then its problems and notes."""
    plan.memory_checked = True
    colocated = cfg.train.colocate_all
    ds_sleep = cfg.ds.enable_sleep and colocated
    sizes = _role_bytes(cfg, plan, model, ref_model)
    _add_to_gpus(plan, sizes, ds_sleep=ds_sleep, engine_sleep=cfg.vllm.enable_sleep and colocated)
    _memory_problems(plan)
    _engine_checks(cfg, plan)
    _memory_notes(cfg, plan, sizes.states, ds_sleep=ds_sleep)


def _fmt_breakdown(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in values.items())


def _memory_problems(plan: Plan) -> None:
    """One line per group of GPUs over memory with the same occupants' roles and the same numbers."""
    limit = plan.cluster.gpu_memory_gb
    groups: dict[tuple, list[GpuUse]] = {}
    for gpu in plan.gpus:
        if gpu.peak_gb > limit + 1e-9:
            kinds = tuple(o.split(" ")[0] for o in gpu.occupants)
            numbers = tuple((k, round(v, 1)) for k, v in gpu.breakdown().items())
            groups.setdefault((kinds, gpu.peak_phase, numbers), []).append(gpu)
    for gpus in groups.values():
        first = gpus[0]
        more = f" and {len(gpus) - 1} more GPU{'s' if len(gpus) > 2 else ''} like it" if len(gpus) > 1 else ""
        plan.problems.append(
            f"GPU {first.name} ({' + '.join(first.occupants)}){more}: {first.peak_gb:.1f} GB > {limit:g} GB in the "
            f"{first.peak_phase} phase ({_fmt_breakdown(first.breakdown())})"
        )


def _engine_checks(cfg: Config, plan: Plan) -> None:
    vm = plan.vllm
    if vm is None:
        return
    rollout = plan.role("rollout")
    where = f"GPU {plan.gpus[0].name}" if plan.gpus else "its GPU"
    for gpu in plan.gpus:
        if any(o.startswith("engine") for o in gpu.occupants):
            where = f"GPU {gpu.name}"
            break
    tp = rollout.bundles_per_worker
    if vm.kv_cache <= 0:
        plan.problems.append(
            f"rollout: engine 0 on {where}: weights {vm.weights / GB:.1f} GB (tp {tp}) + overhead "
            f"{vm.overhead / GB:.1f} GB leave no KV cache in the vLLM share {vm.share / GB:.1f} GB "
            f"({cfg.vllm.gpu_memory_utilization:g} x {plan.cluster.gpu_memory_gb:g} GB): raise "
            "vllm.gpu_memory_utilization or vllm.tensor_parallel_size"
        )
    elif vm.kv_tokens < vm.max_model_len:
        plan.problems.append(
            f"rollout: engine 0 on {where}: KV cache {vm.kv_cache / GB:.1f} GB holds {vm.kv_tokens:,} tokens < "
            f"max_model_len {vm.max_model_len} (vLLM will not start): raise vllm.gpu_memory_utilization or "
            "vllm.tensor_parallel_size, or lower vllm.max_model_len"
        )
    else:
        waves = math.ceil(vm.sequences_per_step / max(1, vm.kv_sequences))
        plan.notes.append(
            f"vLLM KV cache {vm.kv_cache / GB:.1f} GB per GPU holds {vm.kv_tokens:,} tokens = {vm.kv_sequences} "
            f"sequences of {vm.max_model_len}; a step gives each engine {vm.sequences_per_step} sequences"
            + (f" (about {waves} waves)" if waves > 1 else " (all at once)")
        )
