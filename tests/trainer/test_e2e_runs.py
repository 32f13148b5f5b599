"""Whole RL runs on CPU: real Ray actors, real DeepSpeed (ZeRO-2/3), real HF rollout engines, real rewards."""

from __future__ import annotations

import json

from openrlhf_helpers import generate

from openrlhf.models.loading import load_model
from openrlhf.rollout.hf_engine import HFRolloutEngine
from openrlhf.trainer.checkpoint_io import COMPLETE_MARKER
from openrlhf.trainer.driver import RLTrainer
from openrlhf.trainer.experience_maker import sampling_params

from .helpers import SMALL_RECIPES, config_from, read_metrics, run_training, small_run_args, with_reward_func

CORE_METRICS = ("reward/mean", "policy/loss", "response_length/mean", "policy/grad_norm", "timing/step")


def test_grpo_with_local_reward_server_writes_every_artifact(ray_cluster, task, tmp_path):
    out = tmp_path / "run"
    summary = run_training(
        small_run_args(task, out, "--reward.launch_local_server", "true", "--reward.server_config", SMALL_RECIPES)
    )
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for key in CORE_METRICS:
        assert key in rows[0], f"{key} missing from metrics.jsonl: {sorted(rows[0])}"
    assert rows[-1]["policy/optimizer_steps"] == 2.0
    assert "reward/accuracy" in rows[0]  # a component reported by the server's math recipe
    assert (out / "reward_server.log").is_file()

    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["steps"] == summary["steps"] == 2
    assert "heldout_accuracy_before" in on_disk and "heldout_accuracy_after" in on_disk
    assert (out / "learning_curves.png").stat().st_size > 1000
    assert (out / "config.yaml").is_file()

    model = load_model(out / "final_model")
    assert sum(p.numel() for p in model.parameters()) > 0
    ckpt = out / "ckpt" / "global_step2"
    assert (ckpt / COMPLETE_MARKER).is_file()
    assert summary["checkpoint"] == str(ckpt)


class RecordingTrainer(RLTrainer):
    """RLTrainer that records the engines' greedy answers to a few prompts just before it shuts them down."""

    probe_prompts = 4

    def _shutdown(self) -> None:
        if self.res is not None and self.res.engines:
            _, heldout = self._load_data()
            self.probe = [self.encoder.encode(s) for s in heldout[: self.probe_prompts]]
            outputs = generate(self.res.engines, self.probe, sampling_params(self.cfg, 0, greedy=True))
            self.engine_greedy = [list(o.output_token_ids) for o in outputs]
        super()._shutdown()


def _local_greedy(model_dir, prompts, cfg) -> list[list[int]]:
    engine = HFRolloutEngine(str(model_dir), num_threads=1)
    outputs = engine.generate([p.request for p in prompts], sampling_params(cfg, 0, greedy=True))
    return [list(outs[0].output_token_ids) for outs in outputs]


def test_zero3_reinforce_pp_colocated_all_and_weight_sync_reaches_the_engine(ray_cluster, task, tmp_path):
    """ZeRO-3 shards gathered for the sync: after big-lr steps the engine answers like final_model, not the start."""
    out = tmp_path / "run"
    args = small_run_args(
        task,
        out,
        *with_reward_func(task),
        "--ds.zero_stage",
        "3",
        "--algo.name",
        "reinforce_pp",
        "--algo.kl.init_kl_coef",
        "0.01",
        "--train.colocate_all",
        "true",
        "--train.learning_rate",
        "3e-3",
    )
    trainer = RecordingTrainer(config_from(args))
    trainer.fit()
    rows = read_metrics(out)
    assert len(rows) == 2
    assert "kl/mean" in rows[0] and rows[0]["kl/mean"] == rows[0]["kl/mean"]  # the reference workers ran
    assert rows[-1]["policy/optimizer_steps"] == 2.0

    initial = _local_greedy(task["model"], trainer.probe, trainer.cfg)
    final = _local_greedy(out / "final_model", trainer.probe, trainer.cfg)
    assert trainer.engine_greedy == final, "the rollout engine does not generate what the exported policy does"
    assert trainer.engine_greedy != initial, "training steps did not change what the rollout engine generates"


def test_stable_reinforce_colocated_actor_ref_with_broadcast_weight_sync(ray_cluster, task, tmp_path):
    out = tmp_path / "run"
    run_training(
        small_run_args(
            task,
            out,
            *with_reward_func(task),
            "--algo.name",
            "stable_reinforce",
            "--algo.kl.init_kl_coef",
            "0.01",
            "--train.colocate_actor_ref",
            "true",
            "--rollout.weight_sync",
            "broadcast",
        )
    )
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["policy/loss"] == r["policy/loss"] for r in rows)  # finite, not NaN
    assert "kl/mean" in rows[0]
    assert (out / "ckpt" / "global_step2" / COMPLETE_MARKER).is_file()
    assert load_model(out / "final_model") is not None
