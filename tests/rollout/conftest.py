"""Fixtures for the rollout tests: the tiny checkpoints, tokenised requests, and one local Ray cluster."""

from __future__ import annotations

import shutil
import tempfile
from types import SimpleNamespace

import pytest
from fixtures_models import tiny_lm_path, tiny_vlm_path  # noqa: F401
from vllm_wheel import vllm_module

from .helpers import perturbed_checkpoint


@pytest.fixture(scope="session")
def updated_lm_path(tiny_lm_path, tmp_path_factory):  # noqa: F811
    """The tiny LM with every weight moved: stands for the policy after some training steps."""
    return perturbed_checkpoint(tiny_lm_path, tmp_path_factory.mktemp("updated_lm"), seed=1)


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray cluster for this session (reused if another fixture already started one); never `ray stop`."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    temp_dir = tempfile.mkdtemp(prefix="ray_rollout_", dir="/tmp")
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=temp_dir,
        configure_logging=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def vllm_api():
    """The wheel's modules used here, imported once (15-40 s: vLLM's config tree pulls in torch._inductor)."""
    return SimpleNamespace(
        serial=vllm_module("vllm.v1.serial_utils"),
        engine=vllm_module("vllm.v1.engine"),
        sampling=vllm_module("vllm.sampling_params"),
        exceptions=vllm_module("vllm.exceptions"),
        arg_utils=vllm_module("vllm.engine.arg_utils"),
        model_config=vllm_module("vllm.config.model"),
        parallel_config=vllm_module("vllm.config.parallel"),
        cache_config=vllm_module("vllm.config.cache"),
        multimodal_config=vllm_module("vllm.config.multimodal"),
        processing=vllm_module("vllm.multimodal.processing.processor"),
        parallel_sampling=vllm_module("vllm.v1.engine.parallel_sampling"),
        outputs=vllm_module("vllm.outputs"),
        logprobs=vllm_module("vllm.logprobs"),
        import_utils=vllm_module("vllm.utils.import_utils"),
    )
