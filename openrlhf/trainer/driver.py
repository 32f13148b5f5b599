"""The single controller: one RL training run, from prompts to a trained, exported policy.

One step (DESIGN.md): sample prompts -> generate n per prompt -> score -> reference and old log-probs
-> advantages (openrlhf.algorithms) -> train (epochs over the experience) -> sync weights -> log, and
checkpoint every k steps. Each arrow is one call to a group of Ray actors.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from openrlhf.config import Config, ConfigError, dump_config
from openrlhf.data.sample import Sample
from openrlhf.trainer.async_rollouts import AsyncRollouts, ProducedBatch, overlap_share
from openrlhf.trainer.evaluation import BestModel
from openrlhf.trainer.experience_maker import PromptEncoder, build_experience, sampling_params
from openrlhf.trainer.preflight import absolutize_model_paths, check_async_layout, check_reward_urls_reachable
from openrlhf.trainer.prompt_stream import PromptStream
from openrlhf.trainer.streamed_rollout import generate_and_score
from openrlhf.workers.experience import Experience


class TrainingStopped(RuntimeError):
    """The run stopped early for a reason it names; a checkpoint of the last good step was saved."""


def _nanmean(values) -> float:
    """The mean of the values that are not NaN (a worker or component that reported none); NaN if none are."""
    values = [float(v) for v in values if v == v]
    return sum(values) / len(values) if values else float("nan")


PENDING_ROLLOUTS_FILE = "pending_rollouts.pt"


class RLTrainer:
    def __init__(self, cfg: Config, *, print_summary: bool = True) -> None:
        """``print_summary=False``: write summary.json without printing it (a caller that prints its own)."""
        from openrlhf.algorithms import resolve_algo_preset

        self.print_summary = print_summary
        cfg = cfg.model_copy(deep=True)
        cfg.algo = resolve_algo_preset(cfg.algo)
        absolutize_model_paths(cfg)
        self.cfg = cfg
        self.output_dir = Path(cfg.train.output_dir)
        self.ckpt_root = Path(cfg.ckpt.path) if cfg.ckpt.path else self.output_dir / "ckpt"
        self.step = 0
        self.worker_mode = "ray"  # or "in_driver", resolved when the run starts (fit)
        self.pending: list[ProducedBatch] = []  # generated, untrained batches a checkpoint saved (async mode)
        self.rollouts: AsyncRollouts | None = None  # the producer thread in async mode (train.async_enable)
        self.taken_stream_state: dict | None = None  # async: the prompt position after the last batch taken
        self.train_windows: list[tuple[float, float]] = []  # when the policy computed, for async/overlap
        self.timeline: list[tuple[str, str, float, float]] = []  # the last step's (role, phase, start, end)
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ setup

    @property
    def use_reference(self) -> bool:
        return self.cfg.algo.kl.init_kl_coef > 0

    def _load_data(self) -> tuple[list[Sample], list[Sample]]:
        from openrlhf.data import load_samples

        cfg = self.cfg
        if not cfg.data.train_paths:
            raise ValueError("data.train_paths is empty: give the prompt files (or a VLM-R1 data_config YAML)")
        train = load_samples(cfg.data.train_paths, cfg.data, seed=cfg.train.seed).samples
        heldout = (
            load_samples(cfg.data.eval_paths, cfg.data, seed=cfg.train.seed).samples if cfg.data.eval_paths else []
        )
        return train, heldout

    def _geometry(self, num_prompts: int) -> tuple[int, int]:
        """(RL steps, optimizer steps) of the whole run, for the lr schedule and the progress bar."""
        cfg = self.cfg
        stream_steps = max(1, num_prompts // cfg.train.rollout_batch_size) * cfg.train.num_episodes
        steps = min(cfg.train.max_steps, stream_steps) if cfg.train.max_steps else stream_steps
        rows = cfg.train.rollout_batch_size * cfg.rollout.n_samples_per_prompt
        per_opt = cfg.train.train_batch_size or rows
        return steps, steps * cfg.train.max_epochs * math.ceil(rows / per_opt)

    def required_cpus(self) -> int:
        """Logical CPUs a local cluster must declare so every bundle fits (Ray's CPUs are logical)."""
        cfg = self.cfg
        world = cfg.actor.num_nodes * cfg.actor.num_gpus_per_node
        bundles = world
        if self.use_reference and not (cfg.train.colocate_actor_ref or cfg.train.colocate_all):
            bundles += cfg.ref.num_nodes * cfg.ref.num_gpus_per_node
        if not cfg.train.colocate_all:
            bundles += cfg.vllm.num_engines * cfg.vllm.tensor_parallel_size
        return math.ceil(bundles * cfg.train.cpus_per_worker) + 1

    def _start_workers(self, total_optimizer_steps: int) -> None:
        from openrlhf.rollout.factory import create_rollout_engines, engine_bundle_count, resolve_backend
        from openrlhf.trainer.ray_setup import worker_env
        from openrlhf.trainer.weight_push import WeightPusher, resolve_weight_sync
        from openrlhf.workers.distributed import cluster_gpu_count
        from openrlhf.workers.placement import WorkerGroup, bundle_spec, create_placement_group, ranks_per_node
        from openrlhf.workers.policy_worker import PolicyWorker
        from openrlhf.workers.reference_worker import ReferenceWorker

        cfg = self.cfg
        self.backend = resolve_backend(cfg)
        sync_mode = resolve_weight_sync(cfg, self.backend)  # refuses an impossible combination before any worker
        cfg_dict = cfg.model_dump(mode="json")
        self.placement_groups = []
        if self.worker_mode == "in_driver":
            self._start_workers_in_driver(cfg_dict, total_optimizer_steps)
            self.pusher = WeightPusher(cfg, self.policy, self.engines, self.backend)
            return
        spec = bundle_spec(cfg)
        print(
            f"[train] rollout backend {self.backend}, weight sync {sync_mode}; bundles of {spec.as_bundle()} "
            f"(the Ray cluster has {cluster_gpu_count():g} GPUs)"
        )
        env = worker_env()
        world = cfg.actor.num_nodes * cfg.actor.num_gpus_per_node
        ref_world = (
            world
            if (cfg.train.colocate_actor_ref or cfg.train.colocate_all)
            else (cfg.ref.num_nodes * cfg.ref.num_gpus_per_node)
        )
        num_engines = cfg.vllm.num_engines
        engine_bundles = engine_bundle_count(cfg, self.backend)
        if cfg.train.colocate_all and engine_bundles > world:
            raise ValueError(
                f"train.colocate_all: vllm.num_engines={num_engines} x tensor_parallel_size="
                f"{cfg.vllm.tensor_parallel_size} needs {engine_bundles} bundles; the policy has {world}"
            )

        share = 1 + int(self.use_reference and (cfg.train.colocate_actor_ref or cfg.train.colocate_all))
        share += int(cfg.train.colocate_all and sync_mode != "in_process")  # in process: no engine actors
        policy_pg = create_placement_group(world, spec, name="policy")
        self.placement_groups = [policy_pg]
        self.policy = WorkerGroup(
            PolicyWorker,
            world,
            policy_pg,
            share=share,
            ranks_per_node=ranks_per_node(world, cfg.actor.num_gpus_per_node),
            spec=spec,
            env_vars=env,
            name="policy",
            init_kwargs={"cfg_dict": cfg_dict, "total_optimizer_steps": total_optimizer_steps},
        )
        self.reference = None
        if self.use_reference:
            if share > 1:
                ref_pg = policy_pg
            else:
                ref_pg = create_placement_group(ref_world, spec, name="reference")
                self.placement_groups.append(ref_pg)
            self.reference = WorkerGroup(
                ReferenceWorker,
                ref_world,
                ref_pg,
                share=share,
                ranks_per_node=ranks_per_node(ref_world, cfg.ref.num_gpus_per_node),
                spec=spec,
                env_vars=env,
                name="reference",
                init_kwargs={"cfg_dict": cfg_dict},
            )
        if sync_mode == "in_process":
            self.engines = self.policy.handles[:num_engines]  # the policy ranks generate (PolicyWorker.generate)
        elif cfg.train.colocate_all:
            self.engines = create_rollout_engines(
                cfg, placement_group=policy_pg, bundle_indices=list(range(engine_bundles)), share=share
            )
        else:
            engine_pg = create_placement_group(engine_bundles, spec, name="rollout")
            self.placement_groups.append(engine_pg)
            self.engines = create_rollout_engines(cfg, placement_group=engine_pg)
        self.world = world
        self.pusher = WeightPusher(cfg, self.policy, self.engines, self.backend)

    def _start_workers_in_driver(self, cfg_dict: dict, total_optimizer_steps: int) -> None:
        """One policy rank (and its reference) as objects in this process; the policy is its own engine."""
        from openrlhf.workers.placement import WorkerGroup
        from openrlhf.workers.policy_worker import PolicyWorker
        from openrlhf.workers.reference_worker import ReferenceWorker

        print("[train] workers in the driver's process (train.worker_mode): one policy rank that generates itself")
        self.policy = WorkerGroup.in_driver(
            PolicyWorker,
            name="policy",
            init_kwargs={"cfg_dict": cfg_dict, "total_optimizer_steps": total_optimizer_steps},
        )
        self.reference = None
        if self.use_reference:
            self.reference = WorkerGroup.in_driver(
                ReferenceWorker, name="reference", init_kwargs={"cfg_dict": cfg_dict}
            )
        self.engines = list(self.policy.handles)
        self.world = 1

    # ------------------------------------------------------------------ one step

    def _policy_logprobs(self, group, exp: Experience) -> torch.Tensor:
        shards = exp.shard(len(group))
        return torch.cat(group.call_per_rank("compute_logprobs", [(s,) for s in shards]), dim=0)

    def sync_weights(self) -> None:
        """Policy -> every rollout engine (IPC when colocated, else broadcast or the object store; see
        openrlhf/trainer/weight_push.py), with the hybrid engine's sleep/wake around it."""
        self.pusher.push()

    def train_step(self) -> dict[str, float]:
        """One synchronous step: the next batch (a checkpoint's saved batch first), then train on it."""
        t_step = time.perf_counter()
        produced = self.pending.pop(0) if self.pending else self._produce(self.step, self.step)
        return self._consume(produced, t_step, self.sync_weights)

    def async_step(self) -> dict[str, float]:
        """One asynchronous step: take batch ``step`` from the producer thread (generated up to
        train.max_staleness versions ago, while earlier steps trained), train on it, push the new weights."""
        t_step = time.perf_counter()
        produced, waited = self.rollouts.take(self.step)
        version = self.step + 1
        pushed = []

        def push() -> None:
            self.rollouts.push(version, self.sync_weights)
            pushed.append(True)

        metrics = self._consume(produced, t_step, push)
        if not pushed:  # a step without an update (no signal) still advances the schedule
            self.rollouts.push(version, lambda: None)
        self.taken_stream_state = produced.stream_state
        outputs = produced.rollout.outputs
        metrics["async/staleness"] = float(self.step - produced.policy_version)  # at the batch's start
        metrics["async/partial_share"] = sum(bool(o.weight_switches) for o in outputs) / max(1, len(outputs))
        metrics["async/overlap"] = overlap_share(produced.generation_window, self.train_windows)
        metrics["timing/wait_for_rollout"] = waited
        del self.train_windows[: -2 * self.cfg.train.max_staleness - 2]
        return metrics

    def _produce(self, index: int, policy_version: int) -> ProducedBatch:
        """Batch ``index`` (trained at step index + 1): prompts -> generate, each group scored as it finishes
        (openrlhf/trainer/streamed_rollout.py). The producer thread's work in async mode
        (openrlhf/trainer/async_rollouts.py)."""
        before = self.stream.state()
        samples = self.stream.next_batch()
        try:
            prompts = [self.encoder.encode(s) for s in samples]
            params = sampling_params(self.cfg, seed=self.cfg.train.seed * 100003 + index)
            scored = generate_and_score(
                self.engines,
                prompts,
                params,
                self.reward_source,
                self.encoder,
                on_generated=self.pusher.after_generation,
            )
        except BaseException:
            self.stream.load_state(before)  # a checkpoint saved now resumes with these prompts
            raise
        t0, t1 = scored.generation_window
        timings = {"generation": t1 - t0, "reward": scored.reward_wait, "reward_busy": scored.reward_busy}
        return ProducedBatch(
            index, scored.rollout, policy_version, self.stream.state(), timings, (t0, t1), scored.reward_windows
        )

    def _consume(self, produced: ProducedBatch, t_step: float, push_weights) -> dict[str, float]:
        """Train on one produced batch: experience -> log-probs -> advantages -> train -> ``push_weights()``."""
        from openrlhf.algorithms import (
            compute_advantages,
            dynamic_filter_groups,
            kl_penalty_per_token,
            stop_properly_penalty,
        )

        cfg = self.cfg
        n = cfg.rollout.n_samples_per_prompt
        rollout = produced.rollout
        timings: dict[str, float] = dict(produced.timings)
        self.timeline = [("engines", "generation", *produced.generation_window)]
        self.timeline += [("driver", "reward", *window) for window in produced.reward_windows]
        t_compute = time.perf_counter()
        exp = build_experience(rollout, self.encoder.tokenizer.pad_token_id)
        metrics: dict[str, float] = {}
        truncated = torch.tensor([o.finish_reason == "length" for o in rollout.outputs])
        metrics["response_length/truncated_frac"] = float(truncated.float().mean())
        if cfg.reward.stop_properly_penalty_coef is not None:
            rollout.rewards, penalty_stats = stop_properly_penalty(
                rollout.rewards, truncated, cfg.reward.stop_properly_penalty_coef
            )
            metrics.update(penalty_stats)
        rewards, scores = rollout.rewards, rollout.scores
        keep = torch.ones(exp.batch_size, dtype=torch.bool)
        if cfg.algo.dynamic_filter.enable:
            keep, filter_stats = dynamic_filter_groups(scores, n, cfg.algo.dynamic_filter)
            metrics.update(filter_stats)
        keep = _trim_to_whole_groups(keep, n, self.world)
        metrics["reward/mean"] = float(rewards.mean())
        metrics["reward/std"] = float(rewards.std()) if rewards.numel() > 1 else 0.0
        for name, values in rollout.components.items():
            metrics[f"reward/{name}"] = _nanmean(values)
        for name, value in rollout.extra_logs.items():
            if name not in rollout.components:  # batch means of components are logged above already
                metrics[f"reward_log/{name}"] = float(value)
        lengths = exp.response_mask.sum(dim=1)
        metrics["response_length/mean"] = float(lengths.mean())
        metrics["response_length/max"] = float(lengths.max())
        generated_tokens = float(lengths.sum())

        if not bool(keep.any()):
            metrics["train/skipped_no_signal"] = 1.0
            timings["step"] = time.perf_counter() - t_step
            return self._finish_metrics(metrics, timings, generated_tokens)

        exp = exp.select(keep.nonzero().flatten())
        rewards = rewards[keep]
        t = time.perf_counter()
        on_policy = old_logprobs_from_training(cfg, exp.batch_size, self.use_reference)
        metrics["train/old_logprobs_from_training"] = float(on_policy)
        if not on_policy:
            exp.old_log_probs = self._policy_logprobs(self.policy, exp)
        kl_per_token = None
        if self.reference is not None:
            exp.ref_log_probs = self._policy_logprobs(self.reference, exp)
        if self.reference is not None and not on_policy:  # on-policy, the policy reports the KL as it trains
            kl_per_token = kl_penalty_per_token(exp.old_log_probs, exp.ref_log_probs, exp.response_mask, cfg.algo.kl)
            metrics["kl/mean"] = float(
                ((kl_per_token * exp.response_mask).sum(1) / exp.response_mask.sum(1).clamp(min=1)).mean()
            )
        timings["logprobs"] = time.perf_counter() - t

        kl_coef = self.kl_controller.value if self.reference is not None else 0.0
        exp.advantages, exp.returns, adv_metrics = compute_advantages(
            rewards,
            exp.response_mask,
            cfg.algo,
            n,
            kl_per_token=None if cfg.algo.kl.use_kl_loss or kl_per_token is None else kl_per_token * kl_coef,
        )
        metrics.update(adv_metrics)

        t = time.perf_counter()
        inject = self.step + 1 in self.inject_nonfinite_steps
        results = self.policy.call_per_rank(
            "train_on_experience",
            [(s,) for s in exp.shard(self.world)],
            kl_coef=kl_coef if cfg.algo.kl.use_kl_loss else 0.0,
            inject_nonfinite=inject,
        )
        timings["train"] = time.perf_counter() - t
        self.train_windows.append((t_compute, time.perf_counter()))
        for key in results[0]:
            metrics[f"policy/{key}"] = _nanmean([r.get(key, float("nan")) for r in results])
        if self.reference is not None and "kl/mean" not in metrics and "policy/kl" in metrics:
            metrics["kl/mean"] = metrics["policy/kl"]

        t = time.perf_counter()
        push_weights()
        timings["weight_sync"] = time.perf_counter() - t
        self.timeline += [
            ("policy", "train", *self.train_windows[-1]),
            ("policy", "weight_sync", t, t + timings["weight_sync"]),
        ]
        if self.reference is not None and "kl/mean" in metrics:
            self.kl_controller.update(metrics["kl/mean"], exp.batch_size)
            metrics["kl/coef"] = kl_coef
        timings["step"] = time.perf_counter() - t_step
        return self._finish_metrics(metrics, timings, generated_tokens)

    def _finish_metrics(self, metrics, timings, generated_tokens) -> dict[str, float]:
        for key, value in timings.items():
            metrics[f"timing/{key}"] = value
        if timings.get("generation"):
            metrics["throughput/generated_tokens_per_s"] = generated_tokens / timings["generation"]
        metrics["throughput/tokens_per_s"] = generated_tokens / max(timings["step"], 1e-9)
        return metrics

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, samples: list[Sample]) -> dict[str, float]:
        """Answers to held-out prompts (greedy, or eval.n_samples_per_prompt at eval.temperature), scored by
        the run's reward source (metrics: openrlhf/trainer/evaluation.py); a new best is exported."""
        from openrlhf.trainer.evaluation import eval_metrics, eval_sampling_params

        if not samples:
            return {}
        prompts = [self.encoder.encode(s) for s in samples]
        params = eval_sampling_params(self.cfg, self.cfg.train.seed)  # the same draws at every evaluation
        rollout = generate_and_score(self.engines, prompts, params, self.reward_source, self.encoder).rollout
        result = eval_metrics(rollout)
        if self.best.improved(result, self.step):
            from openrlhf.trainer.checkpoint_io import atomic_directory

            with atomic_directory(self.best.directory) as tmp:
                self.policy.call("export_hf", str(tmp))
                self.best.record(tmp)
        return result

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        from openrlhf.trainer.checkpoint_io import (
            atomic_directory,
            checkpoint_dir,
            rotate_checkpoints,
            save_driver_state,
        )

        final = checkpoint_dir(self.ckpt_root, self.step)
        # Batches generated but not trained yet (async mode: by weights no checkpoint holds) are saved, and the
        # prompt stream's position is the one after the last of them.
        pending = self.rollouts.pending() if self.rollouts is not None else list(self.pending)
        with atomic_directory(final) as tmp:
            self.policy.call("save_checkpoint", str(tmp.parent), tmp.name, {"optimizer_steps": self.step})
            if self.cfg.ckpt.save_hf:
                self.policy.call("export_hf", str(tmp / "hf"))
            if pending:
                torch.save(pending, tmp / PENDING_ROLLOUTS_FILE)
            save_driver_state(
                tmp,
                {
                    "step": self.step,
                    "stream": pending[-1].stream_state if pending else self._stream_state_after_training(),
                    "kl_controller": self.kl_controller.state_dict(),
                    "history": self.history,
                    "best_model": self.best.state(),
                },
            )
        rotate_checkpoints(self.ckpt_root, self.cfg.ckpt.keep)
        return final

    def _stream_state_after_training(self) -> dict:
        """The prompt position after the last trained batch: in async mode not the stream's own, which may be
        past a batch still being generated (partial rollouts push without waiting for it)."""
        if self.rollouts is not None and self.taken_stream_state is not None:
            return self.taken_stream_state
        return self.stream.state()

    def _maybe_resume(self) -> None:
        from openrlhf.trainer.checkpoint_io import latest_checkpoint, load_driver_state

        if not self.cfg.ckpt.load_enable:
            return
        latest = latest_checkpoint(self.ckpt_root)
        if latest is None:
            print(f"[train] ckpt.load_enable: no checkpoint under {self.ckpt_root}, starting fresh")
            return
        state = load_driver_state(latest)
        self.policy.call("load_checkpoint", str(latest.parent), latest.name)
        if (latest / PENDING_ROLLOUTS_FILE).is_file():
            self.pending = torch.load(latest / PENDING_ROLLOUTS_FILE, weights_only=False)
        self.step = int(state["step"])
        self.stream.load_state(state["stream"])
        self.kl_controller.load_state_dict(state["kl_controller"])
        self.history = list(state.get("history", []))
        self.best.load_state(state.get("best_model"))
        self.sync_weights()
        print(f"[train] resumed from {latest} at step {self.step}")

    # ------------------------------------------------------------------ the run

    def fit(self) -> dict[str, Any]:
        from openrlhf.algorithms import make_kl_controller
        from openrlhf.trainer.local_reward_server import open_reward_source
        from openrlhf.trainer.metrics import MetricsLogger, prepare_metrics_for_resume, write_summary, write_timeline
        from openrlhf.trainer.plots import plot_learning_curves
        from openrlhf.trainer.ray_setup import init_ray

        cfg = self.cfg
        self.t_start = time.perf_counter()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "config.yaml").write_text(dump_config(cfg))
        train_samples, heldout = self._load_data()
        total_steps, total_optimizer_steps = self._geometry(len(train_samples))
        self.inject_nonfinite_steps = set(cfg.train.inject_nonfinite_at_steps)
        self.stream = PromptStream(train_samples, cfg.train.rollout_batch_size, cfg.train.seed, cfg.data.shuffle)
        self.kl_controller = make_kl_controller(cfg.algo.kl)
        self.best = BestModel.from_config(cfg, self.output_dir)
        if self.best.key is not None and not heldout:
            raise ConfigError(
                f"ckpt.best_metric_key={cfg.ckpt.best_metric_key!r} picks the best model by evaluation, but there "
                "is no eval data: set data.eval_paths (--eval.dataset) or ckpt.best_metric_key none"
            )
        check_reward_urls_reachable(cfg.reward)
        summary: dict[str, Any] = {}
        with ExitStack() as stack:
            # Start-up in parallel: the tokenizer (and transformers' import) loads in a thread while Ray starts
            # and the workers import and initialise in their own processes.
            pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="prompt-encoder"))
            encoder = pool.submit(PromptEncoder, cfg)
            from openrlhf.plan import check_plan, format_plan
            from openrlhf.rollout.factory import resolve_backend
            from openrlhf.trainer.weight_push import resolve_weight_sync
            from openrlhf.workers.in_driver import resolve_worker_mode

            check_async_layout(cfg)
            self.worker_mode = resolve_worker_mode(cfg, resolve_weight_sync(cfg, resolve_backend(cfg)))
            if self.worker_mode == "ray" and init_ray(num_cpus=self.required_cpus()):
                import ray

                stack.callback(ray.shutdown)  # registered first, so it runs after the workers are gone
            # The placement and memory plan, before any placement group: a run that cannot fit stops here.
            plan = check_plan(cfg, backend=resolve_backend(cfg))
            (self.output_dir / "plan.txt").write_text(format_plan(plan) + "\n")
            self.reward_source = stack.enter_context(open_reward_source(cfg.reward, self.output_dir))
            t_setup = time.perf_counter()
            # Workers, engines and placement groups go away also when the run fails or stops early,
            # so a Ray cluster that outlives this run (tests, `ray job submit`) gets its resources back.
            stack.callback(self._shutdown)
            if self.worker_mode == "in_driver":  # transformers' lazy imports are not safe in two threads at once
                self.encoder = encoder.result()
            self._start_workers(total_optimizer_steps)
            self.encoder = encoder.result()
            self.sync_weights()
            self._maybe_resume()
            summary["setup_seconds"] = time.perf_counter() - t_setup
            before = self.evaluate(heldout) if self.step == 0 else {}
            if before:
                summary["heldout_accuracy_before"] = before["eval/accuracy"]
            if self.step and cfg.logger.jsonl:  # resumed: the log continues, each step once
                prepare_metrics_for_resume(self.output_dir, self.step, self.history)
            logger = stack.enter_context(
                MetricsLogger(self.output_dir, cfg.logger, total_steps, start_step=self.step, append=self.step > 0)
            )
            stop_reason = None
            if cfg.train.async_enable:
                print(
                    f"[train] async: the engines generate up to {cfg.train.max_staleness} step(s) ahead of the "
                    f"policy; importance correction vs the sampler: algo.clip.tis_cap={cfg.algo.clip.tis_cap:g}"
                    + (" (off)" if not cfg.algo.clip.tis_cap else "")
                    + (
                        "; partial rollouts: new weights land in the generation in progress"
                        if cfg.train.partial_rollout_enable
                        else ""
                    )
                )
                self.rollouts = AsyncRollouts(
                    self._produce,
                    first_batch=self.step,
                    total_batches=total_steps,
                    max_staleness=cfg.train.max_staleness,
                    pending=self.pending,
                    partial=cfg.train.partial_rollout_enable,
                )
                self.pending = []
                stack.callback(self._close_rollouts)
            while self.step < total_steps:
                try:
                    metrics = self.train_step() if self.rollouts is None else self.async_step()
                except Exception as exc:
                    if not _is_reward_failure(exc):
                        raise
                    path = self.save_checkpoint()
                    raise TrainingStopped(
                        f"step {self.step + 1}: the reward service failed after its retries ({exc}); "
                        f"saved the last completed step to {path}; resume with --ckpt.load_enable"
                    ) from exc
                self.step += 1
                if cfg.train.eval_steps and self.step % cfg.train.eval_steps == 0 and self.step < total_steps:
                    metrics.update(self.evaluate(heldout))
                self.history.append({"step": self.step, **metrics})
                logger.log(self.step, metrics)
                write_timeline(self.output_dir / "timeline.jsonl", self.step, self.timeline, self.t_start)
                skips = metrics.get("policy/nonfinite_skips_in_a_row", 0.0)
                if skips >= cfg.train.max_nonfinite_skips:
                    stop_reason = (
                        f"step {self.step}: {int(skips)} non-finite updates in a row "
                        f"(train.max_nonfinite_skips={cfg.train.max_nonfinite_skips})"
                    )
                    break
                if cfg.ckpt.interval and self.step % cfg.ckpt.interval == 0:
                    self.save_checkpoint()
            final_ckpt = self.save_checkpoint()
            self._close_rollouts()
            if stop_reason:
                raise TrainingStopped(f"{stop_reason}; checkpoint saved to {final_ckpt}")
            after = self.evaluate(heldout)
            if after:
                summary["heldout_accuracy_after"] = after["eval/accuracy"]
                summary.update({f"final_{k.split('/', 1)[1]}": v for k, v in after.items()})
            export_dir = self.output_dir / "final_model"
            self.policy.call("export_hf", str(export_dir))
            summary.update(
                {
                    "steps": self.step,
                    "final_model": str(export_dir),
                    "checkpoint": str(final_ckpt),
                    "reward_first": self.history[0]["reward/mean"] if self.history else None,
                    "reward_last": self.history[-1]["reward/mean"] if self.history else None,
                    "mean_step_seconds": _nanmean(h.get("timing/step", float("nan")) for h in self.history),
                }
            )
            if self.best.value is not None:
                summary.update(
                    {
                        "best_model": str(self.best.directory),
                        "best_metric": self.best.value,
                        "best_step": self.best.step,
                    }
                )
        if self.history:
            plot_learning_curves(self.output_dir / "metrics.jsonl", self.output_dir / "learning_curves.png")
        write_summary(self.output_dir, summary, print_table=self.print_summary)
        return summary

    def _close_rollouts(self) -> None:
        if self.rollouts is not None:
            self.rollouts.close()
            self.rollouts = None

    def _shutdown(self) -> None:
        """Kill whatever of the workers, engines and placement groups was started (safe to call twice)."""
        for group in (getattr(self, "policy", None), getattr(self, "reference", None)):
            if group is not None:
                group.shutdown()
        if self.worker_mode == "in_driver":
            # The engine was the policy itself, closed above. The process group of one stays: DeepSpeed keeps
            # its groups in module globals, and a later in-driver run in this process reuses both.
            self.engines = []
            return
        import ray
        from ray.util.placement_group import remove_placement_group

        for engine in getattr(self, "engines", []):
            ray.kill(engine, no_restart=True)  # (policy ranks serving as engines: already gone, a no-op)
        self.engines = []
        for pg in getattr(self, "placement_groups", []):
            remove_placement_group(pg)
        self.placement_groups = []


def old_logprobs_from_training(cfg: Config, rows: int, use_reference: bool) -> bool:
    """Whether the old log-probs may be the training forward's own, detached, instead of a separate forward.

    With one epoch and one optimizer step over all ``rows`` the update is exactly on-policy: the weights that
    score log pi_old are the weights the training forward runs with, so ratio = exp(log pi - sg(log pi)) = 1
    in value with the gradient of log pi (as TRL's GRPO does with num_iterations=1). A KL penalty in the
    reward (``algo.kl.use_kl_loss`` false) needs log pi_old before the advantages, so it keeps the forward;
    so does ``train.recompute_old_logprobs``.
    """
    one_step = cfg.train.train_batch_size == 0 or cfg.train.train_batch_size >= rows
    kl_needs_old = use_reference and not cfg.algo.kl.use_kl_loss
    return cfg.train.max_epochs == 1 and one_step and not kl_needs_old and not cfg.train.recompute_old_logprobs


def _is_reward_failure(exc: BaseException) -> bool:
    from openrlhf.trainer.reward_client import RewardError

    return isinstance(exc, RewardError)


def _trim_to_whole_groups(keep: torch.Tensor, n: int, world: int) -> torch.Tensor:
    """Drop kept groups from the end until the kept rows split evenly over the data-parallel ranks."""
    keep = keep.clone()
    groups = keep.view(-1, n).all(dim=1)
    kept = groups.nonzero().flatten().tolist()
    while kept and (len(kept) * n) % world:
        groups[kept.pop()] = False
    return groups.repeat_interleave(n)
