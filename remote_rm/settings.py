"""The service's configuration: recipes (weighted reward components), task routing, judge, limits.

Loaded from YAML (``--config recipes.yaml``; without it the packaged ``default_recipes.yaml``). Every
mistake is reported as ``file:line: key: message``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from remote_rm import rewards
from remote_rm.protocol import TASKS


class ConfigError(ValueError):
    """A bad configuration; the message starts with ``file:line``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentSpec(_Strict):
    """One term of a recipe: ``fn`` (built-in name or ``module:function``), its ``weight`` and ``params``."""

    fn: str
    name: str | None = Field(None, description="key in 'components' and extra_logs; default: fn")
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)
    where: Literal["inline", "pool"] | None = Field(None, description="custom functions: run inline or in the pool")
    needs_label: bool | None = Field(
        None,
        description="a sample without a label is a 422 when true; default: built-ins that compare with the "
        "solution need one, format/length/repetition/judge_consistency and custom functions do not",
    )

    @property
    def key(self) -> str:
        return self.name or self.fn


class RecipeSpec(_Strict):
    """A named recipe: reward = sum_i weight_i * component_i ("weighted_sum"), or R1-Reward's
    reward = format_weight * format + accuracy * (1 + consistency_weight * consistency) ("r1_reward",
    which needs components named format, accuracy and consistency)."""

    components: list[ComponentSpec]
    combine: Literal["weighted_sum", "r1_reward"] = "weighted_sum"
    format_weight: float = 0.5
    consistency_weight: float = 0.5
    score: str | None = Field(None, description="component reported as 'scores'; default: the reward")

    @model_validator(mode="after")
    def _check(self) -> RecipeSpec:
        keys = [c.key for c in self.components]
        if not keys:
            raise ValueError("a recipe needs at least one component")
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"component names must be unique, repeated: {', '.join(dupes)} (set 'name')")
        if self.combine == "r1_reward":
            missing = [k for k in ("format", "accuracy", "consistency") if k not in keys]
            if missing:
                raise ValueError(f"combine r1_reward needs components named {', '.join(missing)}")
        if self.score is not None and self.score not in keys:
            raise ValueError(f"score {self.score!r} is not one of the components: {', '.join(keys)}")
        return self


class JudgeEndpoint(_Strict):
    """An OpenAI-compatible chat server asked for verdicts (vLLM's server, openrlhf-serve, a hosted API): where it
    is, how each call is bounded, and what a sample gets when it fails."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = Field("", description="empty: the first model the server lists")
    api_key_env: str = Field("JUDGE_API_KEY", description="environment variable holding the API key")
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0)
    backoff_s: float = Field(0.5, ge=0, description="sleep before retry k: backoff_s * 2**k")
    concurrency: int = Field(8, ge=1)
    fallback: float = Field(0.0, description="the value when every try fails (counted as a failure)")
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(0.0, ge=0)
    breaker_failures: int = Field(
        5, ge=1, description="circuit breaker: this many failed samples within breaker_window_s open it"
    )
    breaker_window_s: float = Field(60.0, gt=0)
    breaker_cooldown_s: float = Field(
        30.0, gt=0, description="while open, samples get the fallback at once (counted as skipped); then one probe"
    )
    request_budget_s: float = Field(
        20.0,
        gt=0,
        description="the endpoint's time per request (below the trainer's reward timeout): samples still waiting "
        "then get the fallback (counted as failures)",
    )


class JudgeSettings(JudgeEndpoint):
    """The LLM judge for consistency (judge_consistency)."""

    fallback: float = Field(0.0, description="consistency when the judge fails")
    consistent: float = 1.0
    inconsistent: float = -1.0
    only_when_correct: bool = Field(True, description="skip the judge when accuracy is 0 (it cannot change the reward)")


class GenerativeRMSettings(JudgeEndpoint):
    """The generative reward model behind generative_rm (R1-Reward's comparison, remote_rm/generative_rm.py)."""

    api_key_env: str = Field("GENERATIVE_RM_API_KEY", description="environment variable holding the API key")
    fallback: float = Field(0.0, description="the win value of an order whose call fails or has no verdict")
    max_tokens: int = Field(1024, ge=1, description="R1-Reward reasons inside <think> before it answers")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(1, ge=0)
    request_budget_s: float = Field(
        30.0,
        gt=0,
        description="the reward model's time per request (below the trainer's reward timeout): orders still "
        "waiting then get the fallback (generative_rm_failures)",
    )


class ResponseSettings(_Strict):
    """How the response is cut out of the query (see :mod:`remote_rm.response`)."""

    template: Literal["auto", "none", "chatml", "llama3", "deepseek", "plain"] = "auto"
    headers: list[str] | None = None
    end_markers: list[str] | None = None
    strip_prompt: bool = True


class LimitSettings(_Strict):
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_samples: int = Field(16384, ge=1)
    max_response_chars: int = Field(65536, ge=256, description="longer responses are scored on their head")
    max_in_flight_samples: int = Field(
        8192,
        ge=0,
        description="samples being scored at once over all requests; a request beyond it gets 503 with "
        "Retry-After (the trainer's client waits and resends); one request alone is always taken; 0: no cap",
    )
    retry_after_s: int = Field(1, ge=1, description="the Retry-After of a 503 (seconds)")
    keep_alive_s: int = Field(
        75,
        ge=1,
        description="idle HTTP keep-alive connections are closed after this; longer than clients keep idle "
        "connections (httpx: 5 s), so a client never sends on a connection the server is closing at that moment "
        "(uvicorn's default 5 s lost 1 of 100,000 soak requests to that race)",
    )
    request_deadline_s: float = Field(
        45.0,
        gt=0,
        description="a request's scoring time, below the trainer's reward.timeout (60 s): components not scored "
        "by then get their fallback (0; the judge's fallback), counted as deadline_fallbacks, and the request is "
        "answered; the judge gets what is left of it (at most judge.request_budget_s)",
    )
    max_requests_per_client: int = Field(
        1024,
        ge=0,
        description="requests in flight from one client address; beyond it 503 + Retry-After (OpenRLHF's client "
        "retries 5 times, 1 s apart; ours waits); 0: no cap",
    )


class PoolSettings(_Strict):
    workers: int = Field(0, ge=0, description="scoring worker processes; 0: min(4, CPU count)")
    math_workers: int = Field(1, ge=1)
    math_timeout_s: float = Field(5.0, gt=0, description="math-verify's own timeout; the outer one is 2x + 2 s")
    task_timeout_s: float = Field(120.0, gt=0, description="deadline of one scoring task (a chunk of samples)")
    sample_timeout_s: float = Field(
        10.0,
        gt=0,
        description="deadline per sample: a chunk gets this per sample (up to task_timeout_s); one that runs over "
        "is scored again sample by sample, and a sample over it alone scores 0 (counted as scoring_timeouts)",
    )
    chunk_size: int = Field(32, ge=1, description="samples per scoring task")


class WordNetSettings(_Strict):
    enabled: bool = True
    source_dirs: list[str] = Field(default_factory=lambda: ["/usr/share/wordnet"])
    cache_dir: str = Field("", description="empty: $REMOTE_RM_CACHE_DIR or ~/.cache/remote_rm")


class ServiceConfig(_Strict):
    default_recipe: str
    tasks: dict[str, str] = Field(default_factory=dict, description="task -> recipe")
    recipes: dict[str, RecipeSpec]
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    generative_rm: GenerativeRMSettings = Field(default_factory=GenerativeRMSettings)
    response: ResponseSettings = Field(default_factory=ResponseSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    pool: PoolSettings = Field(default_factory=PoolSettings)
    wordnet: WordNetSettings = Field(default_factory=WordNetSettings)
    extra_logs: Literal["mean", "per_sample"] = Field(
        "mean", description="mean: {name: batch mean}; per_sample: {name: [value per sample]} (OpenRLHF <= 0.8)"
    )
    extra_logs_keys: Literal["all", "batch"] = Field(
        "all",
        description="all: every component of every recipe in every answer (0.0 where the batch has none), so "
        "OpenRLHF can batch the logs of one-sample answers; batch: only the batch's components",
    )

    @model_validator(mode="after")
    def _check(self) -> ServiceConfig:
        if self.default_recipe not in self.recipes:
            raise ValueError(f"default_recipe {self.default_recipe!r} is not a recipe: {', '.join(self.recipes)}")
        for task, recipe in self.tasks.items():
            if recipe not in self.recipes:
                raise ValueError(f"tasks.{task}: recipe {recipe!r} is not defined")
        return self

    def recipe_for(self, task: str | None) -> str:
        return self.tasks.get(task, self.default_recipe) if task else self.default_recipe

    def known_tasks(self) -> set[str]:
        return set(TASKS) | set(self.tasks)

    def uses(self, fn: str) -> bool:
        return any(c.fn == fn for r in self.recipes.values() for c in r.components)

    def worker_count(self) -> int:
        return self.pool.workers or max(1, min(4, os.cpu_count() or 1))


# --------------------------------------------------------------------------- loading with line numbers


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The line (1-based) of the YAML node at pydantic location ``loc``, as deep as it can be followed."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == str(key)), None)
            if match is None:
                key_node = next((k for k, _ in node.value if getattr(k, "value", None) == str(key)), None)
                return key_node.start_mark.line + 1 if key_node is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _check_components(cfg: ServiceConfig) -> list[tuple[tuple, str]]:
    problems = []
    for rname, recipe in cfg.recipes.items():
        for i, spec in enumerate(recipe.components):
            loc = ("recipes", rname, "components", i)
            try:
                comp = rewards.resolve(spec.fn, spec.where)
            except ValueError as exc:
                problems.append(((*loc, "fn"), str(exc)))
                continue
            unknown = rewards.check_params(comp, spec.params)
            if unknown:
                problems.append(((*loc, "params", unknown[0]), f"{spec.fn} takes no parameter {', '.join(unknown)}"))
            elif comp.check is not None:
                for key, message in comp.check(spec.params):
                    problems.append(((*loc, "params", key), message))
            if comp.kind == "derived":
                earlier = [c.key for c in recipe.components[:i]]
                source = spec.params.get("correct_from", "accuracy")
                if source not in earlier:
                    problems.append(((*loc, "params"), f"correct_from {source!r} must name an earlier component"))
    return problems


def parse_config(text: str, source: str = "<config>") -> ServiceConfig:
    """Validate YAML text; raises :class:`ConfigError` with ``source:line: key.path: message``."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the config must be a mapping with 'recipes' and 'default_recipe'")
    try:
        cfg = ServiceConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            path = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"{source}:{_line_of(node, loc)}: {path}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    problems = _check_components(cfg)
    if problems:
        raise ConfigError(
            "\n".join(f"{source}:{_line_of(node, loc)}: {'.'.join(map(str, loc))}: {msg}" for loc, msg in problems)
        )
    return cfg


def load_config(path: str | os.PathLike[str] | None = None) -> ServiceConfig:
    """Load ``path`` (YAML), or the packaged default recipes when None."""
    if path is None:
        text = resources.files("remote_rm").joinpath("default_recipes.yaml").read_text(encoding="utf-8")
        return parse_config(text, "remote_rm/default_recipes.yaml")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config: {exc.strerror or exc}") from None
    return parse_config(text, str(file))
