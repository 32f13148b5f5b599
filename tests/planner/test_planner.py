"""The placement and memory planner: parsing, hand-checked arithmetic, placement, verdicts, the CLI.

Pure and fast except the parameter counts, which build the tiny checkpoints' models on the meta device and
compare with the real loaded models.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from openrlhf.config import Config
from openrlhf.config_loading import load_config
from openrlhf.plan import (
    ClusterSpec,
    PlanError,
    activation_bytes,
    check_plan,
    cluster_from_ray_nodes,
    count_parameters,
    format_plan,
    kv_bytes_per_token,
    lora_params,
    make_plan,
    model_from_checkpoint,
    model_from_size,
    model_states_bytes,
    parse_cluster_spec,
    parse_model_size,
    shapes_from_config,
    vllm_memory,
)

REPO = Path(__file__).resolve().parents[2]
GRPO = str(REPO / "configs" / "grpo.yaml")
SEVEN_B = model_from_size(7e9)  # rule-of-thumb shapes of Qwen2.5-7B
# configs/grpo.yaml's cluster command with the engines on their own GPUs (the YAML itself may be colocated).
SEPARATE = [
    "--config", GRPO, "--actor.num_gpus_per_node", "8", "--vllm.num_engines", "4", "--rollout.backend", "vllm",
    "--algo.kl.init_kl_coef", "0.04", "--train.colocate_all", "false", "--train.colocate_actor_ref", "false",
    "--vllm.enable_sleep", "false", "--ds.enable_sleep", "false", "--ds.zero_stage", "3", "--ds.bf16",
    "--vllm.tensor_parallel_size", "1", "--plan.model_size", "7B",
]  # fmt: skip
COLOCATED = [
    *SEPARATE, "--train.colocate_all", "true", "--vllm.num_engines", "8", "--vllm.enable_sleep", "true",
    "--ds.enable_sleep", "true", "--vllm.gpu_memory_utilization", "0.5",
]  # fmt: skip
QWEN25_7B_CONFIG = {  # the published Qwen2.5-7B config.json (shapes only): 7,615,616,512 parameters
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "tie_word_embeddings": False,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06,
}


def cfg_of(*argv: str) -> Config:
    return load_config(list(argv))[0]


def only_config_json(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "config.json", dst / "config.json")
    return dst


# --------------------------------------------------------------------------- parsing


def test_parse_cluster_spec():
    c = parse_cluster_spec("1x8x80")
    assert (c.nodes, c.gpus_per_node, c.gpu_memory_gb, c.total_gpus, c.cpus) == (1, 8, 80.0, 8, 0.0)
    assert c.describe() == "1 node x 8 GPUs"
    c = parse_cluster_spec("2X8x141x64")
    assert (c.nodes, c.total_gpus, c.gpu_memory_gb, c.cpus) == (2, 16, 141.0, 128.0)
    cpu = parse_cluster_spec("1x0x0x16")
    assert not cpu.has_gpus and cpu.cpus == 16 and cpu.describe() == "1 CPU-only node"
    for bad, words in [
        ("", "NODESxGPUSxGB"),
        ("1x8", "NODESxGPUSxGB"),
        ("1x8x80x4x2", "NODESxGPUSxGB"),
        ("axbxc", "NODES is 'a'"),
        ("1x8xlots", "GB is 'lots'"),
        ("0x8x80", "NODES must be at least 1"),
        ("1x8x0", "GB (memory per GPU) must be > 0"),
        ("1x2.5x80", "GPUS must be a whole number"),
        ("1x-8x80", ">= 0"),
    ]:
        with pytest.raises(ValueError, match="plan.cluster") as err:
            parse_cluster_spec(bad)
        assert words in str(err.value), (bad, str(err.value))


def test_parse_model_size():
    assert parse_model_size("7B") == 7e9
    assert parse_model_size("1.5b") == 1.5e9
    assert parse_model_size("135M") == 135e6
    assert parse_model_size("3e9") == 3e9
    assert parse_model_size(" 500K ") == 5e5
    assert parse_model_size("1T") == 1e12
    for bad in ("", "seven", "7Q", "-1B", "0", "B"):
        with pytest.raises(ValueError, match="plan.model_size"):
            parse_model_size(bad)


def test_rule_of_thumb_shapes_pick_the_nearest_reference():
    assert SEVEN_B.hidden_size == 3584 and SEVEN_B.num_layers == 28 and SEVEN_B.num_kv_heads == 4
    assert "Qwen2.5-7B" in SEVEN_B.source
    small = model_from_size(parse_model_size("135M"))
    assert small.hidden_size == 576 and "SmolLM2-135M" in small.source


def test_shapes_from_config_reads_nested_text_config(tiny_vlm_path):
    shapes = shapes_from_config(json.loads((tiny_vlm_path / "config.json").read_text()))
    assert shapes["hidden_size"] == 192 and shapes["num_layers"] == 4 and shapes["num_kv_heads"] == 1
    assert shapes_from_config(QWEN25_7B_CONFIG)["head_dim"] == 128


# --------------------------------------------------------------------------- parameter counts (meta device)


def test_count_parameters_from_config_json_alone_matches_the_real_model(tiny_lm_path, tmp_path):
    from openrlhf.models.loading import load_model

    real = sum(p.numel() for p in load_model(tiny_lm_path, device="cpu").parameters())
    folder = only_config_json(tiny_lm_path, tmp_path / "lm")
    assert count_parameters(folder) == real
    spec = model_from_checkpoint(folder)
    assert spec.num_params == real and spec.hidden_size == 256 and spec.vision_params == 0


def test_count_parameters_of_a_vlm_from_config_json(tiny_vlm_path, tmp_path):
    from openrlhf.models.loading import load_model, vision_tower

    model = load_model(tiny_vlm_path, device="cpu")
    real = sum(p.numel() for p in model.parameters())
    real_vision = sum(p.numel() for p in vision_tower(model)[1].parameters())
    spec = model_from_checkpoint(only_config_json(tiny_vlm_path, tmp_path / "vlm"))
    assert spec.num_params == real and spec.vision_params == real_vision > 0


def test_count_parameters_of_qwen25_7b_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(QWEN25_7B_CONFIG))
    assert count_parameters(tmp_path) == 7_615_616_512


# --------------------------------------------------------------------------- arithmetic by hand


def test_zero_states_arithmetic():
    # 16 bytes/param (2 bf16 weights + 2 grads + 12 fp32 master, m, v) split by stage over N = 8
    s3 = model_states_bytes(7e9, 7e9, zero_stage=3, dp_world=8, bf16=True)
    assert (s3.weights, s3.grads, s3.optimizer) == (1.75e9, 1.75e9, 10.5e9) and s3.total == 14e9
    s2 = model_states_bytes(7e9, 7e9, zero_stage=2, dp_world=8, bf16=True)
    assert (s2.weights, s2.grads, s2.optimizer) == (14e9, 1.75e9, 10.5e9)
    s1 = model_states_bytes(7e9, 7e9, zero_stage=1, dp_world=8, bf16=True)
    assert (s1.weights, s1.grads, s1.optimizer) == (14e9, 14e9, 10.5e9)
    s0 = model_states_bytes(7e9, 7e9, zero_stage=0, dp_world=1, bf16=True)
    assert s0.total == 112e9
    off = model_states_bytes(7e9, 7e9, zero_stage=2, dp_world=8, bf16=True, adam_offload=True)
    assert off.optimizer == 0 and off.host == 10.5e9
    assert model_states_bytes(7e9, 7e9, zero_stage=0, dp_world=8, bf16=True, adam_offload=True).optimizer == 84e9
    fp32 = model_states_bytes(1e9, 1e9, zero_stage=0, dp_world=1, bf16=False)
    assert (fp32.weights, fp32.grads, fp32.optimizer) == (4e9, 4e9, 8e9)


def test_zero0_7b_on_one_gpu_is_refused_with_its_numbers():
    cfg = cfg_of(
        "--actor.num_gpus_per_node", "1", "--ds.zero_stage", "0", "--ds.bf16", "--rollout.backend", "vllm",
        "--data.prompt_max_len", "512", "--rollout.max_new_tokens", "512", "--train.micro_train_batch_size", "1",
    )  # fmt: skip
    plan = make_plan(cfg, parse_cluster_spec("1x2x80"), SEVEN_B)
    assert not plan.fits
    [line] = [p for p in plan.problems if p.startswith("GPU node0:0")]
    assert "(policy rank 0)" in line and "> 80 GB" in line
    assert "weights 14.0, grads 14.0, optimizer 84.0" in line
    assert plan.gpus[0].total("train") > 112


def test_lora_trains_only_the_adapters():
    tiny = model_from_size(3e6, shapes_from_config({"hidden_size": 256, "num_hidden_layers": 4, "vocab_size": 2048,
                                                    "num_attention_heads": 4, "num_key_value_heads": 2,
                                                    "intermediate_size": 512}))  # fmt: skip
    # per layer, rank 8: q 8(256+256) + k 8(256+128) + v 8(256+128) + o 8(256+256) = 14336; 4 layers
    assert lora_params(tiny, 8, ["q_proj", "k_proj", "v_proj", "o_proj"]) == 4 * 14336
    assert lora_params(tiny, 8, ["gate_proj"]) == 4 * 8 * (256 + 512)
    cfg = cfg_of("--actor.lora.rank", "16", "--ds.zero_stage", "2", "--ds.bf16", "--actor.num_gpus_per_node", "2")
    plan = make_plan(cfg, parse_cluster_spec("1x4x80"), SEVEN_B)
    adapters = lora_params(SEVEN_B, 16, cfg.actor.lora.target_modules)
    parts = plan.gpus[0].phases["train"]
    assert parts["weights"] == pytest.approx(2 * (7e9 + adapters) / 1e9)
    assert parts["grads"] == pytest.approx(2 * adapters / 2 / 1e9)
    assert parts["optimizer"] == pytest.approx(12 * adapters / 2 / 1e9)


def test_activation_formulas():
    m = model_from_size(7e9)
    a = 17 * 3584 + 8 * 18944  # bf16 bytes per token and layer
    tokens, response = 4 * 2048, 4 * (1024 + 1)
    logits = response * 152064 * 2
    kw = {"micro_batch": 4, "seq_len": 2048, "response_len": 1024, "bf16": True}
    assert activation_bytes(m, training=True, checkpointing=False, **kw) == tokens * 28 * a + 2 * logits
    assert activation_bytes(m, training=True, checkpointing=True, **kw) == tokens * (28 * 3584 * 2 + a) + 2 * logits
    assert activation_bytes(m, training=False, checkpointing=False, **kw) == tokens * a + logits
    assert activation_bytes(m, training=True, checkpointing=True, **kw) < activation_bytes(
        m, training=True, checkpointing=False, **kw
    )


def test_vllm_share_weights_and_kv_cache():
    # 2 K/V x 28 layers x 4 kv heads x 128 dims x 2 bytes = 57,344 bytes per token
    assert kv_bytes_per_token(SEVEN_B, 1) == 57344
    assert kv_bytes_per_token(SEVEN_B, 2) == 57344 / 2
    assert kv_bytes_per_token(SEVEN_B, 8) == 57344 / 4  # 4 kv heads over 8 ranks: one head each, replicated
    vm = vllm_memory(SEVEN_B, gpu_memory_gb=80, utilization=0.5, tensor_parallel=1, max_model_len=2048,
                     sequences_per_step=128)  # fmt: skip
    assert (vm.share, vm.weights, vm.kv_cache) == (40e9, 14e9, 24e9)
    assert vm.kv_tokens == int(24e9 // 57344) == 418526 and vm.kv_sequences == 204


def test_vllm_share_too_small_for_the_weights_is_refused():
    cfg = cfg_of(*COLOCATED, "--vllm.gpu_memory_utilization", "0.15")
    plan = make_plan(cfg, parse_cluster_spec("1x8x80"), SEVEN_B)
    [line] = [p for p in plan.problems if p.startswith("rollout:")]
    assert "weights 14.0 GB" in line and "vLLM share 12.0 GB" in line and "gpu_memory_utilization" in line


def test_kv_cache_below_one_sequence_is_refused():
    cfg = cfg_of(*COLOCATED, "--vllm.gpu_memory_utilization", "0.21", "--vllm.max_model_len", "32768")
    plan = make_plan(cfg, parse_cluster_spec("1x8x80"), SEVEN_B)
    assert any("tokens < max_model_len 32768" in p for p in plan.problems)


# --------------------------------------------------------------------------- placement and verdicts


def test_grpo_cluster_command_without_colocation_needs_13_bundles_on_8_gpus():
    plan = make_plan(cfg_of(*SEPARATE), parse_cluster_spec("1x8x80"), SEVEN_B)
    assert not plan.fits
    assert [(r.role, r.bundles) for r in plan.roles] == [("policy", 8), ("reference", 1), ("rollout", 4)]
    assert plan.problems[0] == (
        "reference: needs 1 more GPU bundle: policy 8 + reference 1 + rollout 4 = 13 one-GPU bundles do not fit "
        "on 1 node x 8 GPUs"
    )
    assert plan.problems[1].startswith("rollout: needs 4 more GPU bundles")
    # two nodes hold it: PACK keeps each group on one node
    two = make_plan(cfg_of(*SEPARATE), parse_cluster_spec("2x8x80"), SEVEN_B)
    assert two.fits, two.problems
    assert two.role("reference").slots == [(1, 0)] and two.role("rollout").slots == [(1, i) for i in range(1, 5)]


@pytest.mark.parametrize("engines", ["8", "4"])
def test_grpo_colocated_7b_fits_one_node(engines):
    cfg = cfg_of(*COLOCATED, "--vllm.num_engines", engines)
    plan = make_plan(cfg, parse_cluster_spec("1x8x80"), SEVEN_B)
    assert plan.fits, plan.problems
    assert plan.total_bundles == 8 and len(plan.gpus) == 8
    first = plan.gpus[0]
    assert first.occupants == ["policy rank 0", "reference rank 0", "engine 0"]
    # ZeRO-3 reference: 2 bytes x 7e9 / 8 ranks
    assert first.phases["generate"]["reference"] == pytest.approx(1.75)
    # both sleep: generation holds vLLM's share but not the policy's states; training the reverse
    assert "weights" not in first.phases["generate"] and first.phases["generate"]["vLLM share"] == 40.0
    assert "vLLM share" not in first.phases["train"] and first.phases["train"]["optimizer"] == pytest.approx(10.5)
    assert first.peak_gb == max(first.total("train"), first.total("generate"), first.total("experience"))


def test_without_vllm_sleep_the_share_stays_resident_while_training():
    slept = make_plan(cfg_of(*COLOCATED), parse_cluster_spec("1x8x80"), SEVEN_B).gpus[0]
    awake = make_plan(cfg_of(*COLOCATED, "--vllm.enable_sleep", "false"), parse_cluster_spec("1x8x80"), SEVEN_B).gpus[0]
    assert awake.total("train") == pytest.approx(slept.total("train") + 40.0)
    no_ds_sleep = make_plan(cfg_of(*COLOCATED, "--ds.enable_sleep", "false"), parse_cluster_spec("1x8x80"), SEVEN_B)
    assert no_ds_sleep.gpus[0].total("generate") == pytest.approx(slept.total("generate") + 14.0)


def test_memory_problem_names_the_gpu_its_occupants_and_numbers():
    cfg = cfg_of(*COLOCATED, "--vllm.enable_sleep", "false", "--ds.enable_sleep", "false",
                 "--vllm.gpu_memory_utilization", "0.6", "--ds.gradient_checkpointing", "false")  # fmt: skip
    plan = make_plan(cfg, parse_cluster_spec("1x8x80"), SEVEN_B)
    [line] = [p for p in plan.problems if p.startswith("GPU ")]
    assert line.startswith("GPU node0:0 (policy rank 0 + reference rank 0 + engine 0) and 7 more GPUs like it: ")
    assert "> 80 GB in the train phase" in line and "vLLM share 48.0" in line and "optimizer 10.5" in line


def test_tensor_parallel_engines_take_tp_bundles():
    cfg = cfg_of(
        *SEPARATE, "--vllm.num_engines", "2", "--vllm.tensor_parallel_size", "4", "--algo.kl.init_kl_coef", "0"
    )
    plan = make_plan(cfg, parse_cluster_spec("2x8x80"), SEVEN_B)
    rollout = plan.role("rollout")
    assert (rollout.workers, rollout.bundles, rollout.bundles_per_worker) == (2, 8, 4)
    assert rollout.slots == [(1, i) for i in range(8)] and plan.fits
    engine_gpu = next(g for g in plan.gpus if g.node == 1 and g.index == 5)
    assert engine_gpu.occupants == ["engine 1 shard 1/4"]
    assert plan.vllm.weights == 14e9 / 4
    short = make_plan(cfg, parse_cluster_spec("1x8x80"), SEVEN_B)
    assert "rollout 8 (2 engines x tp 4) = 16 one-GPU bundles do not fit on 1 node x 8 GPUs" in short.problems[0]
    colocated = make_plan(cfg_of(*COLOCATED, "--vllm.num_engines", "4", "--vllm.tensor_parallel_size", "2"),
                          parse_cluster_spec("1x8x80"), SEVEN_B)  # fmt: skip
    assert (
        colocated.gpus[1].occupants[-1] == "engine 0 shard 1/2"
        and colocated.gpus[7].occupants[-1] == "engine 3 shard 1/2"
    )
    too_many = make_plan(cfg_of(*COLOCATED, "--vllm.tensor_parallel_size", "2"), parse_cluster_spec("1x8x80"), SEVEN_B)
    assert any("8 engines x tp 2 = 16 bundles > 8 policy bundles" in p for p in too_many.problems)


def test_cpu_only_cluster_checks_bundles_against_logical_cpus():
    cfg = cfg_of("--actor.num_gpus_per_node", "2", "--algo.kl.init_kl_coef", "0.1", "--rollout.backend", "hf")
    plan = make_plan(cfg, parse_cluster_spec("1x0x0x3"), None)  # no model needed: memory is not checked
    assert plan.problems == [
        "rollout: needs 1 more bundle of 1 CPU: policy 2 + reference 1 + rollout 1 = 4 bundles x 1 CPU = 4 CPUs do "
        "not fit on 1 node with 3 logical CPUs"
    ]
    assert make_plan(cfg, parse_cluster_spec("1x0x0x4"), None).fits
    assert not make_plan(cfg, parse_cluster_spec("1x0x0x4"), SEVEN_B).memory_checked
    half = cfg_of("--actor.num_gpus_per_node", "2", "--algo.kl.init_kl_coef", "0.1", "--train.cpus_per_worker", "0.5")
    assert make_plan(half, parse_cluster_spec("1x0x0x2"), None).fits
    unknown = make_plan(cfg, parse_cluster_spec("1x0x0"), None)
    assert unknown.fits and any("not checked" in n for n in unknown.notes)
    vllm_on_cpu = make_plan(cfg_of("--rollout.backend", "vllm"), parse_cluster_spec("1x0x0x8"), None)
    assert any("rollout.backend=vllm needs GPUs" in p for p in vllm_on_cpu.problems)


def test_gpu_cluster_with_unknown_model_is_not_called_fitting():
    plan = make_plan(Config(), parse_cluster_spec("1x2x80"), None)
    assert not plan.fits and "model size is unknown" in plan.problems[0]


def test_make_plan_works_on_any_config():
    flags = itertools.product([0, 3], [False, True], [False, True], [1, 2], [0.0, 0.05], ["hf", "vllm"])
    for stage, colocate_all, colocate_ref, tp, kl, backend in flags:
        cfg = cfg_of(
            "--ds.zero_stage", str(stage), "--train.colocate_all", str(colocate_all).lower(),
            "--train.colocate_actor_ref", str(colocate_ref).lower(), "--vllm.tensor_parallel_size", str(tp),
            "--algo.kl.init_kl_coef", str(kl), "--rollout.backend", backend, "--actor.num_gpus_per_node", "4",
            "--vllm.num_engines", "2",
        )  # fmt: skip
        for cluster in ("1x8x24", "2x4x80", "1x0x0x4"):
            plan = make_plan(cfg, parse_cluster_spec(cluster), model_from_size(1.5e9))
            assert all(isinstance(p, str) and "\n" not in p for p in plan.problems)
            text = format_plan(plan)
            assert "verdict: " in text and "policy" in text


def test_format_plan_is_a_readable_table():
    text = format_plan(make_plan(cfg_of(*COLOCATED), parse_cluster_spec("1x8x80"), SEVEN_B))
    assert "cluster: 1 node x 8 GPUs, 80 GB each" in text
    assert "node0:0-7" in text and "policy + reference + engine" in text and "verdict: fits" in text
    refused = format_plan(make_plan(cfg_of(*SEPARATE), parse_cluster_spec("1x8x80"), SEVEN_B))
    assert "problem: reference: needs 1 more GPU bundle" in refused and "1 unplaced" in refused


# --------------------------------------------------------------------------- cluster from Ray (pure part)


def test_cluster_from_ray_nodes():
    head = {"Alive": True, "Resources": {"CPU": 8.0}}
    gpu = {"Alive": True, "Resources": {"CPU": 64.0, "GPU": 8.0, "accelerator_type:H100": 1.0}}
    dead = {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}
    c = cluster_from_ray_nodes([head, gpu, gpu, dead])
    assert (c.nodes, c.total_gpus, c.gpu_memory_gb, c.cpus) == (3, 16, 80.0, 136.0)
    assert c.describe() == "3 nodes with 0+8+8 GPUs"
    a100 = {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 4.0, "accelerator_type:A100": 1.0}}
    c = cluster_from_ray_nodes([a100])
    assert c.gpu_memory_gb == 80.0 and "40 or 80" in c.notes[0]
    unknown = cluster_from_ray_nodes([{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}}])
    assert unknown.gpu_memory_gb == 80.0 and "assumed 80 GB" in unknown.notes[0]
    assert cluster_from_ray_nodes([a100], torch_gpu_memory_gb=42.5).gpu_memory_gb == 42.5
    cpu = cluster_from_ray_nodes([head])
    assert not cpu.has_gpus and cpu.cpus == 8
    # bundles across nodes of different sizes: the GPU-less head gets none
    plan = make_plan(cfg_of(*SEPARATE), cluster_from_ray_nodes([head, gpu, gpu]), SEVEN_B)
    assert plan.fits and all(node != 0 for node, _ in plan.role("policy").slots)


def test_cpus_per_node_are_checked_on_gpu_clusters():
    plan = make_plan(cfg_of(*COLOCATED, "--train.cpus_per_worker", "4"), parse_cluster_spec("1x8x80x16"), SEVEN_B)
    assert any(
        p.startswith("cpus: node0 holds 8 bundles x 4 CPU = 32 CPUs > its 16 logical CPUs") for p in plan.problems
    )


# --------------------------------------------------------------------------- check_plan and the CLI


@pytest.fixture
def no_ray(monkeypatch):
    """Fail if the planner asks Ray (or this machine) for resources."""
    import openrlhf.plan.check as check

    def refuse(*args, **kwargs):
        raise AssertionError("the planner asked Ray for resources although plan.cluster was given")

    monkeypatch.setattr(check, "cluster_from_ray", refuse)
    monkeypatch.setattr(check, "local_cluster", refuse)


def test_check_plan_raises_plan_error_when_enforced(no_ray):
    cfg = cfg_of(*SEPARATE, "--plan.cluster", "1x8x80")
    with pytest.raises(PlanError) as err:
        check_plan(cfg)
    assert "13 one-GPU bundles do not fit on 1 node x 8 GPUs" in str(err.value)
    assert isinstance(err.value, ValueError) and not err.value.plan.fits
    plan = check_plan(cfg_of(*SEPARATE, "--plan.cluster", "1x8x80", "--plan.enforce", "false"))
    assert not plan.fits
    assert check_plan(cfg_of(*COLOCATED, "--plan.cluster", "1x8x80")).fits
    # an explicit cluster wins over plan.cluster; a CPU-only one checks bundles only
    cpu_only = ClusterSpec(nodes=1, gpus_per_node=0, gpu_memory_gb=0, cpus=14)
    assert check_plan(cfg_of(*SEPARATE, "--rollout.backend", "hf"), cpu_only).fits


def test_check_plan_counts_the_checkpoint_when_no_size_is_given(no_ray, tiny_lm_path, tmp_path):
    folder = only_config_json(tiny_lm_path, tmp_path / "lm")
    plan = check_plan(cfg_of("--actor.model_name_or_path", str(folder), "--plan.cluster", "1x2x24"))
    assert plan.fits and plan.model.num_params == count_parameters(folder)
    # a size string keeps the checkpoint's shapes
    sized = check_plan(
        cfg_of("--actor.model_name_or_path", str(folder), "--plan.cluster", "1x2x24", "--plan.model_size", "7B",
               "--plan.enforce", "false")
    )  # fmt: skip
    assert sized.model.num_params == 7e9 and sized.model.hidden_size == 256


def test_cli_plan_refuses_and_accepts_without_starting_ray(no_ray, capsys, monkeypatch):
    import ray

    from openrlhf.cli.train import main

    def refuse_init(*args, **kwargs):
        raise AssertionError("--plan with --plan-cluster started Ray")

    monkeypatch.setattr(ray, "init", refuse_init)  # the suite may already run a Ray: watch for a new start

    args = [a for a in SEPARATE if a not in ("--plan.model_size", "7B")]
    assert main([*args, "--plan", "--plan-cluster", "1x8x80", "--plan-model-size", "7B"]) == 1
    out, err = capsys.readouterr()
    assert "verdict: does not fit" in out
    assert (
        "openrlhf-train: reference: needs 1 more GPU bundle: policy 8 + reference 1 + rollout 4 = 13 one-GPU "
        "bundles do not fit on 1 node x 8 GPUs"
    ) in err.splitlines()
    colocated = [a for a in COLOCATED if a not in ("--plan.model_size", "7B")]
    assert main([*colocated, "--plan", "--plan-cluster=1x8x80", "--plan-model-size=7B"]) == 0
    out, err = capsys.readouterr()
    assert "verdict: fits" in out and "7B parameters" in out and not err
    assert main([*colocated, "--plan", "--plan-cluster", "1x8"]) == 2
    assert "plan.cluster '1x8'" in capsys.readouterr().err


def test_the_pure_part_imports_neither_torch_nor_ray():
    code = (
        "import sys; from openrlhf.plan import make_plan, format_plan, parse_cluster_spec, model_from_size;"
        "from openrlhf.config import Config;"
        "format_plan(make_plan(Config(), parse_cluster_spec('1x8x80'), model_from_size(7e9)));"
        "print('torch' in sys.modules, 'ray' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.strip() == "False False", result.stderr
