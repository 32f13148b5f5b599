"""Runs on a Ray cluster of several nodes, simulated on this machine with Ray's own test cluster
(``ray.cluster_utils.Cluster`` through openrlhf/utils/sim_cluster.py: one raylet per node, each with 1 logical
CPU, so the bundles cannot all sit on one node), and runs that heal themselves when a part dies.

- Policy ranks on two nodes (ZeRO-2 and ZeRO-3, gloo across nodes), the reference on others, the engine on
  another; weights to the engine by broadcast and by the object store; one run through ``ray job submit`` to
  the cluster's head, as the README says, the other scored by two reward servers of which one is stopped
  mid-run. Each logs the same rewards and losses as the same run on one node.
- A 20-step run loses an engine, a policy rank and a whole node (a fresh node joins), at different steps: it
  ends with exit 0, every step logged once, ``faults/restarts`` = 3, and no process of the run left behind.
  The same with async on.
- The reward server a run launched dies: the run starts it again; one lost part past ``train.max_restarts``
  stops the run with one line and the resume command.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from openrlhf.trainer.local_reward_server import LocalRewardServer
from openrlhf.utils.sim_cluster import SimulatedCluster

from .helpers import SMALL_RECIPES, read_metrics, run_training, small_run_args, with_reward_func

pytestmark = pytest.mark.slow

COMPARED = ("reward/mean", "response_length/mean", "policy/loss", "policy/grad_norm", "policy/entropy")


@pytest.fixture(scope="module")
def cluster():
    """Five nodes of 1 CPU each (a head with Ray's job server, four workers); token auth off, as the README's
    local recipe does."""
    with SimulatedCluster(nodes=5, cpus_per_node=1) as c:
        yield c


def _submit_job(cluster, args: list[str]) -> None:
    """``ray job submit`` of openrlhf-train to the cluster's head, as the README's recipe; waits for it."""
    command = ["ray", "job", "submit", "--address", cluster.dashboard_url, "--", sys.executable, "-m",
               "openrlhf.cli.train", *args]  # fmt: skip
    env = cluster.env(OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS")  # the job's driver gets it from the job server
    for _ in range(10):  # the head's job agent comes up a few seconds after the node
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        log = done.stdout + done.stderr
        if "No available agent" not in log:
            break
        time.sleep(2)
    assert done.returncode == 0 and "succeeded" in log, log[-4000:]


# ----------------------------------------------------------------------------- spread over nodes

SPREAD = {
    # ZeRO-2 over two nodes, weights to the engine by gloo broadcast, submitted with `ray job submit`
    "zero2-broadcast-job-submit": ("--ds.zero_stage", "2", "--rollout.weight_sync", "broadcast"),
    # ZeRO-3 over two nodes, a reference on two others, weights through the object store
    "zero3-reference-object-store": (
        "--ds.zero_stage", "3", "--rollout.weight_sync", "object_store", "--algo.kl.init_kl_coef", "0.01",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SPREAD))
def test_a_run_spread_over_nodes_logs_what_it_logs_on_one_node(cluster, ray_cluster, task, tmp_path, case):
    with contextlib.ExitStack() as stack:
        if case.endswith("job-submit"):
            reward = with_reward_func(task)
        else:  # two reward servers (remote_rm on loopback) share the batches; one is stopped after step 1
            servers = [
                stack.enter_context(LocalRewardServer(SMALL_RECIPES, log_dir=tmp_path / f"rm{i}")) for i in range(2)
            ]
            reward = ["--reward.remote_url", f"[{servers[0].url},{servers[1].url}]", "--reward.batch_size", "4"]
        extra = (*reward, *SPREAD[case], "--rollout.backend", "hf", "--train.seed", "3")
        one_node = run_training(small_run_args(task, tmp_path / "one_node", *extra, steps=3))  # the session's Ray
        out = tmp_path / "nodes"
        args = small_run_args(task, out, *extra, steps=3)
        if case.endswith("job-submit"):
            _submit_job(cluster, args)
        else:
            code, log = _run_with_faults(cluster, args, tmp_path / "nodes.log", [(1, lambda _: servers[1].stop())])
            assert code == 0, log[-4000:]
            rows = read_metrics(out)
            assert rows[0]["reward/failovers"] == 0 and rows[-1]["reward/failovers"] >= 1, rows[-1]  # no step lost
    summary = json.loads((out / "summary.json").read_text())
    placement = summary["placement"]
    assert len(set(placement["policy"])) == 2, placement  # the two ranks on two nodes
    used = [n for nodes in placement.values() for n in nodes]
    assert len(set(used)) == len(used), placement  # every rank on a node of its own: all traffic crosses nodes
    assert "cluster: 5 CPU-only nodes" in (out / "plan.txt").read_text(), (out / "plan.txt").read_text()
    got, expected = read_metrics(out), read_metrics(tmp_path / "one_node")
    assert [r["step"] for r in got] == [1, 2, 3]
    for a, b in zip(got, expected, strict=True):
        for key in COMPARED:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (a["step"], key, a[key], b[key])
    assert got[-1]["policy/grad_norm"] > 0 and one_node["steps"] == 3
    assert not cluster.wait_until_no_role_processes()


# ----------------------------------------------------------------------------- faults


def _wait_for_step(out: Path, step: int, run: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert run.poll() is None, "the run ended before the fault"
        path = out / "metrics.jsonl"
        if path.is_file():
            steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]
            if steps and steps[-1] >= step:
                return
        time.sleep(0.2)
    raise AssertionError(f"step {step} was not logged within {seconds} s")


def _run_with_faults(cluster, args: list[str], log_path: Path, faults: list, timeout: float = 300) -> tuple[int, str]:
    """openrlhf-train joining the cluster; each ``(step, inject)`` of ``faults`` runs once ``step`` is logged.
    Returns the exit code and the run's output."""
    out = Path(args[args.index("--train.output_dir") + 1])
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "openrlhf.cli.train", *args],
            env=cluster.env(OMP_NUM_THREADS="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for step, inject in faults:  # inject(the run's process)
                _wait_for_step(out, step, run)
                inject(run)
            code = run.wait(timeout=timeout)
        finally:
            if run.poll() is None:
                run.kill()
    return code, log_path.read_text()


# sync as a benchmark (-m bench): the suite keeps async, whose recovery also restarts the producer thread and
# reloads untrained batches; the sync loop's restart runs in the suite in the launched-server test below
@pytest.mark.parametrize("mode", [pytest.param("sync", marks=pytest.mark.bench), "async"])
def test_a_run_that_loses_an_engine_a_policy_rank_and_a_node_finishes_every_step(cluster, task, tmp_path, mode):
    out = tmp_path / "run"
    extra = ("--train.async_enable", "true", "--train.max_staleness", "1") if mode == "async" else ()
    args = small_run_args(
        task, out, *with_reward_func(task), *extra, "--rollout.backend", "hf", "--ckpt.interval", "2",
        "--train.max_restarts", "3", "--train.rollout_batch_size", "2", "--rollout.max_new_tokens", "8", steps=20,
    )  # fmt: skip
    faults = [
        (3, lambda _: cluster.kill("ray::HFRolloutEngine")),  # an engine, after step 3
        (8, lambda _: cluster.kill("ray::PolicyWorker", index=1)),  # a policy rank (Ray reuses idle processes: either)
        (13, lambda _: (cluster.remove_node_of("ray::PolicyWorker"), cluster.add_node())),  # a node; a fresh one joins
    ]
    code, text = _run_with_faults(cluster, args, tmp_path / "run.log", faults, timeout=600)
    assert code == 0, text[-5000:]
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == list(range(1, 21)), [r["step"] for r in rows]  # each step once
    assert rows[-1]["faults/restarts"] == 3.0
    summary = json.loads((out / "summary.json").read_text())
    roles = [f["role"] for f in summary["faults"]]
    assert summary["restarts"] == 3 and roles[0] == "rollout engine 0" and roles[1].startswith("policy rank "), roles
    kinds = [f["kind"] for f in summary["faults"]]
    assert kinds == ["actor", "actor", "node"] and "left the cluster" in summary["faults"][2]["detail"], kinds
    assert all(f["seconds_lost"] > 0 for f in summary["faults"]), summary["faults"]
    lines = [line for line in text.splitlines() if " was lost (" in line]
    assert len(lines) == 3, lines  # one line per fault, naming the part
    assert not cluster.wait_until_no_role_processes(), "a process of the run was left behind"


def _kill_launched_reward_server(run) -> None:
    """SIGKILL the reward server the run launched (remote_rm, a child of the driver's process)."""
    servers = [p for p in psutil.Process(run.pid).children(recursive=True) if "remote_rm.cli" in " ".join(p.cmdline())]
    assert servers, "the run launched no reward server"
    for proc in servers:
        proc.send_signal(signal.SIGKILL)


def test_the_launched_reward_server_is_restarted_and_past_max_restarts_the_run_stops(cluster, task, tmp_path):
    """reward.launch_local_server, train.max_restarts 1: the server the run launched is killed after step 2 (the
    run starts it again and goes on from its checkpoint), then the engine after step 4: one lost part too many,
    so the run stops with one line naming it and the command that resumes it."""
    out = tmp_path / "run"
    args = small_run_args(
        task, out, "--reward.launch_local_server", "true", "--reward.retries", "1", "--reward.backoff", "0.05",
        "--rollout.backend", "hf", "--ckpt.interval", "1", "--train.max_restarts", "1", steps=20,
    )  # fmt: skip
    faults = [(2, _kill_launched_reward_server), (4, lambda _: cluster.kill("ray::HFRolloutEngine"))]
    code, text = _run_with_faults(cluster, args, tmp_path / "run.log", faults)
    assert code == 3, text[-3000:]
    assert "the reward server (launched by the run) on loopback was lost" in text and "answers again at" in text
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)) and rows[-1]["faults/restarts"] == 1.0
    stopped = [line for line in text.splitlines() if line.startswith("openrlhf-train: stopped:")]
    assert len(stopped) == 1, text[-3000:]
    last = stopped[0]
    assert "rollout engine 0" in last and "2 lost part(s), past train.max_restarts=1" in last, text[-3000:]
    assert "resume with: openrlhf-train" in last and "--ckpt.load_enable true" in last, last
    assert "Traceback" not in text, text[-3000:]
    assert not cluster.wait_until_no_role_processes()
