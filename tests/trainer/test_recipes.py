"""The R1 projects' headline recipes, 2 training steps each on the tiny models.

Each run loads the recipe's own config (configs/vlm_r1_rec.yaml, r1_reward.yaml, omnirl_mixed.yaml,
r1v_counting.yaml) and keeps its structure: the roles and how they share bundles, the algorithm, the ZeRO stage,
the reward recipe (the recipe's own recipes YAML, served by the real reward server on loopback) and the data format
(the tiny examples in examples/data). Only sizes shrink: the tiny LM/VLM, fewer workers and engines, a few prompts
and samples, a few new tokens, HF engines instead of vLLM, fp32 instead of bf16, one scoring process.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from openrlhf.config_loading import load_config
from openrlhf.trainer.driver import RLTrainer

from .helpers import REPO, config_from, hybrid_recording_trainer_class, read_metrics

CONFIGS = REPO / "configs"
EXAMPLES = REPO / "examples" / "data"


# --------------------------------------------------------------------------- every config in configs/


def _config_files() -> list[Path]:
    return sorted(CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("path", _config_files(), ids=lambda p: p.name)
def test_every_config_validates(path):
    """Training configs validate as the trainer's config tree; reward recipes files as the reward server's."""
    data = yaml.safe_load(path.read_text())
    if "recipes" in data:  # a recipes file of the reward service (remote_rm), not a training config
        from remote_rm.settings import load_config as load_recipes

        recipes = load_recipes(path)
        assert recipes.default_recipe in recipes.recipes
        return
    cfg, _ = load_config(["--config", str(path)])
    if cfg.reward.server_config:
        assert (REPO / cfg.reward.server_config).is_file(), f"{path.name}: reward.server_config not found"


HEADLINE = {"vlm_r1_rec.yaml": "3B", "r1_reward.yaml": "7B", "omnirl_mixed.yaml": "7B", "r1v_counting.yaml": "2B"}


@pytest.mark.parametrize("name", sorted(HEADLINE))
def test_headline_configs_fit_one_node_of_eight(name, capsys):
    """Bundles: policy + reference (unless colocated) + engines x TP <= 8, or the hybrid engine on the policy's 8;
    and the planner (`openrlhf-train --config X --plan --plan-cluster 1x8x80`) says the run fits 8 x 80 GB."""
    from openrlhf.cli.train import main

    cfg, _ = load_config(["--config", str(CONFIGS / name)])
    assert cfg.plan.model_size == HEADLINE[name]
    assert cfg.rollout.backend == "vllm" and cfg.ds.bf16 and cfg.ds.gradient_checkpointing
    assert cfg.rollout.n_samples_per_prompt == 8 and cfg.train.learning_rate == 1e-6
    policy = cfg.actor.num_nodes * cfg.actor.num_gpus_per_node
    engines = cfg.vllm.num_engines * cfg.vllm.tensor_parallel_size
    if cfg.train.colocate_all:
        assert engines <= policy <= 8
        assert cfg.vllm.enable_sleep and cfg.ds.enable_sleep
    else:
        reference = 0
        if cfg.algo.kl.init_kl_coef > 0 and not cfg.train.colocate_actor_ref:
            reference = cfg.ref.num_nodes * cfg.ref.num_gpus_per_node
        assert policy + reference + engines <= 8, (policy, reference, engines)
    assert main(["--config", str(CONFIGS / name), "--plan", "--plan-cluster", "1x8x80"]) == 0, capsys.readouterr()


# --------------------------------------------------------------------------- the 2-step runs


def _test_recipes(name: str, out_dir: Path, judge_url: str | None = None) -> Path:
    """The recipe's own recipes YAML with one scoring process, and the judge at ``judge_url``, asked for every
    sample: an untrained model's answers are wrong, so the judge would otherwise never be called (the reward is the
    same either way: accuracy 0 zeroes the consistency term)."""
    config = yaml.safe_load((CONFIGS / name).read_text())
    config.setdefault("pool", {}).update(workers=1, math_workers=1)
    if judge_url is not None:
        config["judge"].update(base_url=judge_url, model="", timeout_s=5, max_retries=0, only_when_correct=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"test_{name}"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _shrunk(config: str, model: Path, out: Path, data: Path, recipes: Path, *extra: str) -> list[str]:
    """The recipe's config with only the sizes shrunk (later overrides win)."""
    return [
        "--config", str(CONFIGS / config),
        "--actor.model_name_or_path", str(model),
        "--data.train_paths", f"[{data}]",
        "--train.output_dir", str(out),
        "--train.max_steps", "2",
        "--train.rollout_batch_size", "2",
        "--train.train_batch_size", "0",
        "--train.micro_train_batch_size", "4",
        "--train.micro_rollout_batch_size", "8",
        "--train.learning_rate", "1e-4",
        "--rollout.n_samples_per_prompt", "4",
        "--rollout.max_new_tokens", "12",
        "--rollout.backend", "hf",
        "--ds.bf16", "false",
        "--data.max_pixels", "3136",  # the examples' 56 x 56 images: 4 image tokens each
        "--reward.launch_local_server", "true",
        "--reward.server_config", str(recipes),
        "--plan.model_size", "''",  # counted from the tiny checkpoint
        "--ckpt.interval", "0",
        "--logger.progress_bar", "false",
        *extra,
    ]  # fmt: skip


def _assert_two_steps(out: Path, components: tuple[str, ...]) -> list[dict]:
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert row["policy/loss"] == row["policy/loss"], row  # finite, not NaN
        for name in components:
            assert f"reward/{name}" in row, f"reward/{name} missing at step {row['step']}: {sorted(row)}"
    assert rows[-1]["policy/optimizer_steps"] >= 2.0
    assert (out / "final_model").is_dir()
    return rows


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fake_judge():
    """A real OpenAI-protocol server on loopback standing in for R1-Reward's consistency judge."""
    fake = _load_module(REPO / "tests" / "remote_rm" / "rm_fake_openai.py", "recipes_fake_openai")
    with fake.FakeOpenAIServer(slow_s=1.0) as server:
        yield server


def test_vlm_r1_rec_grpo_separate_reference_and_engines(ray_cluster, tiny_vlm_path, tmp_path):
    """VLM-R1 REC: GRPO with the KL loss; policy (ZeRO-2), reference and engine each on their own bundles;
    VLM-R1 jsonl rows (REC and others) scored by the rec recipe's format + IoU."""
    out = tmp_path / "run"
    recipes = _test_recipes("reward_recipes_vlm_r1_rec.yaml", tmp_path)
    cfg = config_from(
        _shrunk(
            "vlm_r1_rec.yaml", tiny_vlm_path, out, EXAMPLES / "vlm_r1_rec.jsonl", recipes,
            "--data.image_roots", f"[{EXAMPLES / 'images'}]",
            "--data.shuffle", "false",  # rows 1-2 (REC, mcq), then 3-4 (no method = REC, counting)
            "--actor.num_gpus_per_node", "1",
            "--ref.num_gpus_per_node", "1",
            "--vllm.num_engines", "1",
        )
    )  # fmt: skip
    assert cfg.algo.name == "grpo" and cfg.algo.kl.init_kl_coef > 0 and cfg.ds.zero_stage == 2
    assert not cfg.train.colocate_all and not cfg.train.colocate_actor_ref
    trainer = RLTrainer(cfg)
    trainer.fit()
    rows = _assert_two_steps(out, ("format", "iou", "accuracy"))
    assert all("kl/mean" in r for r in rows)  # the reference workers ran
    assert trainer.res.pusher.describe()["mode"] == "object_store"  # engines on their own bundles, HF backend
    assert len(trainer.res.placement_groups) == 0  # released at the end (policy, reference, rollout groups)


def test_r1_reward_stable_reinforce_hybrid_engine_with_consistency_judge(
    ray_cluster, tiny_vlm_path, tmp_path, fake_judge
):
    """R1-Reward: StableReinforce, ZeRO-3, everything colocated (policy, reference, engine) with both sides
    sleeping, weights shared by IPC; R1-Reward rows scored by format + preference accuracy + judge consistency."""
    out = tmp_path / "run"
    recipes = _test_recipes("reward_recipes_r1_reward.yaml", tmp_path, judge_url=fake_judge.base_url)
    cfg = config_from(
        _shrunk(
            "r1_reward.yaml", tiny_vlm_path, out, EXAMPLES / "r1_reward.jsonl", recipes,
            "--train.num_episodes", "2",  # the example has 2 rows: one step per episode
            "--rollout.max_new_tokens", "8",
            "--actor.num_gpus_per_node", "2",
            "--vllm.num_engines", "1",
        )
    )  # fmt: skip
    assert cfg.algo.name == "stable_reinforce" and cfg.algo.kl.init_kl_coef > 0 and cfg.ds.zero_stage == 3
    assert cfg.train.colocate_all and cfg.vllm.enable_sleep and cfg.ds.enable_sleep
    trainer = hybrid_recording_trainer_class()(cfg)
    trainer.fit()
    rows = _assert_two_steps(out, ("format", "accuracy", "consistency"))
    assert rows[-1]["policy/optimizer_steps"] > rows[0]["policy/optimizer_steps"] > 0
    assert all("kl/mean" in r for r in rows)  # the colocated reference ran
    for row in rows:  # the fake judge was asked about every sample over HTTP and said "consistent"
        assert row["reward_log/judge_calls"] == 8.0 and row["reward_log/judge_failures"] == 0.0, row
        assert row["reward/consistency"] == 1.0
    assert trainer.push_mode == {"mode": "ipc", "engines_sleep": True, "policy_sleeps": True}
    for state in trainer.engine_memory:
        assert state["sleeps"] >= 2 and state["wakes"] >= 2 and not state["asleep"]
    for state in trainer.policy_memory:
        assert state["sleeps"] >= 2 and state["wakes"] >= 2
    logged = json.loads((out / "summary.json").read_text())
    assert logged["steps"] == 2


def test_omnirl_mixed_text_and_image_rows_with_generative_reward(ray_cluster, tiny_vlm_path, tmp_path):
    """OmniRL: GRPO without KL (no reference), ZeRO-3 policy and an engine on its own bundle; text-only and image
    rows of one OmniRL JSON list, every row scored by format + BLEU + ROUGE + METEOR."""
    out = tmp_path / "run"
    recipes = _test_recipes("reward_recipes_omnirl_mixed.yaml", tmp_path)
    cfg = config_from(
        _shrunk(
            "omnirl_mixed.yaml", tiny_vlm_path, out, EXAMPLES / "omnirl_mixed.json", recipes,
            "--actor.num_gpus_per_node", "1",
            "--vllm.num_engines", "1",
            "--vllm.tensor_parallel_size", "1",
        )
    )  # fmt: skip
    assert cfg.algo.name == "grpo" and cfg.algo.kl.init_kl_coef == 0 and cfg.ds.zero_stage == 3
    trainer = RLTrainer(cfg)
    trainer.fit()
    rows = _assert_two_steps(out, ("format", "bleu", "rouge", "meteor", "accuracy"))
    assert all("kl/mean" not in r for r in rows) and trainer.res.reference is None


def test_r1v_counting_grpo_reference_colocated_with_policy(ray_cluster, tiny_vlm_path, tmp_path):
    """R1-V counting: GRPO with the KL loss, reference on the policy's bundles (ZeRO-2), engine on its own; R1-V
    rows (problem / "<answer> N </answer>" / image, no task) scored by the default counting recipe."""
    out = tmp_path / "run"
    data = tmp_path / "clevr_counting.json"
    images = EXAMPLES / "images"
    data.write_text(
        json.dumps(
            [
                {"problem": "How many items are there in the image?", "solution": f"<answer> {n} </answer>",
                 "image": str(images / name)}
                for name, n in [("three_shapes.png", 3), ("two_shapes.png", 2), ("red_circle.png", 1),
                                ("blue_square.png", 1)]
            ]
        )
    )  # fmt: skip
    recipes = _test_recipes("reward_recipes_r1v_counting.yaml", tmp_path)
    cfg = config_from(
        _shrunk(
            "r1v_counting.yaml", tiny_vlm_path, out, data, recipes,
            "--actor.num_gpus_per_node", "1",
            "--vllm.num_engines", "1",
        )
    )  # fmt: skip
    assert cfg.algo.name == "grpo" and cfg.algo.kl.init_kl_coef > 0 and cfg.train.colocate_actor_ref
    trainer = RLTrainer(cfg)
    trainer.fit()
    rows = _assert_two_steps(out, ("format", "accuracy"))
    assert all("kl/mean" in r for r in rows)
