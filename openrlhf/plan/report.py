"""format_plan: the plan as a plain-text table (what ``openrlhf-train --plan`` prints)."""

from __future__ import annotations

from openrlhf.plan.core import COMPONENTS, PHASES, GpuUse, Plan

_SHORT = {
    "weights": "weights",
    "grads": "grads",
    "optimizer": "optim",
    "gathered": "gather",
    "activations": "activ",
    "reference": "ref",
    "vLLM share": "vLLM",
    "engine": "engine",
    "context": "ctx",
}


def _table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    right = right or set()
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _slot_ranges(gpus: list[GpuUse]) -> str:
    """node0:0-7, node1:0-3 for a group of slots."""
    parts: list[str] = []
    by_node: dict[int, list[int]] = {}
    for g in gpus:
        by_node.setdefault(g.node, []).append(g.index)
    for node, indices in by_node.items():
        indices.sort()
        runs: list[tuple[int, int]] = []
        for i in indices:
            if runs and i == runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((i, i))
        parts.append(f"node{node}:" + ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs))
    return " ".join(parts)


def _kinds(gpu: GpuUse) -> str:
    return " + ".join(o.split(" shard")[0].split(" ")[0] for o in gpu.occupants)


def format_plan(plan: Plan) -> str:
    """Cluster and model, roles and their bundles, memory per GPU at its peak phase, verdict, problems, notes."""
    out = [f"cluster: {plan.cluster.summary()}"]
    out.append(f"model:   {plan.model.describe() if plan.model else 'unknown (memory not estimated)'}")
    out.append(f"rollout backend: {plan.backend}")
    out.append("")
    rows = []
    for r in plan.roles:
        workers = f"{r.workers} x tp {r.bundles_per_worker}" if r.bundles_per_worker > 1 else str(r.workers)
        bundles = f"{r.bundles} (group {r.group})" if r.bundles else f"on {r.group}'s"
        where = _slot_ranges([GpuUse(n, i) for n, i in r.slots])
        if r.missing:
            where = f"{where}, {r.missing} unplaced" if where else f"{r.missing} unplaced"
        rows.append([r.role, workers, bundles, where])
    unit = "one-GPU" if plan.bundle_kind == "GPU" else "CPU"
    out += _table(["role", "workers", f"{unit} bundles", "placed on"], rows)
    used = len(plan.gpus)
    capacity = plan.cluster.total_gpus if plan.bundle_kind == "GPU" else None
    total = f"{plan.total_bundles} {unit} bundles"
    if capacity is not None:
        total += f"; {used} of {capacity} GPUs in use"
    out.append(f"total: {total}; a local Ray cluster declares {plan.required_cpus} logical CPUs")
    if plan.memory_checked:
        out.append("")
        limit = plan.cluster.gpu_memory_gb
        shown = [c for c in COMPONENTS if any(g.breakdown().get(c) for g in plan.gpus)]
        groups: list[tuple[tuple, list[GpuUse]]] = []
        for gpu in plan.gpus:
            key = (_kinds(gpu), gpu.peak_phase, tuple(round(gpu.breakdown().get(c, 0.0), 2) for c in shown))
            if groups and groups[-1][0] == key:
                groups[-1][1].append(gpu)
            else:
                groups.append((key, [gpu]))
        rows = []
        for _key, gpus in groups:
            g = gpus[0]
            values = g.breakdown()
            flag = "" if g.peak_gb <= limit + 1e-9 else " OVER"
            totals = [f"{g.total(p):.1f}" for p in PHASES]
            parts = [f"{values.get(c, 0.0):.1f}" for c in shown]
            rows.append(
                [_slot_ranges(gpus), _kinds(g), *totals, g.peak_phase, *parts, f"{g.peak_gb:.1f}/{limit:g}{flag}"]
            )
        header = ["GPUs", "on each", "gen", "exp", "train", "peak", *(_SHORT[c] for c in shown), "peak GB"]
        out.append("memory per GPU (GB = 1e9 bytes): totals per phase, then the peak phase's parts")
        out += _table(header, rows, right={2, 3, 4, *range(6, 7 + len(shown))})
    out.append("")
    out.append("verdict: " + ("fits" if plan.fits else f"does not fit ({len(plan.problems)} problem(s))"))
    out += [f"  problem: {p}" for p in plan.problems]
    out += [f"  note: {n}" for n in plan.notes]
    return "\n".join(out)
