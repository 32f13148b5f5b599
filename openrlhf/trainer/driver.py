"""The single controller: one RL training run, from prompts to a trained, exported policy.

One step: sample prompts -> generate n per prompt, each group scored as it finishes -> reference and old
log-probs -> advantages (openrlhf.algorithms) -> train (epochs over the experience) -> push weights to the
engines -> log, and checkpoint every k steps. Each arrow is one call to a group of workers.

Where things are: the run's layout (backend, weight sync, worker mode, who shares which bundle) is resolved
once by openrlhf/trainer/ray_setup.py:open_cluster; the workers and engines it places live in
openrlhf/trainer/run_resources.py; the phases of one step on a batch in openrlhf/trainer/step_phases.py.
This file holds the loop: :meth:`RLTrainer.fit` (set-up, steps, finish), one step (:meth:`train_step`,
:meth:`async_step`), evaluation and checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from openrlhf.config import Config, ConfigError, dump_config
from openrlhf.data.sample import Sample
from openrlhf.rollout.prompt_encoder import PromptEncoder
from openrlhf.trainer.async_rollouts import AsyncRollouts, ProducedBatch, overlap_share
from openrlhf.trainer.checkpoint_writer import PENDING_ROLLOUTS_FILE, CheckpointWriter
from openrlhf.trainer.evaluation import BestModel
from openrlhf.trainer.experience_maker import build_experience, sampling_params
from openrlhf.trainer.preflight import absolutize_model_paths, check_reward_urls_reachable
from openrlhf.trainer.prompt_stream import PromptStream
from openrlhf.trainer.reward_client import replica_metrics
from openrlhf.trainer.run_resources import RunResources
from openrlhf.trainer.step_phases import (
    fill_log_probs,
    finish_metrics,
    nanmean,
    shape_rewards,
    step_advantages,
)
from openrlhf.trainer.streamed_rollout import generate_and_score
from openrlhf.trainer.supervisor import (
    LaunchedServerLost,
    RunFault,
    RunSupervisor,
    identify_fault,
    resume_command,
)


class TrainingStopped(RuntimeError):
    """The run stopped early for a reason it names; a checkpoint of the last good step was saved."""


# A test-only seam: OPENRLHF_FAULT_INJECTION="nonfinite_at_steps=2,4,5" makes the policy's loss non-finite at
# those steps, so the suite can check the NaN guard on a real run. Not a setting: nothing else reads it.
FAULT_INJECTION_ENV = "OPENRLHF_FAULT_INJECTION"


def injected_nonfinite_steps() -> set[int]:
    spec = os.environ.get(FAULT_INJECTION_ENV, "")
    key, _, steps = spec.partition("=")
    if key.strip() != "nonfinite_at_steps":
        return set()
    return {int(s) for s in steps.split(",") if s.strip()}


class RLTrainer:
    def __init__(self, cfg: Config, *, print_summary: bool = True) -> None:
        """``print_summary=False``: write summary.json without printing it (a caller that prints its own)."""
        from openrlhf.algorithms import make_kl_controller, resolve_algo_preset

        self.print_summary = print_summary
        cfg = cfg.model_copy(deep=True)
        cfg.algo = resolve_algo_preset(cfg.algo)
        absolutize_model_paths(cfg)
        self.cfg = cfg
        self.output_dir = Path(cfg.train.output_dir)
        self.ckpt_root = Path(cfg.ckpt.path) if cfg.ckpt.path else self.output_dir / "ckpt"
        self.ckpt_writer = CheckpointWriter(self.ckpt_root, cfg.ckpt.keep, cfg.ckpt.save_hf)
        # Training state (what a checkpoint saves):
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.kl_controller = make_kl_controller(cfg.algo.kl)
        self.best = BestModel.from_config(cfg, self.output_dir)
        self.stream: PromptStream | None = None  # the prompt order, built when the data loads (fit)
        self.pending: list[ProducedBatch] = []  # generated, untrained batches a checkpoint saved (async mode)
        self.taken_stream_state: dict | None = None  # async: the prompt position after the last batch taken
        # What the run holds while it trains (fit opens and closes them):
        self.res: RunResources | None = None  # worker groups, engines, placement groups, weight pusher
        self.encoder: PromptEncoder | None = None
        self.reward_source = None
        self.agent = None  # train.agent_func_path's AgentExecutor
        self.rollouts: AsyncRollouts | None = None  # the producer thread in async mode (train.async_enable)
        # What the last steps did, for metrics:
        self.train_windows: list[tuple[float, float]] = []  # when the policy computed, for async/overlap
        self.timeline: list[tuple[str, str, float, float]] = []  # the last step's (role, phase, start, end)
        self.nonfinite_steps = injected_nonfinite_steps()
        self.supervisor = RunSupervisor(cfg.train.max_restarts, cfg.train.call_timeout_s_min)
        self.total_optimizer_steps = 0

    @property
    def use_reference(self) -> bool:
        return self.cfg.algo.kl.init_kl_coef > 0

    def _load_data(self) -> tuple[list[Sample], list[Sample]]:
        from openrlhf.data import load_samples

        cfg = self.cfg
        if not cfg.data.train_paths:
            raise ConfigError("data.train_paths is empty: give the prompt files (or a VLM-R1 data_config YAML)")
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

    # ------------------------------------------------------------------ one step

    def sync_weights(self) -> None:
        """Policy -> every rollout engine (IPC when colocated, else broadcast or the object store; see
        openrlhf/trainer/weight_push.py), with the hybrid engine's sleep/wake around it."""
        self.res.pusher.push()

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
            scored = self._generate(prompts, params, on_generated=self.res.pusher.after_generation)
        except BaseException:
            self.stream.load_state(before)  # a checkpoint saved now resumes with these prompts
            raise
        t0, t1 = scored.generation_window
        timings = {"generation": t1 - t0, "reward": scored.reward_wait, "reward_busy": scored.reward_busy}
        return ProducedBatch(
            index, scored.rollout, policy_version, self.stream.state(), timings, (t0, t1), scored.reward_windows
        )

    def _generate(self, prompts: list, params, on_generated=None):
        """n responses per prompt, scored by the reward source; or n multi-turn episodes per prompt
        (openrlhf/trainer/agent_episodes.py): of the agent file (train.agent_func_path), rewarded by its
        environment, or with the built-in tools (rollout.tools), scored by the reward source."""
        if self.agent is not None:
            from openrlhf.trainer.agent_episodes import generate_episodes

            return generate_episodes(
                self.res.engines,
                prompts,
                params,
                self.agent,
                self.encoder,
                reward_source=self.reward_source,
                on_generated=on_generated,
            )
        return generate_and_score(
            self.res.engines, prompts, params, self.reward_source, self.encoder, on_generated=on_generated
        )

    def _consume(self, produced: ProducedBatch, t_step: float, push_weights) -> dict[str, float]:
        """Train on one produced batch: rewards shaped -> log-probs -> advantages -> train -> ``push_weights()``
        (the phases: openrlhf/trainer/step_phases.py)."""
        cfg, res = self.cfg, self.res
        timings: dict[str, float] = dict(produced.timings)
        self.timeline = [("engines", "generation", *produced.generation_window)]
        self.timeline += [("driver", "reward", *window) for window in produced.reward_windows]
        t_compute = time.perf_counter()
        exp = build_experience(produced.rollout, self.encoder.tokenizer.pad_token_id)
        shaped = shape_rewards(produced.rollout, exp, cfg, res.layout.policy_ranks)
        metrics = shaped.metrics
        metrics.update(replica_metrics(self.reward_source))
        if not bool(shaped.keep.any()):
            metrics["train/skipped_no_signal"] = 1.0
            timings["step"] = time.perf_counter() - t_step
            return finish_metrics(metrics, timings, shaped.generated_tokens)

        exp = exp.select(shaped.keep.nonzero().flatten())
        t = time.perf_counter()
        kl_per_token, logprob_metrics = fill_log_probs(exp, res.policy, res.reference, cfg)
        metrics.update(logprob_metrics)
        timings["logprobs"] = time.perf_counter() - t
        kl_coef = self.kl_controller.value if res.reference is not None else 0.0
        metrics.update(step_advantages(exp, shaped.rewards[shaped.keep], cfg, kl_per_token, kl_coef))

        t = time.perf_counter()
        results = res.policy.call_per_rank(
            "train_on_experience",
            [(s,) for s in exp.shard(res.layout.policy_ranks)],
            kl_coef=kl_coef if cfg.algo.kl.use_kl_loss else 0.0,
            inject_nonfinite=self.step + 1 in self.nonfinite_steps,
        )
        timings["train"] = time.perf_counter() - t
        self.train_windows.append((t_compute, time.perf_counter()))
        for key in results[0]:
            metrics[f"policy/{key}"] = nanmean([r.get(key, float("nan")) for r in results])
        if res.reference is not None and "kl/mean" not in metrics and "policy/kl" in metrics:
            metrics["kl/mean"] = metrics["policy/kl"]  # on-policy: the training forward's KL, same definition

        t = time.perf_counter()
        push_weights()
        timings["weight_sync"] = time.perf_counter() - t
        self.timeline += [
            ("policy", "train", *self.train_windows[-1]),
            ("policy", "weight_sync", t, t + timings["weight_sync"]),
        ]
        if res.reference is not None and "kl/mean" in metrics:
            self.kl_controller.update(metrics["kl/mean"], exp.batch_size)
            metrics["kl/coef"] = kl_coef
        timings["step"] = time.perf_counter() - t_step
        return finish_metrics(metrics, timings, shaped.generated_tokens)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, samples: list[Sample]) -> dict[str, float]:
        """Answers to held-out prompts (greedy, or eval.n_samples_per_prompt at eval.temperature), scored by
        the run's reward source (metrics: openrlhf/trainer/evaluation.py); a new best is exported."""
        from openrlhf.trainer.evaluation import eval_metrics, eval_sampling_params

        if not samples:
            return {}
        prompts = [self.encoder.encode(s) for s in samples]
        params = eval_sampling_params(self.cfg, self.cfg.train.seed)  # the same draws at every evaluation
        rollout = self._generate(prompts, params).rollout
        result = eval_metrics(rollout)
        if self.best.improved(result, self.step):
            from openrlhf.trainer.checkpoint_io import atomic_directory

            with atomic_directory(self.best.directory) as tmp:
                self.res.policy.call("export_hf", str(tmp))
                self.best.record(tmp)
        return result

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, background: bool = False) -> Path:
        """Checkpoint the current step (openrlhf/trainer/checkpoint_writer.py); ``background``: the workers
        write while the run goes on (ckpt.async_save), complete when the writer's ``wait()`` returns."""
        # Batches generated but not trained yet (async mode: by weights no checkpoint holds) are saved, and the
        # prompt stream's position is the one after the last of them.
        pending = self.rollouts.pending() if self.rollouts is not None else list(self.pending)
        state = {
            "step": self.step,
            "stream": pending[-1].stream_state if pending else self._stream_state_after_training(),
            "kl_controller": self.kl_controller.state_dict(),
            "history": [dict(row) for row in self.history],  # rows of numbers: a background write sees them as now
            "best_model": self.best.state(),
        }
        return self.ckpt_writer.save(self.res.policy, self.step, state, pending, background=background)

    def _stream_state_after_training(self) -> dict:
        """The prompt position after the last trained batch: in async mode not the stream's own, which may be
        past a batch still being generated (partial rollouts push without waiting for it)."""
        if self.rollouts is not None and self.taken_stream_state is not None:
            return self.taken_stream_state
        return self.stream.state()

    def _maybe_resume(self) -> None:
        from openrlhf.trainer.checkpoint_io import latest_checkpoint

        if not self.cfg.ckpt.load_enable:
            return
        latest = latest_checkpoint(self.ckpt_root)
        if latest is None:
            print(f"[train] ckpt.load_enable: no checkpoint under {self.ckpt_root}, starting fresh")
            return
        self._load_checkpoint(latest)
        self.sync_weights()
        print(f"[train] resumed from {latest} at step {self.step}")

    def _load_checkpoint(self, path: Path) -> None:
        """The training state of checkpoint ``path``: policy (and optimizer), prompt position, KL controller,
        history, best model, and the generated batches it saved."""
        from openrlhf.trainer.checkpoint_io import load_driver_state

        state = load_driver_state(path)
        self.res.policy.call("load_checkpoint", str(path.parent), path.name)
        self.pending = []
        if (path / PENDING_ROLLOUTS_FILE).is_file():
            self.pending = torch.load(path / PENDING_ROLLOUTS_FILE, weights_only=False)
        self.step = int(state["step"])
        self.stream.load_state(state["stream"])
        self.kl_controller.load_state_dict(state["kl_controller"])
        self.history = list(state.get("history", []))
        self.best.load_state(state.get("best_model"))

    def _fresh_state(self) -> None:
        """The training state of step 0 (a lost part before the first checkpoint: the run starts over)."""
        from openrlhf.algorithms import make_kl_controller

        self.step, self.history, self.pending, self.taken_stream_state = 0, [], [], None
        self.stream.load_state(self.stream_start)
        self.kl_controller = make_kl_controller(self.cfg.algo.kl)
        self.best = BestModel.from_config(self.cfg, self.output_dir)

    # ------------------------------------------------------------------ faults

    def _recover(self, fault: RunFault, logger, stack: ExitStack) -> None:
        """A part of the run was lost: tear the worker groups down, place them again on what the cluster has
        now, go on from the last checkpoint (pending batches included). Past train.max_restarts, or when the
        cluster cannot hold the run any more, stop with one line and the resume command."""
        from openrlhf.trainer.checkpoint_io import latest_checkpoint
        from openrlhf.workers.placement import PlacementError

        print(f"[train] {fault.line()}")
        self._close_rollouts()
        with contextlib.suppress(Exception):  # a write in flight completes, or fails with the lost part
            self.ckpt_writer.wait()
        self.res.close()
        latest = latest_checkpoint(self.ckpt_root)
        kept = f"the last checkpoint is {latest}" if latest else "no checkpoint was saved yet"
        if not self.supervisor.admit(fault):
            raise TrainingStopped(
                f"{fault.line()}; that is {self.supervisor.restarts} lost part(s), past train.max_restarts="
                f"{self.cfg.train.max_restarts}; {kept}; resume with: {resume_command()}"
            )
        lost_at = self.step
        if fault.kind == "reward":
            server = self.reward_source.launched_server
            server.restart()
            self.reward_source.urls = [server.url]
            print(f"[train] the reward server answers again at {server.url}")
        print(f"[train] restart {self.supervisor.restarts} of {self.cfg.train.max_restarts}: placing the workers again")
        try:
            self.res = RunResources(self.cfg, self.res.layout).start(self.total_optimizer_steps)
        except PlacementError as exc:
            raise TrainingStopped(
                f"{fault.line()}; the cluster cannot hold the run any more ({exc}); {kept}; "
                f"resume with: {resume_command()}"
            ) from exc
        if latest is not None:
            self._load_checkpoint(latest)
        else:
            self._fresh_state()
        self.sync_weights()
        fault.steps_redone = lost_at - self.step
        logger.rewind(self.step, self.history)
        print(f"[train] going on from step {self.step} ({kept}; {fault.steps_redone} step(s) to do again)")
        if self.cfg.train.async_enable:
            self._start_rollouts(stack, logger.total_steps)

    # ------------------------------------------------------------------ the run

    def fit(self) -> dict[str, Any]:
        """Set up, train ``total_steps`` steps, evaluate and export; summary.json and learning_curves.png."""
        from openrlhf.trainer.metrics import write_summary
        from openrlhf.trainer.plots import plot_learning_curves

        self.t_start = time.perf_counter()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "config.yaml").write_text(dump_config(self.cfg))
        train_samples, heldout = self._load_data()
        total_steps, total_optimizer_steps = self._geometry(len(train_samples))
        self.stream = PromptStream(
            train_samples, self.cfg.train.rollout_batch_size, self.cfg.train.seed, self.cfg.data.shuffle
        )
        self.stream_start = self.stream.state()
        check_reward_urls_reachable(self.cfg.reward)
        summary: dict[str, Any] = {}
        with ExitStack() as stack:
            self._open(stack, total_optimizer_steps, summary)
            before = self.evaluate(heldout) if self.step == 0 else {}
            if before:
                summary["heldout_accuracy_before"] = before["eval/accuracy"]
                if "eval/tool_call_rate" in before:
                    summary["heldout_tool_call_rate_before"] = before["eval/tool_call_rate"]
            final_ckpt = self._train(stack, total_steps, heldout)
            summary.update(self._finish(heldout, final_ckpt))
        if self.history:
            plot_learning_curves(self.output_dir / "metrics.jsonl", self.output_dir / "learning_curves.png")
        write_summary(self.output_dir, summary, print_table=self.print_summary)
        return summary

    def _open(self, stack: ExitStack, total_optimizer_steps: int, summary: dict[str, Any]) -> None:
        """Cluster, layout, plan, reward source, workers and engines, in that order, each closed by ``stack``;
        then the first weight push and the resume from a checkpoint."""
        from openrlhf.plan import check_plan, format_plan
        from openrlhf.trainer.local_reward_server import open_reward_source
        from openrlhf.trainer.ray_setup import open_cluster

        cfg = self.cfg
        self.total_optimizer_steps = total_optimizer_steps
        # Start-up in parallel: the tokenizer (and transformers' import) loads in a thread while Ray starts
        # and the workers import and initialise in their own processes.
        pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="prompt-encoder"))
        encoder = pool.submit(PromptEncoder, cfg)
        self.agent = _open_agent(cfg)  # a bad agent file stops the run before Ray starts
        layout, started_ray = open_cluster(cfg)
        if started_ray:
            import ray

            stack.callback(ray.shutdown)  # registered first, so it runs after the workers are gone
        # The placement and memory plan, before any placement group: a run that cannot fit stops here.
        plan = check_plan(cfg, layout=layout)
        (self.output_dir / "plan.txt").write_text(format_plan(plan) + "\n")
        if not cfg.train.agent_func_path:  # else the agent's environment rewards its episodes
            self.reward_source = stack.enter_context(open_reward_source(cfg.reward, self.output_dir))
        t_setup = time.perf_counter()
        self.res = RunResources(cfg, layout)
        # Workers, engines and placement groups go away also when the run fails or stops early,
        # so a Ray cluster that outlives this run (tests, `ray job submit`) gets its resources back.
        stack.callback(self._shutdown)
        if layout.worker_mode == "in_driver":  # transformers' lazy imports are not safe in two threads at once
            self.encoder = encoder.result()
        self.res.start(total_optimizer_steps)
        self.encoder = encoder.result()
        self.sync_weights()
        self._maybe_resume()
        summary["setup_seconds"] = time.perf_counter() - t_setup

    def _train(self, stack: ExitStack, total_steps: int, heldout: list[Sample]) -> Path:
        """Steps until ``total_steps`` (or a stop), logged and checkpointed; returns the final checkpoint."""
        from openrlhf.trainer.metrics import MetricsLogger, prepare_metrics_for_resume, write_timeline

        cfg = self.cfg
        if self.step and cfg.logger.jsonl:  # resumed: the log continues, each step once
            prepare_metrics_for_resume(self.output_dir, self.step, self.history)
        logger = stack.enter_context(
            MetricsLogger(self.output_dir, cfg.logger, total_steps, start_step=self.step, append=self.step > 0)
        )
        if cfg.train.async_enable:
            self._start_rollouts(stack, total_steps)
        stop_reason = None
        self.supervisor.arm()
        stack.callback(self.supervisor.disarm)
        while self.step < total_steps and stop_reason is None:
            try:
                metrics = self._guarded_step()
                metrics.update(self.supervisor.step_done(metrics.get("timing/step", 0.0)))
                self.step += 1
                if cfg.train.eval_steps and self.step % cfg.train.eval_steps == 0 and self.step < total_steps:
                    metrics.update(self.evaluate(heldout))
                self.history.append({"step": self.step, **metrics})
                stop_reason = self._nonfinite_stop(metrics)
                if stop_reason is None and cfg.ckpt.interval and self.step % cfg.ckpt.interval == 0:
                    t = time.perf_counter()
                    self.save_checkpoint(background=cfg.ckpt.async_save)
                    metrics["timing/checkpoint"] = time.perf_counter() - t  # what the loop waited for it
                logger.log(self.step, metrics)
                write_timeline(self.output_dir / "timeline.jsonl", self.step, self.timeline, self.t_start)
            except Exception as exc:
                fault = identify_fault(exc, self.res, self.step)
                if fault is None:
                    raise
                self._recover(fault, logger, stack)
        final_ckpt = self.save_checkpoint()  # waits for a background write first, then writes in the foreground
        self._close_rollouts()
        if stop_reason:
            raise TrainingStopped(f"{stop_reason}; checkpoint saved to {final_ckpt}")
        return final_ckpt

    def _start_rollouts(self, stack: ExitStack, total_steps: int) -> None:
        """Async mode: the producer thread that generates up to train.max_staleness batches ahead."""
        cfg = self.cfg
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

    def _guarded_step(self) -> dict[str, float]:
        """One step; a reward service that failed past its retries stops the run with a checkpoint (the server
        the run launched itself, when it died, is a lost part: restarted, see :meth:`_recover`)."""
        from openrlhf.trainer.reward_client import RewardError

        try:
            return self.train_step() if self.rollouts is None else self.async_step()
        except RewardError as exc:
            server = getattr(self.reward_source, "launched_server", None)
            if server is not None and not server.is_running():
                raise LaunchedServerLost(f"its process ended ({exc})") from exc
            path = self.save_checkpoint()
            raise TrainingStopped(
                f"step {self.step + 1}: the reward service failed after its retries ({exc}); "
                f"saved the last completed step to {path}; resume with --ckpt.load_enable"
            ) from exc

    def _nonfinite_stop(self, metrics: dict[str, float]) -> str | None:
        skips = metrics.get("policy/nonfinite_skips_in_a_row", 0.0)
        limit = self.cfg.train.max_nonfinite_skips
        if skips < limit:
            return None
        return f"step {self.step}: {int(skips)} non-finite updates in a row (train.max_nonfinite_skips={limit})"

    def _finish(self, heldout: list[Sample], final_ckpt: Path) -> dict[str, Any]:
        """Final evaluation and export; the summary's entries."""
        summary: dict[str, Any] = {}
        after = self.evaluate(heldout)
        if after:
            summary["heldout_accuracy_after"] = after["eval/accuracy"]
            if "eval/tool_call_rate" in after:
                summary["heldout_tool_call_rate_after"] = after["eval/tool_call_rate"]
            summary.update({f"final_{k.split('/', 1)[1]}": v for k, v in after.items()})
        export_dir = self.output_dir / "final_model"
        self.res.policy.call("export_hf", str(export_dir))
        summary.update(
            {
                "steps": self.step,
                "final_model": str(export_dir),
                "checkpoint": str(final_ckpt),
                "reward_first": self.history[0]["reward/mean"] if self.history else None,
                "reward_last": self.history[-1]["reward/mean"] if self.history else None,
                "mean_step_seconds": nanmean(h.get("timing/step", float("nan")) for h in self.history),
            }
        )
        summary.update(self.supervisor.summary())
        if self.res.placement:
            summary["placement"] = self.res.placement
        if self.best.value is not None:
            summary.update(
                {"best_model": str(self.best.directory), "best_metric": self.best.value, "best_step": self.best.step}
            )
        return summary

    def _close_rollouts(self) -> None:
        if self.rollouts is not None:
            self.rollouts.close()
            self.rollouts = None

    def _shutdown(self) -> None:
        """Free the workers, engines and placement groups (safe to call twice)."""
        if self.res is not None:
            self.res.close()


def _open_agent(cfg: Config):
    """The multi-turn episodes' executor: the agent file's (train.agent_func_path), the built-in tool
    environment's (rollout.tools), or None for single-turn rollouts."""
    if cfg.train.agent_func_path:
        from openrlhf.rollout.agent_rollout import load_agent_executor

        return load_agent_executor(cfg.train.agent_func_path)
    if cfg.rollout.tools:
        from openrlhf.rollout.tool_agent import tool_executor

        return tool_executor(cfg.rollout.tools, cfg.rollout.max_turns)
    return None
