"""A Ray cluster of several nodes on one machine, for the multi-node tests and bench/fault_recovery.py.

Ray's own test cluster (``ray.cluster_utils.Cluster``): one raylet per node, each declaring ``cpus_per_node``
logical CPUs, so placement groups must spread over nodes as on a real cluster. The nodes' dashboard agents get
ports of their own (on one host they would all ask for Ray's default one). Drivers join it with
``RAY_ADDRESS`` (:meth:`SimulatedCluster.env`); its head runs Ray's job server (``ray job submit``).

The fault helpers find a run's workers by their process titles (``ray::PolicyWorker`` ...) under the
cluster's raylets, kill one, or remove the node a worker runs on.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any

ROLE_TITLES = ("ray::PolicyWorker", "ray::ReferenceWorker", "ray::HFRolloutEngine", "ray::VLLMRolloutEngine")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimulatedCluster:
    def __init__(self, nodes: int = 5, cpus_per_node: float = 1, job_server: bool = True) -> None:
        from ray.cluster_utils import Cluster

        self.cpus_per_node = cpus_per_node
        self._saved_auth = os.environ.get("RAY_AUTH_MODE")
        os.environ["RAY_AUTH_MODE"] = "disabled"  # local, single user: as the README's local recipe
        dashboard_port = _free_port()
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": cpus_per_node,
                "include_dashboard": job_server,
                "dashboard_port": dashboard_port,
                "dashboard_agent_listen_port": _free_port(),
            },
        )
        self.dashboard_url = f"http://127.0.0.1:{dashboard_port}"
        for _ in range(nodes - 1):
            self.add_node()
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        return self.cluster.address

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a driver that joins this cluster."""
        return {**os.environ, "RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "disabled", **extra}

    def nodes(self) -> list[Any]:
        return [self.cluster.head_node, *self.cluster.worker_nodes]

    def add_node(self) -> Any:
        return self.cluster.add_node(num_cpus=self.cpus_per_node, dashboard_agent_listen_port=_free_port())

    def _raylet_pid(self, node: Any) -> int:
        return node.all_processes["raylet"][0].process.pid

    def role_processes(self, title: str = "") -> list[Any]:
        """The run's workers and engines alive under this cluster's raylets (``title``: only those whose
        process title starts with it), oldest first."""
        import psutil

        raylets = {self._raylet_pid(n) for n in self.nodes()}
        found = []
        for proc in psutil.process_iter(["cmdline", "create_time"]):
            name = " ".join(proc.info["cmdline"] or [])
            if not name.startswith(ROLE_TITLES) or (title and not name.startswith(title)):
                continue
            try:
                if any(p.pid in raylets for p in proc.parents()):
                    found.append(proc)
            except psutil.NoSuchProcess:
                continue
        return sorted(found, key=lambda p: p.info["create_time"])

    def kill(self, title: str, index: int = 0) -> int:
        """SIGKILL the ``index``-th (oldest process first) of the run's processes whose title starts with ``title``
        (Ray hands actors idle worker processes it started earlier, so the order need not be the ranks')."""
        procs = self.role_processes(title)
        if not procs:
            raise RuntimeError(f"no {title} process to kill")
        victim = procs[min(index, len(procs) - 1)]
        victim.send_signal(signal.SIGKILL)
        return victim.pid

    def remove_node_of(self, title: str) -> Any:
        """Remove a worker node (never the head: it holds the cluster's GCS) that runs a ``title`` process: a
        node lost with its workers."""
        workers = {self._raylet_pid(n): n for n in self.cluster.worker_nodes}
        for proc in self.role_processes(title):
            node = next((workers[p.pid] for p in proc.parents() if p.pid in workers), None)
            if node is not None:
                self.cluster.remove_node(node)
                return node
        raise RuntimeError(f"no {title} process runs on a worker node")

    def wait_until_no_role_processes(self, seconds: float = 30) -> list[str]:
        """[] once no process of a run is left under the cluster, else the titles still there."""
        deadline = time.monotonic() + seconds
        while True:
            alive = [" ".join(p.cmdline()) for p in self.role_processes() if p.is_running()]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.5)

    def shutdown(self) -> None:
        self.cluster.shutdown()
        if self._saved_auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = self._saved_auth

    def __enter__(self) -> SimulatedCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
