"""A driver killed with SIGKILL: Ray's agents outlive it; the next start ends them (and nothing else)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from openrlhf_helpers import wait_for_session_processes

from openrlhf.trainer.local_cluster import ENDED_MARKER, MARKER, end_leftovers_of_dead_runs, session_processes

DRIVER = """
import os, sys, time
from openrlhf.trainer.ray_setup import init_ray
init_ray(2)
import ray

@ray.remote(num_cpus=1)
class Worker:
    def pid(self):
        return os.getpid()

worker = Worker.remote()
ray.get(worker.pid.remote())
session = ray._private.worker._global_node.get_session_dir_path()
print("READY", session, flush=True)
time.sleep(600)
"""


def test_a_killed_drivers_leftovers_end_at_the_next_start(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = ""
        deadline = time.monotonic() + 180
        while not line.startswith("READY") and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert line.startswith("READY"), "the driver did not start its cluster"
        session = Path(line.split()[1])
        record = json.loads((session / MARKER).read_text())
        assert record["pid"] == proc.pid
        assert len(wait_for_session_processes(session, 4)) >= 4  # gcs, raylet, agents, the worker...
        # a live driver's session is left alone
        assert end_leftovers_of_dead_runs(session.parent) == 0
        assert (session / MARKER).is_file()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        time.sleep(5)  # Ray's reaper ends what it can
        survivors = session_processes(session)
        # Ray 2.60: the dashboard agent and the runtime-env agent outlive the driver (what this is for)
        assert survivors, "nothing of the killed run survived: Ray ends its agents itself now"
        ended = end_leftovers_of_dead_runs(session.parent)
        assert ended == len(survivors)
        assert session_processes(session) == []
        assert not (session / MARKER).exists() and (session / ENDED_MARKER).is_file()
        assert psutil.Process().is_running()  # and we are still here
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
