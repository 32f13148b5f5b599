"""Fixtures for the reward service tests: one real server (subprocess, loopback) shared by the
session, a fake OpenAI judge on loopback, a private WordNet cache, and the shared real data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from rm_fake_openai import FakeOpenAIServer
from rm_helpers import server_test_config, shared_data_dir, start_server, stop_server


@pytest.fixture(scope="session")
def rec_outputs_dir() -> Path:
    base = shared_data_dir()
    folder = base / "vlm_r1_rec_outputs" if base else None
    if folder is None or not folder.is_dir():
        pytest.skip("shared data vlm_r1_rec_outputs not found (set SHARED_DATA_DIR or put shared/ beside the checkout)")
    return folder


@pytest.fixture(scope="session")
def remote_rm_cache(tmp_path_factory) -> Iterator[Path]:
    """A private cache folder for the prepared WordNet copy (also used by the server subprocesses)."""
    path = tmp_path_factory.mktemp("remote_rm_cache")
    previous = os.environ.get("REMOTE_RM_CACHE_DIR")
    os.environ["REMOTE_RM_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("REMOTE_RM_CACHE_DIR", None)
    else:
        os.environ["REMOTE_RM_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def fake_judge():
    with FakeOpenAIServer(slow_s=3.0) as server:
        yield server


@pytest.fixture(scope="session")
def server(tmp_path_factory, fake_judge, remote_rm_cache):
    """The shared reward server (default recipes + a few test recipes, fake judge, 2 workers)."""
    workdir = tmp_path_factory.mktemp("rm_server")
    running, log = start_server(server_test_config(fake_judge.base_url), workdir)
    yield running
    stop_server(running, log)
