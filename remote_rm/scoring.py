"""The scorer: one request's samples -> recipe components -> rewards, scores, components, extra_logs.

Per request:

0. :meth:`Scorer.check_labels`: a sample without a label whose recipe has a component that needs one
   makes the request a 422 that names the recipe and the components;
1. each query's response is cut out (:mod:`remote_rm.response`) and capped at
   ``limits.max_response_chars``; each label picks its recipe (plain string: ``default_recipe``;
   object: ``tasks[label.task]``);
2. cheap components run inline (in a thread, off the event loop); CPU-heavy ones go to the scoring pool in
   chunks, each chunk under a deadline of ``pool.sample_timeout_s`` per sample (a chunk over it is scored
   again sample by sample, so a hanging sample scores 0 alone); math-verify goes to the math pool, one call
   per distinct (answer, solution) pair; these run concurrently;
3. derived components (cosine length) follow, then the LLM judge (only where it can change the reward) and
   the generative reward model (``generative_rm``), concurrently; the request has ``limits.request_deadline_s``
   in all: components not scored by then get their fallback (``deadline_fallbacks``), and the judge and the
   reward model get what is left;
4. each recipe combines its components (weighted sum, or R1-Reward's formula).

Nothing about a sample's content can make a request fail: a component that raises, a verifier that
crashes or hangs, a judge that is down all score their fallback (0, or the judge's fallback) and are
counted in ``extra_logs`` and ``/metrics``. The scorer keeps no per-request state outside ``score``,
so concurrent requests cannot see each other's samples.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

from remote_rm import rewards, worker
from remote_rm.generative_rm import Comparison, GenerativeRM
from remote_rm.judge import JudgeClient, JudgeResult
from remote_rm.metrics import ServiceMetrics
from remote_rm.pool import PoolCrashed, PoolTimeout, WorkerPool
from remote_rm.protocol import Label, ProtocolError, RewardRequest, describe_label
from remote_rm.response import extract_response, make_rule
from remote_rm.rewards.generative import question_text, reference_text
from remote_rm.rewards.length import cosine_length
from remote_rm.rewards.math_accuracy import gold_answer, math_answer
from remote_rm.settings import ComponentSpec, RecipeSpec, ServiceConfig
from remote_rm.text import truncate

log = logging.getLogger("remote_rm.scoring")

# Built-in components that never look at the label; every other built-in compares with the solution.
LABEL_FREE = frozenset({"format", "omnirl_length", "repetition_penalty", "cosine_length", "judge_consistency"})

# Keys OpenRLHF itself keeps in an experience's ``info`` dict (and the per-sample fields and training
# metrics merged with it before logging). OpenRLHF copies ``extra_logs`` into ``info`` key by key
# (``info[key] = torch.tensor([value])``), so an extra_logs key named like one of these would overwrite
# OpenRLHF's own value; such keys are renamed (:func:`openrlhf_safe_names`).
OPENRLHF_INFO_KEYS = frozenset(
    {
        # samples_generator / experience_maker: info and Experience episode fields
        "reward", "score", "rewards", "scores", "response_length", "total_length", "truncated",
        "response_clip_ratio", "kl", "logprobs_diff", "group_reward_std", "return",
        # ppo_actor / ppo_critic training metrics merged with info
        "ppo_clip_ratio", "ppo_kl", "vllm_kl", "policy_loss", "entropy_loss", "actor_lr", "actor_grad_norm",
        "critic_loss", "values", "critic_lr", "critic_grad_norm", "_num_samples", "_num_action_tokens", "_weights",
        # ppo_trainer status
        "dynamic_filtering_pass_rate", "generated_samples",
    }
)  # fmt: skip


def openrlhf_safe_names(keys: list[str]) -> tuple[dict[str, str], str]:
    """extra_logs names for component/count ``keys`` and for the combined reward, clear of OpenRLHF's keys.

    The combined reward is ``reward_mean``; a key OpenRLHF uses itself (:data:`OPENRLHF_INFO_KEYS`,
    ``reward`` included) becomes ``rm_<key>``; the rest keep their names. A new name that is taken
    gets another ``rm_`` in front. Returns ({key: name}, name of the combined reward).
    """
    taken = {k for k in keys if k not in OPENRLHF_INFO_KEYS}

    def fresh(name: str) -> str:
        while name in taken or name in OPENRLHF_INFO_KEYS:
            name = f"rm_{name}"
        taken.add(name)
        return name

    reward_name = fresh("reward_mean")
    names = {key: fresh(f"rm_{key}") if key in OPENRLHF_INFO_KEYS else key for key in dict.fromkeys(keys)}
    return names, reward_name


def _compares_with_label(spec: ComponentSpec) -> bool:
    """A built-in that reads the solution (it scores 0 without one, when ``needs_label: false`` lets it through)."""
    return spec.fn in rewards.BUILTIN and spec.fn not in LABEL_FREE


def needs_label(spec: ComponentSpec) -> bool:
    """Whether ``spec`` needs the sample's label: its ``needs_label``, else true for built-ins outside
    :data:`LABEL_FREE`, false for custom functions."""
    if spec.needs_label is not None:
        return spec.needs_label
    return _compares_with_label(spec)


@dataclass
class _Sample:
    response: str
    length: int
    label: Label
    recipe: str
    prompt: str = ""


GENERATIVE_COUNTS = ("generative_rm_calls", "generative_rm_failures", "generative_rm_skipped")


class _Tally:
    """Per-request counts that end up in extra_logs (the generative_rm counts only where a recipe uses it)."""

    def __init__(self, generative: bool = False) -> None:
        self.counts = {
            "judge_calls": 0,
            "judge_failures": 0,
            "judge_skipped": 0,
            "math_timeouts": 0,
            "math_errors": 0,
            "scoring_timeouts": 0,
            "deadline_fallbacks": 0,
            "component_errors": 0,
            "truncated_responses": 0,
        }
        if generative:
            self.counts.update(dict.fromkeys(GENERATIVE_COUNTS, 0))

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n


def combine(recipe: RecipeSpec, values: dict[str, float]) -> float:
    """A recipe's reward from its component values.

    weighted_sum: reward = sum_i w_i * c_i.
    r1_reward (R1-Reward): reward = format_weight * format + accuracy * (1 + consistency_weight * consistency).
    """
    if recipe.combine == "r1_reward":
        return recipe.format_weight * values["format"] + values["accuracy"] * (
            1.0 + recipe.consistency_weight * values["consistency"]
        )
    return sum(spec.weight * values[spec.key] for spec in recipe.components)


class Scorer:
    """Owns the worker pools and the judge client; ``await start()`` once, then ``await score(req)``."""

    def __init__(self, config: ServiceConfig, metrics: ServiceMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or ServiceMetrics()
        self.rule = make_rule(
            config.response.template, config.response.headers, config.response.end_markers, config.response.strip_prompt
        )
        self.recipes: dict[str, list[tuple[ComponentSpec, rewards.Component]]] = {
            name: [(spec, rewards.resolve(spec.fn, spec.where)) for spec in recipe.components]
            for name, recipe in config.recipes.items()
        }
        uses_meteor = any(comp.name in ("meteor", "similarity") for comps in self.recipes.values() for _, comp in comps)
        wn = config.wordnet
        self.load_wordnet = wn.enabled and uses_meteor
        self.scoring_pool = WorkerPool(
            "scoring",
            config.worker_count(),
            worker.init_scoring_worker,
            (wn.enabled, self.load_wordnet, tuple(wn.source_dirs), wn.cache_dir or None),
        )
        self.math_pool = (
            WorkerPool("math", config.pool.math_workers, worker.init_math_worker, ())
            if config.uses("math_accuracy")
            else None
        )
        self.label_needs: dict[str, list[ComponentSpec]] = {
            name: [spec for spec in recipe.components if needs_label(spec)] for name, recipe in config.recipes.items()
        }
        self.all_keys = list(dict.fromkeys(spec.key for r in config.recipes.values() for spec in r.components))
        self.uses_generative = config.uses("generative_rm")
        counts = _Tally(self.uses_generative).counts
        self.log_names, self.reward_log_name = openrlhf_safe_names([*self.all_keys, *counts])
        renamed = {k: v for k, v in self.log_names.items() if k != v}
        if renamed:
            log.info("extra_logs names that OpenRLHF uses itself are renamed: %s", renamed)
        self.judge: JudgeClient | None = None
        self.generative: GenerativeRM | None = None
        self.math_fn = worker.verify_math  # tests swap in a function that crashes or hangs
        self.worker_status: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start and warm every worker (WordNet loaded, math-verify imported) before serving."""
        tasks = [self.scoring_pool.warm_up(worker.worker_status)]
        if self.math_pool is not None:
            tasks.append(self.math_pool.warm_up(worker.worker_status))
        results = await asyncio.gather(*tasks)
        self.worker_status = results[0]
        if self.config.uses("judge_consistency"):
            self.judge = JudgeClient(self.config.judge)
        if self.uses_generative:
            self.generative = GenerativeRM(self.config.generative_rm)

    async def close(self) -> None:
        self.scoring_pool.close()
        if self.math_pool is not None:
            self.math_pool.close()
        if self.judge is not None:
            await self.judge.close()
        if self.generative is not None:
            await self.generative.close()

    def wordnet_status(self) -> dict[str, Any]:
        if not self.load_wordnet:
            reason = "disabled in the config" if not self.config.wordnet.enabled else "no recipe uses METEOR"
            return {"available": False, "reason": reason}
        statuses = [s["wordnet"] for s in self.worker_status]
        return statuses[0] if statuses else {"available": False, "reason": "workers not started"}

    # ------------------------------------------------------------------ scoring

    def check_labels(self, request: RewardRequest) -> None:
        """Raise a 422 :class:`ProtocolError` if a sample without a label goes to a recipe that needs one,
        naming the recipe, its components that need a label, and how many samples lack one."""
        lacking = [
            (i, label)
            for i, label in enumerate(request.labels)
            if label.missing and self.label_needs[self.config.recipe_for(label.task)]
        ]
        if not lacking:
            return
        i, label = lacking[0]
        recipe = self.config.recipe_for(label.task)
        how = "the default_recipe" if not label.task else f"task {label.task!r}"
        comps = ", ".join(
            f"{spec.key} ({spec.fn})" if spec.key != spec.fn else spec.fn for spec in self.label_needs[recipe]
        )
        needs = f"recipe {recipe!r} ({how}) needs a label for component(s) {comps}"
        if not request.has_labels:
            raise ProtocolError(
                422,
                "labels",
                f"field 'labels' is missing (OpenRLHF before 0.6 sends only 'query'), but {needs}; send labels, "
                "or make default_recipe a recipe that needs none (format, length, repetition components)",
            )
        more = f" ({len(lacking)} of {len(request.labels)} samples have no label)" if len(lacking) > 1 else ""
        hint = ' (OpenRLHF sends "" when its --label_key is not set)' if label.solution == "" else ""
        raise ProtocolError(
            422, f"labels[{i}]", f"labels[{i}] is {describe_label(label)}, that is no label{hint}, but {needs}{more}"
        )

    def _prepare(self, request: RewardRequest, tally: _Tally) -> list[_Sample]:
        limit = self.config.limits.max_response_chars
        samples = []
        for query, prompt, label in zip(request.queries, request.prompts, request.labels, strict=True):
            response = extract_response(query, prompt, self.rule)
            if len(response) > limit:
                tally.add("truncated_responses")
            recipe = self.config.recipe_for(label.task)
            samples.append(_Sample(truncate(response, limit), len(response), label, recipe, prompt))
        return samples

    def _run_inline(self, samples: list[_Sample], values: dict[str, list[float | None]], tally: _Tally) -> None:
        for i, sample in enumerate(samples):
            for spec, comp in self.recipes[sample.recipe]:
                if comp.kind != "plain" or comp.where != "inline":
                    continue
                if sample.label.missing and _compares_with_label(spec):
                    values[spec.key][i] = 0.0  # only with needs_label: false
                    continue
                try:
                    value = float(comp.func(sample.response, sample.label, **spec.params))
                    if not math.isfinite(value):
                        raise ValueError(f"returned {value}")
                except Exception as exc:  # noqa: BLE001 - a failing reward scores 0 and is counted
                    log.warning("component %s failed: %s", spec.fn, exc)
                    self.metrics.component_errors.labels(spec.fn).inc()
                    tally.add("component_errors")
                    value = 0.0
                values[spec.key][i] = value

    async def _run_pool(self, samples: list[_Sample], values: dict[str, list[float | None]], tally: _Tally) -> None:
        jobs = []
        for i, sample in enumerate(samples):
            for spec, comp in self.recipes[sample.recipe]:
                if comp.kind != "plain" or comp.where != "pool":
                    continue
                if sample.label.missing and _compares_with_label(spec):
                    values[spec.key][i] = 0.0  # only with needs_label: false
                else:
                    jobs.append((i, spec, (spec.fn, spec.where, sample.response, sample.label, spec.params)))
        if not jobs:
            return
        size = max(1, min(self.config.pool.chunk_size, math.ceil(len(jobs) / self.scoring_pool.size)))
        chunks = [jobs[k : k + size] for k in range(0, len(jobs), size)]

        pool_cfg = self.config.pool

        async def run_one(item) -> tuple[float, str | None]:
            """One sample alone, under its own deadline: a sample that hangs scores 0 by itself, counted."""
            try:
                return (await self.scoring_pool.run(worker.score_items, [item], timeout=pool_cfg.sample_timeout_s))[0]
            except PoolTimeout as exc:
                tally.add("scoring_timeouts")
                self.metrics.scoring_timeouts.inc()
                return 0.0, str(exc)
            except PoolCrashed as exc:
                return 0.0, str(exc)

        async def run_chunk(chunk: list) -> None:
            # A chunk that runs over its deadline (or kills its worker) is scored again sample by sample,
            # so one slow or crashing sample costs only its own score.
            try:
                results = await self.scoring_pool.run(
                    worker.score_items,
                    [item for _, _, item in chunk],
                    timeout=min(pool_cfg.task_timeout_s, pool_cfg.sample_timeout_s * len(chunk)),
                )
            except (PoolTimeout, PoolCrashed) as exc:
                log.warning("scoring chunk of %d failed (%s): scoring its samples one by one", len(chunk), exc)
                results = await asyncio.gather(*(run_one(item) for _, _, item in chunk))
            for (i, spec, _), (value, error) in zip(chunk, results, strict=True):
                if error is not None:
                    self.metrics.component_errors.labels(spec.fn).inc()
                    tally.add("component_errors")
                values[spec.key][i] = value

        await asyncio.gather(*(run_chunk(c) for c in chunks))
        self.metrics.pool_restarts.labels("scoring").set(self.scoring_pool.restarts)

    async def _run_math(self, samples: list[_Sample], values: dict[str, list[float | None]], tally: _Tally) -> None:
        pending: dict[tuple[str, str, float], list[tuple[int, str]]] = {}
        for i, sample in enumerate(samples):
            for spec, comp in self.recipes[sample.recipe]:
                if comp.kind != "math":
                    continue
                params = spec.params
                if sample.label.missing:  # only with needs_label: false
                    values[spec.key][i] = 0.0
                    continue
                answer = math_answer(
                    sample.response, params.get("answer_tag", "answer"), params.get("boxed_fallback", True)
                )
                if answer is None or not answer.strip():
                    values[spec.key][i] = 0.0
                    continue
                key = (
                    answer[:4000],
                    gold_answer(sample.label.solution)[:4000],
                    float(params.get("timeout_s", self.config.pool.math_timeout_s)),
                )
                pending.setdefault(key, []).append((i, spec.key))
        if not pending or self.math_pool is None:
            return

        async def verify(key: tuple[str, str, float]) -> None:
            answer, gold, timeout_s = key
            try:
                value, error = await self.math_pool.run(
                    self.math_fn, answer, gold, timeout_s, timeout=2 * timeout_s + 2
                )
                if error is not None:
                    self.metrics.math_errors.inc()
                    tally.add("math_errors")
            except PoolTimeout:
                value = 0.0
                self.metrics.math_timeouts.inc()
                tally.add("math_timeouts")
            except PoolCrashed:
                value = 0.0
                self.metrics.math_errors.inc()
                tally.add("math_errors")
            for i, name in pending[key]:
                values[name][i] = float(value)

        await asyncio.gather(*(verify(k) for k in pending))
        self.metrics.pool_restarts.labels("math").set(self.math_pool.restarts)

    def _fill_late(
        self, samples: list[_Sample], values: dict[str, list[float | None]], tally: _Tally
    ) -> dict[str, list[float | None]]:
        """At the request deadline: a copy of ``values`` (late work keeps writing to the old lists, unread) in
        which every inline, pool or math component not scored yet has its fallback 0, counted."""
        values = {key: list(column) for key, column in values.items()}
        late = 0
        for i, sample in enumerate(samples):
            for spec, comp in self.recipes[sample.recipe]:
                if comp.kind in ("plain", "math") and values[spec.key][i] is None:
                    values[spec.key][i] = 0.0
                    late += 1
        log.warning(
            "request deadline (%g s): %d component values got their fallback",
            self.config.limits.request_deadline_s,
            late,
        )
        tally.add("deadline_fallbacks", late)
        self.metrics.deadline_fallbacks.inc(late)
        return values

    def _run_derived(self, samples: list[_Sample], values: dict[str, list[float | None]]) -> None:
        for i, sample in enumerate(samples):
            for spec, comp in self.recipes[sample.recipe]:
                if comp.kind != "derived":
                    continue
                params = dict(spec.params)
                source = params.pop("correct_from", "accuracy")
                threshold = params.pop("threshold", 0.5)
                correct = (values[source][i] or 0.0) >= threshold
                values[spec.key][i] = cosine_length(sample.length, correct, **params)

    async def _run_judge(
        self, samples: list[_Sample], values: dict[str, list[float | None]], tally: _Tally, budget_s: float
    ) -> None:
        asks = []
        for i, sample in enumerate(samples):
            for spec, comp in self.recipes[sample.recipe]:
                if comp.kind != "judge":
                    continue
                accuracy = values.get("accuracy", [None] * len(samples))[i]
                if self.judge is None or (
                    self.config.judge.only_when_correct and accuracy is not None and accuracy == 0
                ):
                    values[spec.key][i] = 0.0  # cannot change the reward: accuracy * (1 + w * c) = 0
                    continue
                asks.append((i, spec))
        if not asks:
            return
        assert self.judge is not None
        judge = self.judge
        tasks = [
            asyncio.ensure_future(judge.consistency(samples[i].response, spec.params.get("reasoning_lines", 3)))
            for i, spec in asks
        ]
        # The request's judge budget (what the request deadline leaves, at most judge.request_budget_s): what is
        # still waiting then gets the fallback, counted as a failure.
        budget_s = min(budget_s, self.config.judge.request_budget_s)
        _, late = await asyncio.wait(tasks, timeout=budget_s) if budget_s > 0 else (set(), set(tasks))
        for task in late:
            task.cancel()
        for (i, spec), task in zip(asks, tasks, strict=True):
            if task in late or task.cancelled():
                result = JudgeResult(self.config.judge.fallback, False, 1, "over the request's judge budget")
            else:
                result = task.result()
            values[spec.key][i] = result.value
            tally.add("judge_calls", result.calls)
            self.metrics.judge_calls.inc(result.calls)
            if result.skipped:
                tally.add("judge_skipped")
                self.metrics.judge_skipped.inc()
            elif not result.ok:
                tally.add("judge_failures")
                self.metrics.judge_failures.inc()

    async def _run_generative(
        self, samples: list[_Sample], values: dict[str, list[float | None]], tally: _Tally, budget_s: float
    ) -> None:
        """generative_rm: the reward model compares each sample's answer with its reference (within ``budget_s``)."""
        asks = []
        for i, sample in enumerate(samples):
            for spec, comp in self.recipes[sample.recipe]:
                if comp.kind != "generative":
                    continue
                reference = reference_text(sample.label.solution)
                if sample.label.missing or not reference or self.generative is None:
                    values[spec.key][i] = 0.0  # no reference to compare with (only with needs_label: false)
                    continue
                question = question_text(sample.prompt, sample.label.fields)
                asks.append((i, spec, Comparison(sample.response, reference, question, spec.params)))
        if not asks:
            return
        assert self.generative is not None
        results = await self.generative.score_many([c for _, _, c in asks], budget_s)
        m = self.metrics
        for (i, spec, _), result in zip(asks, results, strict=True):
            values[spec.key][i] = result.value
            for key, n, counter in (
                ("generative_rm_calls", result.calls, m.generative_rm_calls),
                ("generative_rm_failures", result.failures, m.generative_rm_failures),
                ("generative_rm_skipped", result.skipped, m.generative_rm_skipped),
            ):
                tally.add(key, n)
                counter.inc(n)

    async def score(self, request: RewardRequest) -> dict[str, Any]:
        """Score a validated request; the answer body of /get_reward.

        The request is answered within ``limits.request_deadline_s`` (plus the time to cut out the responses,
        which is linear in their length): what is not scored by then gets its fallback, counted.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.limits.request_deadline_s
        tally = _Tally(self.uses_generative)
        # Parsing and the inline components run in a thread, beside the pool and math calls: the event loop
        # stays free for other requests and /health whatever a request holds.
        samples = await asyncio.to_thread(self._prepare, request, tally)
        n = len(samples)
        keys = list(dict.fromkeys(spec.key for s in samples for spec, _ in self.recipes[s.recipe]))
        values: dict[str, list[float | None]] = {k: [None] * n for k in keys}
        work = asyncio.gather(
            asyncio.to_thread(self._run_inline, samples, values, tally),
            self._run_pool(samples, values, tally),
            self._run_math(samples, values, tally),
        )
        done, _ = await asyncio.wait({work}, timeout=max(0.0, deadline - loop.time()))
        if done:
            work.result()
        else:
            work.cancel()
            values = self._fill_late(samples, values, tally)
        self._run_derived(samples, values)
        budget_s = max(0.0, deadline - loop.time())
        await asyncio.gather(
            self._run_judge(samples, values, tally, budget_s=budget_s),
            self._run_generative(samples, values, tally, budget_s=budget_s),
        )

        rewards_out, scores_out = [], []
        for i, sample in enumerate(samples):
            recipe = self.config.recipes[sample.recipe]
            own = {spec.key: float(values[spec.key][i] or 0.0) for spec in recipe.components}
            reward = combine(recipe, own)
            rewards_out.append(reward)
            scores_out.append(own[recipe.score] if recipe.score else reward)
        self.metrics.samples.inc(n)
        return {
            "rewards": rewards_out,
            "scores": scores_out,
            "extra_logs": self._extra_logs(values, rewards_out, tally),
            "components": values,
        }

    def _extra_logs(self, values: dict[str, list[float | None]], rewards_out: list[float], tally: _Tally) -> dict:
        """extra_logs in the configured shape, under names that do not clash with OpenRLHF's own info keys.

        mean: {name: batch mean of the samples that have the component, reward_mean, counts};
        per_sample: {name: [value per sample, 0.0 where the sample's recipe has none], reward_mean: [...]}.
        With ``extra_logs_keys: all`` every component of every recipe is there (0.0 / [0.0, ...] when
        no sample of the request has it), so every answer has the same keys.
        """
        n = len(rewards_out)
        keys = self.all_keys if self.config.extra_logs_keys == "all" else list(values)
        names = self.log_names
        if self.config.extra_logs == "per_sample":
            logs: dict[str, Any] = {}
            for key in keys:
                vs = values.get(key, [None] * n)
                logs[names[key]] = [0.0 if v is None else v for v in vs]
            logs[self.reward_log_name] = list(rewards_out)
            return logs
        logs = {}
        for key in keys:
            present = [v for v in values.get(key, ()) if v is not None]
            logs[names[key]] = sum(present) / len(present) if present else 0.0
        logs[self.reward_log_name] = sum(rewards_out) / n if n else 0.0
        logs.update({names[k]: float(v) for k, v in tally.counts.items()})
        return logs
