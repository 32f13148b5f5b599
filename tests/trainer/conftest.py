"""One local Ray cluster and one small task for all trainer end-to-end tests."""

from __future__ import annotations

import os
import tempfile

import pytest

from .helpers import REWARD_FUNC


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray with 8 logical CPUs (the bundles of 2 policy + 2 reference workers + engines fit)."""
    import ray

    from openrlhf.trainer.ray_setup import worker_env

    if ray.is_initialized():
        yield ray
        return
    tmp = tempfile.mkdtemp(prefix="ray_trainer_tests_")
    ray.init(
        num_cpus=8,
        include_dashboard=False,
        runtime_env={"env_vars": worker_env()},
        _temp_dir=tmp,
        logging_level="WARNING",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def task(tmp_path_factory, tiny_lm_path):
    """The arithmetic task (64 train / 16 held-out prompts), the tiny LM, a reward_func file, an empty config."""
    from openrlhf.data.synthetic import write_arithmetic_task

    root = tmp_path_factory.mktemp("trainer_task")
    paths = write_arithmetic_task(root, 64, 16, 0)
    reward = root / "reward.py"
    reward.write_text(REWARD_FUNC)
    empty = root / "empty.yaml"
    empty.write_text("{}\n")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return {**paths, "model": tiny_lm_path, "reward_func": reward, "empty_config": empty}
