"""Weight sync: the stateless gloo group, and policy rank 0 -> HF engine actor over Ray, changing generation."""

from __future__ import annotations

import pytest
import torch
from openrlhf_helpers import find_free_port

from openrlhf.rollout.base import SamplingParams
from openrlhf.rollout.weight_sync import (
    broadcast_named_tensors,
    create_sync_group,
    dtype_from_name,
    engine_sync_ranks,
    load_named_tensors,
    pack_state_dict,
    receive_named_tensors,
    resolve_param_name,
    sync_world_size,
    weight_meta,
)

from .helpers import PROMPTS, chat_request, run_ranks


def sample_tensors():
    gen = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(4, 3, generator=gen),
        "b.bias": torch.randn(5, generator=gen).to(torch.bfloat16),
        "c.steps": torch.arange(6, dtype=torch.int64),
        "d.transposed": torch.randn(3, 2, generator=gen).t(),  # not contiguous
    }


def test_weight_meta_names_dtypes_and_shapes():
    meta = weight_meta(sample_tensors())
    assert meta == [
        ("a.weight", "float32", [4, 3]),
        ("b.bias", "bfloat16", [5]),
        ("c.steps", "int64", [6]),
        ("d.transposed", "float32", [2, 3]),
    ]
    assert dtype_from_name("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="'floaty' is not a torch dtype"):
        dtype_from_name("floaty")


def test_broadcast_reaches_every_receiver_in_order():
    tensors = sample_tensors()
    meta = weight_meta(tensors)
    port, world = find_free_port(), 3

    def sender():
        group = create_sync_group("127.0.0.1", port, 0, world, "unit", timeout_s=60)
        return broadcast_named_tensors(tensors.items(), group)

    def receiver(rank):
        group = create_sync_group("127.0.0.1", port, rank, world, "unit", timeout_s=60)
        return dict(receive_named_tensors(meta, group))

    sent, got1, got2 = run_ranks(sender, lambda: receiver(1), lambda: receiver(2))
    assert sent == len(tensors)
    for got in (got1, got2):
        assert list(got) == list(tensors)
        for name, tensor in tensors.items():
            assert got[name].dtype == tensor.dtype
            assert torch.equal(got[name], tensor)


def test_only_rank_zero_sends():
    port = find_free_port()

    def rank(r):
        group = create_sync_group("127.0.0.1", port, r, 2, "senders", timeout_s=60)
        if r == 1:
            with pytest.raises(RuntimeError, match="only rank 0 sends, this is rank 1"):
                broadcast_named_tensors({"x": torch.zeros(1)}, group)

    run_ranks(lambda: rank(0), lambda: rank(1))


def test_group_arguments_are_checked():
    with pytest.raises(ValueError, match="'mpi' is not one of 'gloo', 'nccl'"):
        create_sync_group("127.0.0.1", find_free_port(), 0, 2, "g", backend="mpi")
    with pytest.raises(ValueError, match="rank 2 outside world of size 2"):
        create_sync_group("127.0.0.1", find_free_port(), 2, 2, "g")
    with pytest.raises(RuntimeError, match=r"could not reach the store at tcp://127.0.0.1:\d+"):
        create_sync_group("127.0.0.1", find_free_port(), 1, 2, "g", timeout_s=1)


def test_engine_ranks_follow_the_sender():
    assert engine_sync_ranks(3) == [1, 2, 3] and sync_world_size(3) == 4
    assert engine_sync_ranks(2, ranks_per_engine=4) == [1, 5] and sync_world_size(2, 4) == 9


def test_pack_state_dict_detaches_and_casts():
    param = torch.nn.Parameter(torch.randn(3, 2))
    packed = pack_state_dict([("w", param.t()), ("v", param)], dtype=torch.bfloat16)
    assert packed["w"].is_contiguous() and not packed["w"].requires_grad
    assert packed["v"].dtype is torch.bfloat16 and packed["v"].device.type == "cpu"


def test_names_from_wrapped_models_resolve():
    known = {"model.norm.weight": 1}
    assert resolve_param_name("module.model.norm.weight", known) == "model.norm.weight"
    assert resolve_param_name("module._orig_mod.model.norm.weight", known) == "model.norm.weight"
    assert resolve_param_name("model.norm.weight", known) == "model.norm.weight"
    assert resolve_param_name("model.other", known) is None


def test_load_named_tensors_casts_to_the_model_dtype():
    model = torch.nn.Linear(2, 2).to(torch.bfloat16)
    load_named_tensors(model, {"weight": torch.ones(2, 2), "module.bias": torch.zeros(2)})
    assert model.weight.dtype is torch.bfloat16 and torch.equal(model.weight.float(), torch.ones(2, 2))


# --------------------------------------------------------------------------- across Ray actors


@pytest.fixture(scope="module")
def actors(ray_local, tiny_lm_path, updated_lm_path):
    """Policy rank 0 holding the updated weights, and an HF engine actor holding the original ones."""
    import ray
    import ray.cloudpickle

    from openrlhf.rollout.hf_engine import hf_rollout_actor_class

    from . import sync_sender

    ray.cloudpickle.register_pickle_by_value(sync_sender)  # the test helper is not importable in workers
    sender = ray.remote(num_cpus=1)(sync_sender.PolicyRankZero).remote(str(updated_lm_path), find_free_port())
    engine = hf_rollout_actor_class().options(num_cpus=1).remote(str(tiny_lm_path), num_threads=1)
    yield sender, engine
    ray.kill(sender)
    ray.kill(engine)


def test_broadcast_from_policy_rank0_changes_what_the_engine_generates(actors, tiny_lm_path, updated_lm_path):
    import ray

    from openrlhf.rollout.hf_engine import HFRolloutEngine

    sender, engine = actors
    local = HFRolloutEngine(str(updated_lm_path), num_threads=1)
    requests = [chat_request(local.tokenizer, text) for text in PROMPTS]
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=3)
    expected = local.generate(requests, params)
    before = ray.get(engine.generate.remote(requests, params))
    assert [o.output_token_ids for outs in before for o in outs] != [
        o.output_token_ids for outs in expected for o in outs
    ]

    address, port = ray.get(sender.sync_address.remote())
    world = sync_world_size(1)
    ray.get(
        [
            sender.create_group.remote(address, port, world, "rollout-sync"),
            engine.init_weight_sync_group.remote(address, port, engine_sync_ranks(1)[0], world, "rollout-sync"),
        ]
    )
    meta = ray.get(sender.meta.remote())
    sent, received = ray.get([sender.broadcast.remote(), engine.receive_weights.remote(meta)])
    assert sent == received == len(meta)
    after = ray.get(engine.generate.remote(requests, params))
    assert [o.output_token_ids for outs in after for o in outs] == [
        o.output_token_ids for outs in expected for o in outs
    ]
    for got, want in zip(after, expected, strict=True):
        torch.testing.assert_close(torch.tensor(got[0].log_probs), torch.tensor(want[0].log_probs))
    # the sync group did not disturb the sender's training (default) process group
    assert ray.get(sender.default_group_still_works.remote())

    # the object-store path: the original weights, put once, bring the original generations back
    from openrlhf.models.loading import load_model

    original = ray.put(pack_state_dict(load_model(tiny_lm_path).named_parameters()))
    ray.get(engine.update_weights.remote(original))
    restored = ray.get(engine.generate.remote(requests, params))
    assert [o.output_token_ids for outs in restored for o in outs] == [
        o.output_token_ids for outs in before for o in outs
    ]
