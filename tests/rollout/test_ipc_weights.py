"""Colocated weight sharing (the hybrid engine's path): buffers opened in another process, loaded into a model."""

from __future__ import annotations

import multiprocessing as mp

import pytest
import torch

from openrlhf.config_loading import build_config
from openrlhf.models.loading import load_model
from openrlhf.plan.layout import resolve_weight_sync
from openrlhf.rollout.ipc_weights import ALIGN_BYTES, IpcSender, open_ipc_weights, pick_payload, plan_buckets
from openrlhf.rollout.weight_sync import load_named_tensors


def _child_loads(payload, model_dir, queue) -> None:
    """Another process (spawned, as a Ray actor is): open the shared buffer, load it, report a checksum."""
    model = load_model(model_dir)
    count = load_named_tensors(model, open_ipc_weights(pick_payload({payload["device"]: payload}, "cpu")))
    queue.put((count, {n: float(p.detach().double().sum()) for n, p in model.named_parameters()}))


def test_another_process_loads_the_shared_weights(tiny_lm_path, updated_lm_path):
    source = load_model(updated_lm_path)
    sender = IpcSender(torch.device("cpu"))
    payload = sender.pack(source.named_parameters())
    assert payload["kind"] == "cpu_shm" and payload["device"] == "cpu"
    assert all(offset % ALIGN_BYTES == 0 for *_, offset in payload["meta"])
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_loads, args=(payload, str(tiny_lm_path), queue))
    proc.start()
    count, sums = queue.get(timeout=120)
    proc.join(timeout=60)
    assert count == len(list(source.named_parameters()))
    want = {n: float(p.detach().double().sum()) for n, p in source.named_parameters()}
    assert sums == pytest.approx(want, rel=1e-6)
    assert sender.release() == 1


def test_views_keep_dtype_and_shape_of_mixed_tensors():
    tensors = [("a", torch.arange(5, dtype=torch.float32)), ("b", torch.ones(3, 2, dtype=torch.bfloat16) * 2),
               ("c", torch.tensor([7], dtype=torch.int64))]  # fmt: skip
    sender = IpcSender(torch.device("cpu"))
    opened = dict(open_ipc_weights(sender.pack(tensors)))
    for name, t in tensors:
        assert opened[name].dtype == t.dtype and torch.equal(opened[name], t)


def test_buckets_bound_what_is_packed_at_once():
    sizes = [("a", 100), ("b", 300), ("c", 600), ("d", 10)]
    assert plan_buckets(sizes, bucket_bytes=1024) == [["a", "b"], ["c", "d"]]  # 256-byte aligned sizes
    assert plan_buckets(sizes, bucket_bytes=1) == [["a"], ["b"], ["c"], ["d"]]  # an oversized tensor alone
    with pytest.raises(ValueError, match="bucket_bytes=0"):
        plan_buckets(sizes, 0)


def test_an_engine_on_another_device_gets_a_clear_error():
    with pytest.raises(KeyError, match="no payload for device cpu; the policy shared \\['GPU-1'\\]"):
        pick_payload({"GPU-1": {}}, "cpu")


def _cfg(**sections):
    return build_config(sections)


def test_colocated_engines_take_ipc_not_a_broadcast():
    """Break 1: auto picked an NCCL broadcast between policy rank 0 and engine 0 on the same GPU."""
    colocated = _cfg(train={"colocate_all": True})
    assert resolve_weight_sync(colocated, "vllm") == "ipc"
    # colocated HF engines under ZeRO-0..2 are the policy ranks themselves; under ZeRO-3 they share by IPC
    assert resolve_weight_sync(colocated, "hf") == "in_process"
    assert resolve_weight_sync(_cfg(train={"colocate_all": True}, ds={"zero_stage": 3}), "hf") == "ipc"
    assert resolve_weight_sync(_cfg(), "vllm") == "broadcast"
    assert resolve_weight_sync(_cfg(), "hf") == "object_store"
    with pytest.raises(ValueError, match="NCCL refuses two ranks on one device"):
        resolve_weight_sync(_cfg(train={"colocate_all": True}, rollout={"weight_sync": "broadcast"}), "vllm")
    with pytest.raises(Exception, match="rollout.weight_sync=ipc .* needs train.colocate_all"):
        _cfg(rollout={"weight_sync": "ipc"})
    with pytest.raises(Exception, match="in_process.* needs rollout.backend hf .* ds.zero_stage <= 2"):
        _cfg(train={"colocate_all": True}, rollout={"weight_sync": "in_process"}, ds={"zero_stage": 3})
    with pytest.raises(ValueError, match="in_process needs HF engines"):
        resolve_weight_sync(_cfg(train={"colocate_all": True}, rollout={"weight_sync": "in_process"}), "vllm")
