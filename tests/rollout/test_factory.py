"""Choosing the backend and creating engine actors in a CPU placement group; prompts spread over engines."""

from __future__ import annotations

import pytest
import torch

from openrlhf.config import ConfigError
from openrlhf.config_loading import build_config
from openrlhf.plan.layout import CPU_VLLM_BREAK_EVEN_TOKENS, resolve_backend, resolve_layout
from openrlhf.rollout.base import SamplingParams
from openrlhf.rollout.factory import create_rollout_engines, engine_bundles, max_model_len

from .helpers import PROMPTS, chat_request, teacher_forced_log_probs


def config(**sections):
    return build_config(sections)


def test_backend_choice():
    assert resolve_backend(config(rollout={"backend": "hf"}), 8, "cuda") == "hf"
    auto = config(rollout={"backend": "auto"})
    assert resolve_backend(auto, 8, "cuda") == "vllm"
    assert resolve_backend(auto, 8, None) == resolve_backend(auto, 8, "cpu") == resolve_backend(auto, 0, None) == "hf"
    # on CPUs with vLLM's CPU build: vLLM for a text model and a run long enough to win back its slower start
    assert resolve_backend(auto, 0, "cpu") == "vllm"  # max_steps 0: as long as the dataset
    assert resolve_backend(auto, 0, "cpu", vision_model=True) == "hf"
    assert resolve_backend(auto, 0, "cpu", generated_tokens=CPU_VLLM_BREAK_EVEN_TOKENS) == "vllm"
    assert resolve_backend(auto, 0, "cpu", generated_tokens=CPU_VLLM_BREAK_EVEN_TOKENS - 1) == "hf"
    vllm = config(rollout={"backend": "vllm"})
    assert resolve_backend(vllm, 8, "cuda") == resolve_backend(vllm, 0, "cpu") == "vllm"


def test_auto_weighs_the_planned_tokens_and_says_why():
    demo = config(
        rollout={"backend": "auto", "n_samples_per_prompt": 8, "max_new_tokens": 96},
        train={"max_steps": 30, "rollout_batch_size": 16},
    )
    layout = resolve_layout(demo, cluster_gpus=0, vllm_build="cpu", joins_cluster=False)
    assert layout.backend == "vllm"
    assert "auto: CPUs, vLLM's CPU build, 368,640 tokens planned, at least the 90,000" in layout.describe()
    short = demo.model_copy(update={"train": demo.train.model_copy(update={"max_steps": 5})})
    layout = resolve_layout(short, cluster_gpus=0, vllm_build="cpu", joins_cluster=False)
    assert layout.backend == "hf" and "61,440 tokens planned, under the" in layout.describe()
    vlm = resolve_layout(demo, cluster_gpus=0, vllm_build="cpu", joins_cluster=False, vision_model=True)
    assert vlm.backend == "hf" and "a vision model" in vlm.describe()
    named = config(rollout={"backend": "hf"})
    assert "(auto" not in resolve_layout(named, cluster_gpus=0, vllm_build="cpu", joins_cluster=False).describe()
    # --plan, before any cluster is joined, plans what the run will choose
    from openrlhf.plan import make_plan
    from openrlhf.plan.cluster import ClusterSpec

    cpus = ClusterSpec(nodes=1, gpus_per_node=0, gpu_memory_gb=0.0, cpus=4.0, source="test")
    assert make_plan(demo, cpus, None, vllm_build="cpu").backend == "vllm"
    assert make_plan(demo, cpus, None, vllm_build=None).backend == make_plan(short, cpus, None).backend == "hf"
    assert any(
        "planned as vllm (CPUs, vLLM's CPU build" in n for n in make_plan(demo, cpus, None, vllm_build="cpu").notes
    )


def test_vllm_backend_without_the_build_for_the_cluster_is_refused():
    vllm = config(rollout={"backend": "vllm"})
    with pytest.raises(ConfigError, match="needs CUDA GPUs and the cluster has none.*CPU build.*rollout.backend=hf"):
        resolve_backend(vllm, 0, "cuda")
    with pytest.raises(ConfigError, match="needs CUDA GPUs and the cluster has none"):
        resolve_backend(vllm, 0, None)
    with pytest.raises(ConfigError, match="GPUs needs vLLM's CUDA build \\(the CPU build is installed\\)"):
        resolve_backend(vllm, 8, "cpu")


def test_bundles_per_engine():
    assert engine_bundles(2, 1, None) == [[0], [1]]
    assert engine_bundles(2, 2, [4, 5, 6, 7]) == [[4, 5], [6, 7]]
    with pytest.raises(ValueError, match="2 rollout engine\\(s\\) x 2 bundle\\(s\\) need 4 bundle indices, got 3"):
        engine_bundles(2, 2, [0, 1, 2])
    assert max_model_len(config(data={"prompt_max_len": 100}, rollout={"max_new_tokens": 28})) == 128
    assert max_model_len(config(vllm={"max_model_len": 4096})) == 4096


def test_engine_needs_a_checkpoint():
    with pytest.raises(ValueError, match="actor.model_name_or_path is empty"):
        cfg = config(rollout={"backend": "hf"})
        create_rollout_engines(cfg, resolve_layout(cfg, cluster_gpus=0, vllm_build=None, joins_cluster=True))


def test_engines_in_a_cpu_placement_group_share_the_prompts(ray_local, tiny_lm_path):
    import ray
    from openrlhf_helpers import call_engines, generate_on_engines
    from ray.util.placement_group import placement_group, remove_placement_group

    from openrlhf.models.loading import load_model, load_tokenizer

    cfg = config(
        actor={"model_name_or_path": str(tiny_lm_path)},
        rollout={"backend": "hf", "generate_batch_size": 4},
        vllm={"num_engines": 2},
        train={"cpus_per_worker": 1, "num_threads_per_worker": 1},
    )
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
    ray.get(pg.ready(), timeout=60)
    layout = resolve_layout(cfg, cluster_gpus=0, vllm_build=None, joins_cluster=True)
    engines = create_rollout_engines(cfg, layout, placement_group=pg, bundle_indices=[1, 0])
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
                expected = teacher_forced_log_probs(model, out.prompt_token_ids, out.output_token_ids)
                torch.testing.assert_close(torch.tensor(out.log_probs), expected, atol=1e-4, rtol=1e-4)
        call_engines(engines, "sleep")
        call_engines(engines, "wake_up")
        assert call_engines(engines, "ping") == [True, True]
    finally:
        for engine in engines:
            ray.kill(engine)
        remove_placement_group(pg)


def test_colocated_tensor_parallel_engines_get_tp_bundles_each():
    """Break 3: colocate_all passed num_engines bundle indices; a TP-2 engine needs two bundles of the policy's."""
    cfg = config(
        vllm={"num_engines": 2, "tensor_parallel_size": 2},
        train={"colocate_all": True},
        actor={"num_gpus_per_node": 4},
        rollout={"backend": "auto"},
    )
    count = resolve_layout(cfg, cluster_gpus=4, vllm_build="cuda", joins_cluster=True).engine_bundles
    assert count == 4
    assert engine_bundles(2, 2, list(range(count))) == [[0, 1], [2, 3]]
    hf = resolve_layout(cfg, cluster_gpus=0, vllm_build="cuda", joins_cluster=True)
    assert hf.backend == "hf" and hf.engine_bundles == 2  # an HF engine is one process on one bundle
    with pytest.raises(ConfigError, match="needs 4 bundles; the policy has 2"):
        resolve_layout(
            cfg.model_copy(update={"actor": cfg.actor.model_copy(update={"num_gpus_per_node": 2})}),
            cluster_gpus=4,
            vllm_build="cuda",
            joins_cluster=True,
        )


_CLUSTER_PROBE = """
import os
import ray
from ray.cluster_utils import Cluster
import openrlhf.utils.vllm_builds as vllm_builds
from openrlhf.config_loading import build_config
from openrlhf.trainer.ray_setup import open_cluster
from openrlhf.workers.placement import bundle_spec
vllm_builds.installed_vllm_build = lambda: vllm_builds.CUDA_BUILD  # as on the GPU nodes' image
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 4})
os.environ["RAY_ADDRESS"] = cluster.address
layout, started = open_cluster(build_config({"rollout": {"backend": "vllm"}}))
print("LAYOUT", layout.backend, layout.weight_sync, layout.worker_mode, started)
print("BUNDLE", bundle_spec(layout).as_bundle())
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows a GPU-less driver joining a cluster with GPUs")
def test_driver_without_gpus_resolves_the_layout_from_the_clusters_gpus(tmp_path):
    """Under `ray job submit` the driver runs on a head node without GPUs; the workers' nodes have them.

    A Ray cluster whose head declares 4 GPUs, joined through RAY_ADDRESS, stands for that cluster: the layout is
    resolved once, after joining, so rollout.backend=vllm is accepted and the bundles ask for GPUs (the driver
    used to decide before joining, from its own devices, and refused vLLM for want of GPUs).
    """
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _CLUSTER_PROBE], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LAYOUT vllm broadcast ray False" in proc.stdout, proc.stdout
    assert "BUNDLE {'CPU': 1.0, 'GPU': 1.0}" in proc.stdout
