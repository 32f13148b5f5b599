"""A build lock left by a process killed while DeepSpeed compiled its CPU op must not hang every later run."""

from __future__ import annotations

import os
import time

from openrlhf.workers.distributed import STALE_BUILD_LOCK_S, clear_stale_build_lock


def test_a_stale_lock_is_removed_and_a_fresh_one_kept(tmp_path, monkeypatch, caplog):
    from torch.utils.cpp_extension import _get_build_directory
    from torch.utils.file_baton import FileBaton

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    lock = tmp_path / "deepspeed_shm_comm" / "lock"
    assert _get_build_directory("deepspeed_shm_comm", verbose=False) == str(lock.parent)
    baton = FileBaton(str(lock))
    assert baton.try_acquire()  # what torch's compile does first; a kill now leaves the file
    assert not clear_stale_build_lock("deepspeed_shm_comm") and lock.exists()  # a build in progress
    old = time.time() - STALE_BUILD_LOCK_S - 60
    os.utime(lock, (old, old))
    assert clear_stale_build_lock("deepspeed_shm_comm") and not lock.exists()
    assert "a build lock left" in caplog.text and str(lock) in caplog.text
    assert FileBaton(str(lock)).try_acquire()  # the next build proceeds instead of waiting forever
    assert not clear_stale_build_lock("absent_op")
