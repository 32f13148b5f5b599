"""Choosing the backend and creating engine actors in a CPU placement group; prompts spread over engines."""

from __future__ import annotations

import pytest
import torch

from openrlhf.config import build_config
from openrlhf.rollout.base import SamplingParams
from openrlhf.rollout.factory import create_rollout_engines, engine_bundles, max_model_len, resolve_backend
from openrlhf.rollout.vllm_engine import vllm_available

from .helpers import PROMPTS, chat_request, teacher_forced_logprobs


def config(**sections):
    return build_config(sections)


def test_backend_choice():
    assert resolve_backend(config(rollout={"backend": "hf"})) == "hf"
    gpu_and_vllm = torch.cuda.is_available() and vllm_available()
    assert resolve_backend(config(rollout={"backend": "auto"})) == ("vllm" if gpu_and_vllm else "hf")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_vllm_backend_without_a_gpu_is_refused():
    with pytest.raises(RuntimeError, match="needs CUDA GPUs and the cluster has none.*rollout.backend=hf"):
        resolve_backend(config(rollout={"backend": "vllm"}))


def test_bundles_per_engine():
    assert engine_bundles(2, 1, None) == [[0], [1]]
    assert engine_bundles(2, 2, [4, 5, 6, 7]) == [[4, 5], [6, 7]]
    with pytest.raises(ValueError, match="2 rollout engine\\(s\\) x 2 bundle\\(s\\) need 4 bundle indices, got 3"):
        engine_bundles(2, 2, [0, 1, 2])
    assert max_model_len(config(data={"prompt_max_len": 100}, rollout={"max_new_tokens": 28})) == 128
    assert max_model_len(config(vllm={"max_model_len": 4096})) == 4096


def test_engine_needs_a_checkpoint():
    with pytest.raises(ValueError, match="actor.model_name_or_path is empty"):
        create_rollout_engines(config(rollout={"backend": "hf"}))


def test_engines_in_a_cpu_placement_group_share_the_prompts(ray_local, tiny_lm_path):
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from openrlhf.models.loading import load_model, load_tokenizer
    from openrlhf.rollout.dispatch import call_engines, generate_on_engines

    cfg = config(
        actor={"model_name_or_path": str(tiny_lm_path)},
        rollout={"backend": "hf", "generate_batch_size": 4},
        vllm={"num_engines": 2},
        train={"cpus_per_worker": 1, "num_threads_per_worker": 1},
    )
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
    ray.get(pg.ready(), timeout=60)
    engines = create_rollout_engines(cfg, placement_group=pg, bundle_indices=[1, 0])
    try:
        infos = call_engines(engines, "model_info")
        assert [i["backend"] for i in infos] == ["hf", "hf"] and all(i["num_threads"] == 1 for i in infos)

        tok = load_tokenizer(tiny_lm_path)
        requests = [chat_request(tok, text) for text in PROMPTS + ["One more prompt."]]
        results = generate_on_engines(engines, requests, SamplingParams(n=2, max_new_tokens=6, seed=1))
        assert len(results) == len(requests)
        model = load_model(tiny_lm_path)
        for request, outs in zip(requests, results, strict=True):
            assert len(outs) == 2
            for out in outs:
                assert out.prompt_token_ids == request.prompt_token_ids
                expected = teacher_forced_logprobs(model, out.prompt_token_ids, out.output_token_ids)
                torch.testing.assert_close(torch.tensor(out.logprobs), expected, atol=1e-4, rtol=1e-4)
        call_engines(engines, "sleep")
        call_engines(engines, "wake_up")
        assert call_engines(engines, "ping") == [True, True]
    finally:
        for engine in engines:
            ray.kill(engine)
        remove_placement_group(pg)


def test_colocated_tensor_parallel_engines_get_tp_bundles_each():
    """Break 3: colocate_all passed num_engines bundle indices; a TP-2 engine needs two bundles of the policy's."""
    from openrlhf.rollout.factory import engine_bundle_count

    cfg = config(vllm={"num_engines": 2, "tensor_parallel_size": 2}, train={"colocate_all": True})
    count = engine_bundle_count(cfg, "vllm")
    assert count == 4
    assert engine_bundles(2, 2, list(range(count))) == [[0, 1], [2, 3]]
    assert engine_bundle_count(cfg, "hf") == 2  # an HF engine is one process on one bundle


_CLUSTER_PROBE = """
import ray
from openrlhf.config import build_config
from openrlhf.rollout.factory import resolve_backend
from openrlhf.workers.placement import bundle_spec
ray.init(num_cpus=2, num_gpus=4, include_dashboard=False, logging_level="ERROR")
cfg = build_config({})
print("BUNDLE", bundle_spec(cfg).as_bundle())
try:
    resolve_backend(build_config({"rollout": {"backend": "vllm"}}))
except Exception as exc:
    print("VLLM", type(exc).__name__, exc)
ray.shutdown()
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows a GPU-less driver joining a cluster with GPUs")
def test_driver_without_gpus_plans_from_the_clusters_gpus(tmp_path):
    """Break 4: under `ray job submit` the driver runs on a head node without GPUs; the workers' nodes have them.

    A local Ray that declares 4 GPUs stands for that cluster: the bundles ask for GPUs, and rollout.backend=vllm
    fails only because vLLM is not installed here, not for want of GPUs.
    """
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _CLUSTER_PROBE], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "BUNDLE {'CPU': 1.0, 'GPU': 1.0}" in proc.stdout
    vllm_line = next(line for line in proc.stdout.splitlines() if line.startswith("VLLM"))
    assert "needs CUDA GPUs" not in vllm_line and "vLLM 0.33.0" in vllm_line
