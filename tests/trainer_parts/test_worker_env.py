"""The environment Ray workers start with: bounded OpenMP threads that sleep, not spin, while they wait."""

from __future__ import annotations

from openrlhf.trainer.ray_setup import worker_env


def test_openmp_threads_wait_passively_unless_the_user_says_otherwise(monkeypatch):
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    env = worker_env()
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["OMP_NUM_THREADS"] == "1"
    assert "GOMP_SPINCOUNT" not in env

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice reaches the workers
    assert worker_env()["OMP_WAIT_POLICY"] == "ACTIVE"

    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "300000")  # libgomp's own default spin, chosen explicitly
    env = worker_env()
    assert env["GOMP_SPINCOUNT"] == "300000" and "OMP_WAIT_POLICY" not in env
