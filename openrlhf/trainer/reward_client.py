"""Where the trainer's rewards come from: the reward HTTP service, or a local ``reward_func`` file.

The HTTP protocol is OpenRLHF's remote RM: ``POST <url>`` with
``{"query": [str], "prompts": [str], "labels": [str | object]}`` answers
``{"rewards": [float], "scores": [float], "extra_logs": {name: float}, "components": {name: [float]}}``.
Only ``rewards`` is required; ``scores`` defaults to the rewards.

Both sources share one call, ``score(queries, prompts, labels) -> RewardResult``, and ``close()``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import threading
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from openrlhf.config import RewardConfig

_T = TypeVar("_T")


class RewardError(RuntimeError):
    """A reward could not be computed; the message names the URL or file that failed."""


class RewardServiceError(RewardError):
    """The reward HTTP service failed: down, timing out, answering 4xx/5xx, or answering nonsense."""


class RewardFunctionError(RewardError):
    """A ``reward_func`` file is missing, broken, or returned something unusable."""


@dataclass
class RewardResult:
    """Rewards for one batch, in the order the samples were given.

    rewards: what the policy is trained on. scores: the raw task scores (e.g. accuracy in [0, 1]),
    for logging and dynamic filtering. extra_logs: batch means to log. components: per-sample values
    of the reward's parts (format, accuracy, ...), NaN where a sample has no such component (null in
    the answer, or a shard that did not report it).
    """

    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, float] = field(default_factory=dict)
    components: dict[str, list[float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rewards)


# --------------------------------------------------------------------------- response parsing


def _float_list(values: Any, n: int, what: str, where: str, allow_nan: bool = False) -> list[float]:
    if hasattr(values, "tolist"):  # torch tensors and numpy arrays
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise RewardError(f"{where}: '{what}' must be a list of {n} numbers, got {type(values).__name__}")
    if len(values) != n:
        raise RewardError(f"{where}: '{what}' has {len(values)} values for {n} samples")
    out = []
    for i, value in enumerate(values):
        if value is None and allow_nan:  # a component the sample's recipe does not have
            value = math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RewardError(f"{where}: '{what}'[{i}] is {value!r}, not a number")
        value = float(value)
        if not allow_nan and not math.isfinite(value):
            raise RewardError(f"{where}: '{what}'[{i}] is {value}, not a finite number")
        out.append(value)
    return out


def parse_reward_payload(payload: Any, n: int, where: str) -> RewardResult:
    """Validate one answer (HTTP JSON body or reward_func return value) for ``n`` samples.

    Accepts ``{"rewards": [...], ...}``, or a bare list/tensor of rewards. Raises :class:`RewardError`
    naming ``where`` (the URL or file) and the bad key.
    """
    if not isinstance(payload, Mapping):
        payload = {"rewards": payload}
    if "rewards" not in payload:
        keys = ", ".join(map(str, payload)) or "none"
        raise RewardError(f"{where}: the answer has no 'rewards' key (keys: {keys})")
    rewards = _float_list(payload["rewards"], n, "rewards", where)
    scores = rewards if payload.get("scores") is None else _float_list(payload["scores"], n, "scores", where)
    extra_logs: dict[str, float] = {}
    raw_logs = payload.get("extra_logs") or {}
    if not isinstance(raw_logs, Mapping):
        raise RewardError(f"{where}: 'extra_logs' must be an object of name -> number")
    for name, value in raw_logs.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RewardError(f"{where}: 'extra_logs'[{name!r}] is {value!r}, not a number")
        extra_logs[str(name)] = float(value)
    components: dict[str, list[float]] = {}
    raw_components = payload.get("components") or {}
    if not isinstance(raw_components, Mapping):
        raise RewardError(f"{where}: 'components' must be an object of name -> list of numbers")
    for name, values in raw_components.items():
        components[str(name)] = _float_list(values, n, f"components.{name}", where, allow_nan=True)
    return RewardResult(list(rewards), list(scores), extra_logs, components)


def merge_results(parts: Sequence[RewardResult]) -> RewardResult:
    """Concatenate chunk results in order.

    extra_logs are sample-weighted means over the chunks that report them:
    ``log = sum_c n_c * log_c / sum_c n_c``. A component missing from a chunk is NaN for its samples.
    """
    rewards = [r for part in parts for r in part.rewards]
    scores = [s for part in parts for s in part.scores]
    weighted: dict[str, float] = {}
    weights: dict[str, int] = {}
    for part in parts:
        for name, value in part.extra_logs.items():
            weighted[name] = weighted.get(name, 0.0) + value * len(part)
            weights[name] = weights.get(name, 0) + len(part)
    extra_logs = {name: (weighted[name] / weights[name] if weights[name] else weighted[name]) for name in weighted}
    names = list(dict.fromkeys(name for part in parts for name in part.components))
    components = {
        name: [v for part in parts for v in part.components.get(name, [math.nan] * len(part))] for name in names
    }
    return RewardResult(rewards, scores, extra_logs, components)


def _check_batch(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any]) -> None:
    if not (len(queries) == len(prompts) == len(labels)):
        raise ValueError(
            f"reward batch: queries ({len(queries)}), prompts ({len(prompts)}) and labels ({len(labels)}) "
            "must have the same length"
        )


# --------------------------------------------------------------------------- HTTP client


class _LoopThread:
    """An asyncio event loop on its own daemon thread, so sync callers work anywhere (Ray actors too)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="reward-client-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


def _short(text: str, limit: int = 500) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."


class RemoteRewardClient:
    """Scores batches on one or more reward servers.

    A batch is cut into chunks of ``batch_size`` samples; chunk ``i`` goes to ``urls[i % len(urls)]``,
    at most ``concurrency`` requests are in flight, and the answers are put back in order. Connect
    errors, timeouts and 5xx answers are retried ``retries`` times, sleeping ``backoff * 2**k`` seconds
    before retry ``k+1``; a 4xx is not retried. Failures raise :class:`RewardServiceError` naming the URL.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        concurrency: int = 8,
        batch_size: int = 64,
        token: str | None = None,
    ) -> None:
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise ValueError("RemoteRewardClient needs at least one reward server URL (reward.remote_url)")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"reward.remote_url: {url!r} is not an http(s):// URL")
        if timeout <= 0 or retries < 0 or backoff < 0 or concurrency < 1 or batch_size < 1:
            raise ValueError(
                f"RemoteRewardClient: bad settings timeout={timeout} retries={retries} backoff={backoff} "
                f"concurrency={concurrency} batch_size={batch_size}"
            )
        self.urls = urls
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.concurrency = concurrency
        self.batch_size = batch_size
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._loop: _LoopThread | None = None
        self._http: httpx.AsyncClient | None = None

    @classmethod
    def from_config(cls, reward_cfg: RewardConfig, urls: Sequence[str] | None = None) -> RemoteRewardClient:
        """Build from the ``reward`` config section; ``urls`` overrides ``reward.remote_url``."""
        token = None
        if reward_cfg.token_env:
            token = os.environ.get(reward_cfg.token_env)
            if not token:
                raise ValueError(f"reward.token_env: environment variable {reward_cfg.token_env!r} is not set or empty")
        return cls(
            list(urls) if urls is not None else reward_cfg.remote_url,
            timeout=reward_cfg.timeout,
            retries=reward_cfg.retries,
            backoff=reward_cfg.backoff,
            concurrency=reward_cfg.concurrency,
            batch_size=reward_cfg.batch_size,
            token=token,
        )

    # -- sync API

    def score(self, queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any]) -> RewardResult:
        """Rewards for each (query, prompt, label), in order. Raises :class:`RewardServiceError`."""
        _check_batch(queries, prompts, labels)
        if not queries:
            return RewardResult([], [], {}, {})
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop.run(self._ascore(queries, prompts, labels))

    def close(self) -> None:
        if self._loop is None:
            return
        if self._http is not None:
            self._loop.run(self._http.aclose())
            self._http = None
        self._loop.stop()
        self._loop = None

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (e.g. sent to a Ray actor): the event loop and connections are made anew there."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_loop", "_http")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _loop=None, _http=None)

    def __enter__(self) -> RemoteRewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async internals (run on the client's own loop)

    async def _ascore(self, queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any]) -> RewardResult:
        if self._http is None:
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._http = httpx.AsyncClient(timeout=self.timeout, limits=limits, headers=self._headers)
        semaphore = asyncio.Semaphore(self.concurrency)
        starts = range(0, len(queries), self.batch_size)
        jobs = []
        for i, start in enumerate(starts):
            end = start + self.batch_size
            body = {
                "query": list(queries[start:end]),
                "prompts": list(prompts[start:end]),
                "labels": list(labels[start:end]),
            }
            jobs.append(self._post_with_retries(self.urls[i % len(self.urls)], body, semaphore))
        tasks = [asyncio.ensure_future(job) for job in jobs]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one chunk failed for good: the others' answers are of no use
                task.cancel()
            raise
        return merge_results(parts)

    async def _post_with_retries(self, url: str, body: dict[str, Any], semaphore: asyncio.Semaphore) -> RewardResult:
        assert self._http is not None
        n = len(body["query"])
        attempts = self.retries + 1
        last_error = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                async with semaphore:
                    response = await self._http.post(url, json=body)
            except httpx.TimeoutException as exc:
                last_error = f"timed out after {self.timeout:g} s ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {str(exc) or 'connection failed'}"
                continue
            if response.status_code >= 500:
                last_error = f"HTTP {response.status_code}: {_short(response.text)}"
                continue
            if response.status_code >= 400:
                raise RewardServiceError(
                    f"reward server {url} rejected the request with HTTP {response.status_code} "
                    f"(not retried): {_short(response.text)}"
                )
            try:
                payload = response.json()
            except ValueError:
                raise RewardServiceError(
                    f"reward server {url} answered HTTP {response.status_code} with a body that is not JSON: "
                    f"{_short(response.text, 200)!r}"
                ) from None
            try:
                return parse_reward_payload(payload, n, f"reward server {url}")
            except RewardError as exc:
                raise RewardServiceError(str(exc)) from None
        raise RewardServiceError(
            f"reward server {url} failed after {attempts} attempt{'s' if attempts > 1 else ''} "
            f"(timeout {self.timeout:g} s, backoff {self.backoff:g} s): {last_error}"
        )


# --------------------------------------------------------------------------- reward_func file


class FileRewardFunction:
    """Rewards from a Python file defining ``reward_func(queries, prompts, labels, **kw)``.

    The function may return a list/tensor/array of rewards, or a dict shaped like the HTTP answer.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RewardFunctionError(f"reward.reward_func: file not found: {self.path}")
        module_name = f"_openrlhf_reward_func_{abs(hash(str(self.path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, self.path)
        if spec is None or spec.loader is None:
            raise RewardFunctionError(f"reward.reward_func: {self.path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise RewardFunctionError(f"reward.reward_func: importing {self.path} failed: {exc!r}") from exc
        func = getattr(module, "reward_func", None)
        if func is None:
            raise RewardFunctionError(f"reward.reward_func: {self.path} defines no function named 'reward_func'")
        if not callable(func):
            raise RewardFunctionError(f"reward.reward_func: {self.path}: 'reward_func' is not callable")
        self.func = func

    def score(self, queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kw: Any) -> RewardResult:
        _check_batch(queries, prompts, labels)
        if not queries:
            return RewardResult([], [], {}, {})
        try:
            out = self.func(list(queries), list(prompts), list(labels), **kw)
        except Exception as exc:
            raise RewardFunctionError(f"{self.path}: reward_func raised {exc!r}") from exc
        try:
            return parse_reward_payload(out, len(queries), f"{self.path}: reward_func")
        except RewardError as exc:
            raise RewardFunctionError(str(exc)) from None

    def close(self) -> None:
        pass

    def __enter__(self) -> FileRewardFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RewardSource = RemoteRewardClient | FileRewardFunction


def create_reward_source(reward_cfg: RewardConfig, urls: Sequence[str] | None = None) -> RewardSource:
    """The reward source the config asks for: a reward_func file, or the HTTP client.

    ``urls`` (e.g. a locally launched server's URL) is used when ``reward.remote_url`` is empty.
    """
    if reward_cfg.reward_func:
        if reward_cfg.remote_url or urls:
            raise ValueError("reward.reward_func and reward servers are exclusive: set one")
        return FileRewardFunction(reward_cfg.reward_func)
    if reward_cfg.remote_url and urls:
        raise ValueError(
            "reward.remote_url is set and a local reward server was launched (reward.launch_local_server): set one"
        )
    chosen = list(urls or reward_cfg.remote_url)
    if not chosen:
        raise ValueError(
            "no reward source: set reward.remote_url, reward.reward_func, or reward.launch_local_server: true"
        )
    return RemoteRewardClient.from_config(reward_cfg, urls=chosen)
