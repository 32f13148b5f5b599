"""A local Ray cluster and the shapes task for the vision-language end-to-end tests."""

from __future__ import annotations

import os
import tempfile

import pytest


@pytest.fixture(scope="session")
def vlm_ray():
    """A local Ray with 8 logical CPUs (reused when another suite already started one in this process)."""
    import ray

    from openrlhf.trainer.ray_setup import worker_env

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if ray.is_initialized():
        yield ray
        return
    ray.init(
        num_cpus=8,
        include_dashboard=False,
        runtime_env={"env_vars": worker_env()},
        _temp_dir=tempfile.mkdtemp(prefix="ray_vlm_tests_"),
        logging_level="WARNING",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def shapes_task(tmp_path_factory):
    """The shapes task with rec / counting / choice questions only (16 train, 6 held-out prompts)."""
    from openrlhf.data.synthetic import write_shapes_task

    root = tmp_path_factory.mktemp("shapes")
    paths = write_shapes_task(root, 16, 6, seed=1, kinds=("rec", "counting", "choice"))
    empty = root / "empty.yaml"
    empty.write_text("{}\n")
    return {**paths, "empty_config": empty}
