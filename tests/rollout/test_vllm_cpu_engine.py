"""The real vLLM engine (its CPU build) against the policy's own forward, on the tiny LM and on SmolLM2-135M.

One engine per model (module scope), in a Ray actor: the contract tests import the CUDA wheel's ``vllm`` modules
into this process, so the installed build runs in a process of its own.

Tolerance of the sampler's log-probs against the policy's (fp32 both, the same tokens): the two sides sum in a
different order (vLLM's CPU GEMM and attention kernels against torch's), which moves a log-prob by a few 1e-7 on the
tiny LM and by up to ~1e-4 over SmolLM2's 30 layers; a stale or misplaced weight moves it by 1e-2 or more. So: mean
|diff| < 1e-4 and max |diff| < 1e-2.
"""

from __future__ import annotations

import pytest
import torch

from openrlhf.models.loading import load_model, load_tokenizer
from openrlhf.rollout.base import GenerationRequest, SamplingParams

from .helpers import teacher_forced_log_probs

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

MEAN_TOLERANCE, MAX_TOLERANCE = 1e-4, 1e-2
PROMPTS = ["What is 12 + 7?", "Name three colours.", "Count to five:"]


@pytest.fixture(scope="module", params=["tiny_lm", "smollm2"])
def served(request, require_vllm_cpu, ray_local):
    from openrlhf.rollout.vllm_engine import VLLMRolloutEngine

    path = request.getfixturevalue("tiny_lm_path" if request.param == "tiny_lm" else "smollm2_path")
    engine = (
        ray_local.remote(VLLMRolloutEngine)
        .options(num_cpus=1)
        .remote(str(path), dtype="float32", enforce_eager=True, max_model_len=512, seed=0, in_placement_group=False)
    )
    tokenizer = load_tokenizer(str(path))
    requests = [GenerationRequest(p, tokenizer(p)["input_ids"]) for p in PROMPTS]
    try:
        yield request.param, path, engine, requests
    finally:
        ray_local.kill(engine)


def _gaps(ray, engine, requests, model) -> tuple[float, float, list]:
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=24, seed=5)
    outputs = ray.get(engine.generate.remote(requests, params))
    diffs = []
    for request, group in zip(requests, outputs, strict=True):
        for out in group:
            ref = teacher_forced_log_probs(model, request.prompt_token_ids, out.output_token_ids)
            diffs.append((torch.tensor(out.log_probs) - ref).abs())
    gaps = torch.cat(diffs)
    return float(gaps.mean()), float(gaps.max()), outputs


def test_sampler_log_probs_equal_the_policys_before_and_after_a_weight_update(served, ray_local):
    """Item 1 and 2 of the engine's contract: the sampler's log-probs are the policy's, and after an update
    through ``update_weights`` (tied embeddings on both models: the LM head is the embedding) they are the new
    weights' and no longer the old ones'."""
    name, path, engine, requests = served
    model = load_model(str(path), dtype=torch.float32).eval()
    mean, worst, _ = _gaps(ray_local, engine, requests, model)
    print(f"{name}: sampler vs policy |diff| mean {mean:.2e}, max {worst:.2e}")
    assert mean < MEAN_TOLERANCE and worst < MAX_TOLERANCE, (name, mean, worst)

    old = load_model(str(path), dtype=torch.float32).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * param.detach().float().std().clamp(min=1e-3) * 0.1)
    count = ray_local.get(engine.update_weights.remote({k: v.detach() for k, v in model.state_dict().items()}))
    assert count > 0
    mean, worst, _ = _gaps(ray_local, engine, requests, model)
    stale_mean, _, _ = _gaps(ray_local, engine, requests, old)
    print(f"{name}: after the update mean {mean:.2e}, max {worst:.2e}; against the old weights mean {stale_mean:.2e}")
    assert mean < MEAN_TOLERANCE and worst < MAX_TOLERANCE, (name, "after the update", mean, worst)
    assert stale_mean > 100 * MEAN_TOLERANCE, (name, "the engine still matches the old weights", stale_mean)
