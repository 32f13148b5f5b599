"""The run layout: backend, weight sync, worker mode and bundle sharing resolved once, from the cluster's GPUs."""

from __future__ import annotations

import pytest

from openrlhf.config import ConfigError
from openrlhf.config_loading import load_config
from openrlhf.plan.layout import resolve_layout


def _cfg(*args: str):
    return load_config(list(args))[0]


def _layout(*args: str, gpus: float = 0, vllm: str | None = None, joins: bool = True):
    return resolve_layout(_cfg(*args), cluster_gpus=gpus, vllm_build=vllm, joins_cluster=joins)


def test_separate_engines_on_a_cpu_cluster():
    layout = _layout("--actor.num_gpus_per_node", "2", "--vllm.num_engines", "2", "--algo.kl.init_kl_coef", "0.01")
    assert (layout.backend, layout.weight_sync, layout.worker_mode) == ("hf", "object_store", "ray")
    assert (layout.policy_ranks, layout.reference_ranks, layout.engine_count, layout.engine_bundles) == (2, 1, 2, 2)
    assert not layout.reference_on_policy_bundles and not layout.engines_on_policy_bundles
    assert layout.share == 1 and layout.gpus_per_bundle == 0.0
    assert layout.required_cpus == 2 + 1 + 2 + 1  # policy, reference, engines, and one for the driver


def test_hybrid_engine_shares_the_policys_bundles():
    args = ("--train.colocate_all", "true", "--actor.num_gpus_per_node", "2", "--algo.kl.init_kl_coef", "0.01")
    hf = _layout(*args, "--ds.zero_stage", "2")  # HF under ZeRO-2: the policy ranks generate themselves
    assert hf.weight_sync == "in_process" and hf.engines_are_policy and not hf.engines_on_policy_bundles
    assert hf.share == 2 and hf.reference_on_policy_bundles and hf.required_cpus == 3
    vllm = _layout(*args, gpus=2, vllm="cuda")  # vLLM engine actors beside the policy and reference ranks
    assert (vllm.backend, vllm.weight_sync, vllm.share, vllm.gpus_per_bundle) == ("vllm", "ipc", 3, 1.0)


def test_one_self_generating_rank_runs_in_the_driver_unless_a_cluster_is_joined():
    args = ("--train.colocate_all", "true", "--actor.num_gpus_per_node", "1", "--ds.zero_stage", "2")
    assert _layout(*args, joins=False).worker_mode == "in_driver"
    assert _layout(*args, joins=True).worker_mode == "ray"  # ray job submit, or a test's Ray
    assert _layout(*args, "--ds.zero_stage", "3", joins=False).worker_mode == "ray"  # ipc: engines of their own


def test_layout_refusals_name_the_keys():
    with pytest.raises(ConfigError, match="rollout.backend=vllm needs CUDA GPUs"):
        _layout("--rollout.backend", "vllm")
    cpu = _layout("--rollout.backend", "vllm", vllm="cpu")  # vLLM's CPU build: engines on CPU bundles
    assert (cpu.backend, cpu.weight_sync, cpu.gpus_per_bundle) == ("vllm", "broadcast", 0.0)
    with pytest.raises(ConfigError, match="train.worker_mode=in_driver: the policy has 2 ranks"):
        _layout("--train.worker_mode", "in_driver", "--actor.num_gpus_per_node", "2")
    with pytest.raises(ConfigError, match="needs 2 bundles; the policy has 1"):
        _layout("--train.colocate_all", "true", "--vllm.num_engines", "2", "--ds.zero_stage", "3")


def test_the_driver_resolves_the_layout_once():
    """Backend, weight sync and worker mode are resolved in one place: nothing in the trainer, the engine factory
    or the placement code decides them again from its own view of the cluster."""
    import inspect

    import openrlhf.rollout.factory as factory
    import openrlhf.trainer.driver as driver
    import openrlhf.trainer.run_resources as run_resources
    import openrlhf.trainer.weight_push as weight_push
    import openrlhf.workers.placement as placement

    for module in (driver, factory, run_resources, weight_push, placement):
        source = inspect.getsource(module)
        for name in ("resolve_backend", "resolve_weight_sync", "resolve_worker_mode", "cluster_gpu_count"):
            assert name not in source, f"{module.__name__} calls {name}"
