"""Self-healing runs: what counts as a lost part of the run, how it is named, and when to give up.

The driver's loop (openrlhf/trainer/driver.py, ``_train``) runs each step inside :meth:`RunSupervisor.watch`.
When a step, an evaluation or a checkpoint fails because a part of the run is gone, :func:`identify_fault`
turns the exception into a :class:`RunFault` (what died, where, why, in one line), and the driver tears the
worker groups down, places them again on what the cluster has now, reloads the last checkpoint and goes on,
up to ``train.max_restarts`` times. Past that, or when the cluster can no longer hold the run, it stops with
one line and the command that resumes it.

Lost parts: a Ray actor that died (engine, policy or reference rank: killed, out of memory, its node removed),
a call past the run's deadline (a hung worker or collective; :data:`openrlhf.utils.actor_calls.CALL_DEADLINE`),
a node that died under a call. The deadline is derived from the measured step times:

    deadline = max(train.call_timeout_s_min, 10 * longest step so far)      (before the first step: the minimum,
                                                                           doubled for the set-up)
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import Any

DEADLINE_STEP_FACTOR = 10.0


class LaunchedServerLost(RuntimeError):
    """The reward server the run launched on loopback (reward.launch_local_server) died."""


@dataclass
class RunFault:
    """One lost part of the run: at which step it surfaced, which role, where, and why."""

    step: int
    role: str  # "rollout engine 0", "policy rank 1", "reference rank 0", "a worker", "a call"
    detail: str  # why, in a few words
    where: str = ""  # node address, pid
    seconds_lost: float = 0.0  # fault -> the next trained step (filled in when that step ends)
    steps_redone: int = 0  # trained steps after the reloaded checkpoint, done again
    kind: str = "actor"  # "actor" | "timeout" | "node" | "reward"

    def line(self) -> str:
        where = f" on {self.where}" if self.where else ""
        return f"step {self.step + 1}: {self.role}{where} was lost ({self.detail})"

    def record(self) -> dict[str, Any]:
        return {
            "step": self.step + 1,
            "role": self.role,
            "where": self.where,
            "detail": self.detail,
            "kind": self.kind,
            "seconds_lost": round(self.seconds_lost, 2),
            "steps_redone": self.steps_redone,
        }


def _roles(resources: Any) -> dict[str, tuple[str, str]]:
    """Ray actor id (hex) -> (the role it plays in the run, the Ray node id it was placed on)."""
    roles: dict[str, tuple[str, str]] = {}
    if resources is None:
        return roles
    placement = getattr(resources, "placement", {}) or {}
    for label, key, group in (
        ("policy rank", "policy", resources.policy),
        ("reference rank", "reference", resources.reference),
        ("rollout engine", "engines", None),
    ):
        handles = resources.engines if key == "engines" else (group.handles if group is not None else [])
        nodes = placement.get(key, [])
        for index, handle in enumerate(handles):
            actor_id = getattr(handle, "_actor_id", None)
            if actor_id is not None:
                node = nodes[index] if index < len(nodes) else ""
                roles.setdefault(actor_id.hex(), (f"{label} {index}", node))
    return roles


def _node_alive(node_id: str) -> bool:
    import ray

    try:
        return any(n.get("NodeID") == node_id and n.get("Alive") for n in ray.nodes())
    except Exception:  # the cluster cannot be asked: do not claim the node died
        return True


def _field(message: str, name: str) -> str:
    match = re.search(rf"\b{name}: (\S+)", message)
    return match.group(1) if match else ""


def identify_fault(exc: BaseException, resources: Any, step: int) -> RunFault | None:
    """The lost part behind ``exc`` (following its causes), or None when ``exc`` is not a lost part (a bug,
    a bad input: those stop the run as before)."""
    import ray.exceptions as rex

    from openrlhf.utils.actor_calls import CallTimeout

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, LaunchedServerLost):
            return RunFault(step, "the reward server (launched by the run)", str(exc), "loopback", kind="reward")
        if isinstance(exc, CallTimeout):
            return RunFault(step, "a call to the workers", str(exc), kind="timeout")
        if isinstance(exc, rex.RayActorError):
            message = getattr(exc, "error_msg", "") or str(exc)
            actor_id = getattr(exc, "actor_id", None) or ""
            role, node = _roles(resources).get(actor_id) or (_field(message, "class_name") or "a worker", "")
            ip, pid = _field(message, "ip"), _field(message, "pid")
            place = f"node {node[:8]}" + (f" ({ip})" if ip else "") if node else (ip and f"node {ip}")
            where = ", ".join(p for p in (place, pid and f"pid {pid}") if p)
            cause = re.search(r"The actor is dead because ([^.]*)", message)
            detail = cause.group(1) if cause else message.splitlines()[0][:160].rstrip(".")
            kind = "node" if "node" in detail.lower() and "died" in detail.lower() else "actor"
            if node and not _node_alive(node):
                kind, detail = "node", f"its node left the cluster: {detail}"
            return RunFault(step, role, detail, where, kind=kind)
        if isinstance(exc, (rex.NodeDiedError, rex.WorkerCrashedError, rex.ObjectLostError, rex.OwnerDiedError)):
            return RunFault(step, "a worker", str(exc).splitlines()[0][:200], kind="node")
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def resume_command() -> str:
    """The command line that resumes this run from its last checkpoint."""
    argv = list(sys.argv)
    if argv and (argv[0].endswith("openrlhf-train") or argv[0].endswith("openrlhf/cli/train.py")):
        args = [a for a in argv[1:]]
        return shlex.join(["openrlhf-train", *args, "--ckpt.load_enable", "true"])
    return "the same command with --ckpt.load_enable true"


@dataclass
class RunSupervisor:
    """Counts restarts, keeps every fault for the summary, and sets the call deadline from the step times."""

    max_restarts: int
    min_deadline_s: float
    faults: list[RunFault] = field(default_factory=list)
    longest_step_s: float = 0.0
    _open_fault: RunFault | None = None
    _fault_time: float = 0.0

    @property
    def restarts(self) -> int:
        return len(self.faults)

    def arm(self) -> None:
        """Before the first step: the set-up's deadline (twice the minimum: DeepSpeed's first steps build ops)."""
        from openrlhf.utils.actor_calls import CALL_DEADLINE

        CALL_DEADLINE.seconds = 2 * self.min_deadline_s

    def step_done(self, seconds: float) -> dict[str, float]:
        """After each trained step: widen the deadline from the step time; the fault metrics of this step."""
        from openrlhf.utils.actor_calls import CALL_DEADLINE

        self.longest_step_s = max(self.longest_step_s, seconds)
        CALL_DEADLINE.seconds = max(self.min_deadline_s, DEADLINE_STEP_FACTOR * self.longest_step_s)
        metrics = {"faults/restarts": float(self.restarts)}
        if self._open_fault is not None:
            self._open_fault.seconds_lost = time.perf_counter() - self._fault_time
            metrics["faults/seconds_lost"] = self._open_fault.seconds_lost
            metrics["faults/steps_redone"] = float(self._open_fault.steps_redone)
            self._open_fault = None
        return metrics

    def admit(self, fault: RunFault) -> bool:
        """Record ``fault``; True when the run may restart, False when it is past train.max_restarts."""
        self.faults.append(fault)
        self._open_fault, self._fault_time = fault, time.perf_counter()
        return self.restarts <= self.max_restarts

    def disarm(self) -> None:
        from openrlhf.utils.actor_calls import CALL_DEADLINE

        CALL_DEADLINE.seconds = None

    def summary(self) -> dict[str, Any]:
        return {"restarts": self.restarts, "faults": [f.record() for f in self.faults]} if self.faults else {}
