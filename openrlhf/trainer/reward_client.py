"""Where the trainer's rewards come from: the reward HTTP service, or a local ``reward_func`` file.

The HTTP protocol is OpenRLHF's remote RM: ``POST <url>`` with
``{"query": [str], "prompts": [str], "labels": [str | object]}`` answers
``{"rewards": [float], "scores": [float], "extra_logs": {name: float}, "components": {name: [float]}}``.
Only ``rewards`` is required; ``scores`` defaults to the rewards. What OpenRLHF's reward functions and
``serve_rm.py`` send is accepted too: torch tensors and numpy arrays anywhere a list or number goes, and
``extra_logs`` with one value per sample (``{"dummy_scores": [...]}``), averaged over the batch.

Both sources share one call, ``score(queries, prompts, labels) -> RewardResult``, and ``close()``.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from openrlhf.config import ConfigError, RewardConfig
from openrlhf.utils.errors import UserError

_T = TypeVar("_T")


class RewardError(RuntimeError):
    """A reward could not be computed; the message names the URL or file that failed."""


class RewardServiceError(RewardError):
    """The reward HTTP service failed: down, timing out, answering 4xx/5xx, or answering nonsense."""


class RewardRequestRejected(RewardServiceError):
    """A reward server answered 4xx: the request itself is bad, so another replica would refuse it too."""


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
#
# What answers may hold (OpenRLHF's reward functions and servers send all of these):
#   rewards, scores:  a list / torch tensor / numpy array of one number per sample; items may be
#                     numbers, bools, 0-d or 1-element tensors, or 1-element lists ([[r0], [r1]], shape
#                     (n, 1) or (1, n)); a single number only when the batch has one sample.
#   extra_logs[name]: a number (the batch's value), or one value per sample (averaged; None skipped).
#   components[name]: one number or None per sample.


def _plain(value: Any) -> Any:
    """Tensors, arrays and numpy scalars as Python numbers and lists; anything else unchanged."""
    if isinstance(value, (str, bytes, list, tuple, Mapping)) or value is None:
        return value
    if hasattr(value, "detach"):  # torch: off the graph (and off the GPU) first
        value = value.detach().cpu()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def describe_value(value: Any, limit: int = 300) -> str:
    """A short description of what a reward source returned: types and shapes, a few values."""
    text = _describe(value, 0)
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def _describe(value: Any, depth: int) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype") and not isinstance(value, (int, float)):
        kind = type(value)
        return f"{kind.__module__.split('.')[0]}.{kind.__name__}(shape={tuple(shape)}, dtype={value.dtype})"
    if isinstance(value, Mapping):
        if depth > 1:
            return f"dict[{len(value)}]"
        items = [f"{key!r}: {_describe(item, depth + 1)}" for key, item in list(value.items())[:8]]
        return "{" + ", ".join(items) + (", ..." if len(value) > 8 else "") + "}"
    if isinstance(value, (list, tuple)):
        kinds = sorted({type(v).__name__ for v in value})
        head = ", ".join(_describe(v, depth + 2) if depth < 2 else type(v).__name__ for v in value[:3])
        more = ", ..." if len(value) > 3 else ""
        of = f" of {'/'.join(kinds)}" if kinds else ""
        return f"{type(value).__name__}[{len(value)}]{of}: [{head}{more}]"
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + " ..."


def _as_number(value: Any, what: str, where: str, allow_nan: bool) -> float:
    """One sample's value: a number, a bool, a 0-d / 1-element tensor or list."""
    value = _plain(value)
    while isinstance(value, (list, tuple)) and len(value) == 1:
        value = _plain(value[0])
    if value is None and allow_nan:  # a component the sample's recipe does not have
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)):
        raise RewardError(f"{where}: {what} is {describe_value(value, 120)}, not a number")
    value = float(value)
    if not allow_nan and not math.isfinite(value):
        raise RewardError(f"{where}: {what} is {value}, not a finite number")
    return value


def _per_sample(values: Any, n: int) -> Any:
    """``values`` as a list when it is one: (1, n) rows become n values."""
    values = _plain(values)
    if isinstance(values, tuple):
        values = list(values)
    if isinstance(values, list) and len(values) == 1 and n != 1:
        inner = _plain(values[0])
        if isinstance(inner, (list, tuple)) and len(inner) == n:
            return list(inner)
    return values


def _float_list(values: Any, n: int, what: str, where: str, allow_nan: bool = False) -> list[float]:
    values = _per_sample(values, n)
    if isinstance(values, (int, float)):  # bools too
        if n == 1:
            return [_as_number(values, f"'{what}'", where, allow_nan)]
        raise RewardError(
            f"{where}: '{what}' is one number ({values!r}) for {n} samples: give one value per sample "
            "(a reward_func gets the whole batch in one call)"
        )
    if not isinstance(values, list):
        raise RewardError(f"{where}: '{what}' must be a list of {n} numbers, got {describe_value(values, 120)}")
    if len(values) != n:
        raise RewardError(f"{where}: '{what}' has {len(values)} values for {n} samples")
    return [_as_number(value, f"'{what}'[{i}]", where, allow_nan) for i, value in enumerate(values)]


def _log_value(value: Any, n: int, name: str, where: str) -> float | None:
    """One extra_logs entry as the batch's value: a number as it is, per-sample values averaged
    (None and NaN skipped; None when nothing is left)."""
    what = f"'extra_logs'[{name!r}]"
    values = _per_sample(value, n)
    if not isinstance(values, list) or len(values) == 1:
        values = [values[0] if isinstance(values, list) else values]
    elif len(values) != n:
        raise RewardError(
            f"{where}: {what} has {len(values)} values for {n} samples (send one number, or one per sample)"
        )
    label = (lambda i: what) if len(values) == 1 else (lambda i: f"{what}[{i}]")
    numbers = [_as_number(v, label(i), where, allow_nan=True) for i, v in enumerate(values)]
    kept = [v for v in numbers if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


def parse_reward_payload(payload: Any, n: int, where: str) -> RewardResult:
    """Validate one answer (HTTP JSON body or reward_func return value) for ``n`` samples.

    Accepts ``{"rewards": ..., "scores": ..., "extra_logs": ..., "components": ...}`` (shapes above),
    or bare rewards. Raises :class:`RewardError` naming ``where`` (the URL or file) and the bad key.
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
        raise RewardError(
            f"{where}: 'extra_logs' must be an object of name -> number or per-sample numbers, "
            f"got {describe_value(raw_logs, 120)}"
        )
    for name, value in raw_logs.items():
        logged = _log_value(value, n, str(name), where)
        if logged is not None:
            extra_logs[str(name)] = logged
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


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds a 503 asks to wait (its ``Retry-After``, capped at 60), or None for any other answer."""
    if response.status_code != 503:
        return None
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.0), 60.0)
    except ValueError:
        return None


class RemoteRewardClient:
    """Scores batches on one or more reward servers.

    A batch is cut into chunks of ``batch_size`` samples; chunk ``i`` goes to ``urls[i % len(urls)]``,
    at most ``concurrency`` requests are in flight, and the answers are put back in order. With several
    servers (replicas), one that fails (connection refused, timeout, 5xx) loses its chunk to the next one at
    once and gets no requests for ``replica_cooldown`` seconds, then is tried again; only the last server left
    uses the retries below. ``failovers`` and ``down_urls()`` count it. Connect
    errors, timeouts and 5xx answers are retried ``retries`` times, sleeping ``backoff * 2**k`` seconds
    before retry ``k+1``; a 4xx is not retried. A 503 with ``Retry-After`` (a busy server's back-pressure) is
    waited out and resent without using a retry, for up to ``busy_wait`` seconds in all per request.
    Failures raise :class:`RewardServiceError` naming the URL.
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
        busy_wait: float = 600.0,
        replica_cooldown: float = 30.0,
    ) -> None:
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise ConfigError("RemoteRewardClient needs at least one reward server URL (reward.remote_url)")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"reward.remote_url: {url!r} is not an http(s):// URL")
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
        self.busy_wait = busy_wait
        self.replica_cooldown = replica_cooldown
        self.failovers = 0  # chunks resent to another server because theirs failed
        self._down_until: dict[str, float] = {}
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
                raise UserError(f"reward.token_env: environment variable {reward_cfg.token_env!r} is not set or empty")
        return cls(
            list(urls) if urls is not None else reward_cfg.remote_url,
            timeout=reward_cfg.timeout,
            retries=reward_cfg.retries,
            backoff=reward_cfg.backoff,
            concurrency=reward_cfg.concurrency,
            batch_size=reward_cfg.batch_size,
            token=token,
            busy_wait=reward_cfg.busy_wait,
            replica_cooldown=reward_cfg.replica_cooldown_s,
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
            jobs.append(self._post_any(i, body, semaphore))
        tasks = [asyncio.ensure_future(job) for job in jobs]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one chunk failed for good: the others' answers are of no use
                task.cancel()
            raise
        return merge_results(parts)

    def down_urls(self) -> list[str]:
        """The servers that failed within the last ``replica_cooldown`` seconds."""
        now = time.monotonic()
        return [url for url, until in self._down_until.items() if until > now]

    def _order(self, chunk: int) -> list[str]:
        """Chunk ``chunk``'s servers to try: its own in the rotation first, the ones marked down last."""
        rotated = self.urls[chunk % len(self.urls) :] + self.urls[: chunk % len(self.urls)]
        down = set(self.down_urls())
        return [u for u in rotated if u not in down] + [u for u in rotated if u in down]

    async def _post_any(self, chunk: int, body: dict[str, Any], semaphore: asyncio.Semaphore) -> RewardResult:
        """Chunk ``chunk`` to its server; when that fails, to the next one (see the class docstring)."""
        order = self._order(chunk)
        errors = []
        for k, url in enumerate(order):
            last = k == len(order) - 1
            try:
                return await self._post_with_retries(url, body, semaphore, self.retries if last else 0)
            except RewardRequestRejected:
                raise
            except RewardServiceError as exc:
                if last:
                    if not errors:
                        raise
                    raise RewardServiceError(f"every reward server failed: {'; '.join([*errors, str(exc)])}") from None
                self._down_until[url] = time.monotonic() + self.replica_cooldown
                self.failovers += 1
                errors.append(str(exc))
        raise AssertionError("unreachable")

    async def _post_with_retries(
        self, url: str, body: dict[str, Any], semaphore: asyncio.Semaphore, retries: int
    ) -> RewardResult:
        assert self._http is not None
        n = len(body["query"])
        attempts = retries + 1
        last_error = ""
        attempt = 0
        waited_busy = 0.0
        while attempt < attempts:
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            attempt += 1
            try:
                async with semaphore:
                    response = await self._http.post(url, json=body)
            except httpx.TimeoutException as exc:
                last_error = f"timed out after {self.timeout:g} s ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {str(exc) or 'connection failed'}"
                continue
            retry_after = _retry_after(response)
            if retry_after is not None and waited_busy + retry_after <= self.busy_wait:
                # back-pressure, not a failure: wait as asked and resend, without using a retry
                waited_busy += retry_after
                attempt -= 1
                await asyncio.sleep(retry_after)
                continue
            if response.status_code >= 500:
                last_error = f"HTTP {response.status_code}: {_short(response.text)}"
                continue
            if response.status_code >= 400:
                raise RewardRequestRejected(
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
                raise RewardServiceError(f"{exc} (the answer: {_short(response.text, 300)})") from None
        raise RewardServiceError(
            f"reward server {url} failed after {attempts} attempt{'s' if attempts > 1 else ''} "
            f"(timeout {self.timeout:g} s, backoff {self.backoff:g} s): {last_error}"
        )


def replica_metrics(source: Any) -> dict[str, float]:
    """``reward/failovers`` (chunks resent to another server so far) and ``reward/replicas_down`` (servers in
    their cool-down now) when the run scores on several reward servers; empty otherwise."""
    if not isinstance(source, RemoteRewardClient) or len(source.urls) < 2:
        return {}
    return {"reward/failovers": float(source.failovers), "reward/replicas_down": float(len(source.down_urls()))}


# --------------------------------------------------------------------------- reward_func file


class FileRewardFunction:
    """Rewards from a Python file defining ``reward_func(queries, prompts, labels, **kw)``.

    The function may return a list/tensor/array of rewards, or a dict shaped like the HTTP answer.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RewardFunctionError(f"reward.reward_func: file not found: {self.path}")
        from openrlhf.utils.py_files import import_python_file

        try:
            module = import_python_file(self.path, "_openrlhf_reward_func")
        except Exception as exc:
            raise RewardFunctionError(f"reward.reward_func: importing {self.path} failed: {exc!r}") from exc
        func = getattr(module, "reward_func", None)
        if func is None:
            raise RewardFunctionError(f"reward.reward_func: {self.path} defines no function named 'reward_func'")
        if not callable(func):
            raise RewardFunctionError(f"reward.reward_func: {self.path}: 'reward_func' is not callable")
        self.func = func

    def score(self, queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kw: Any) -> RewardResult:
        """One call with the whole batch; a failure is one :class:`RewardFunctionError` naming the file,
        the call and (for an unusable answer) what came back."""
        _check_batch(queries, prompts, labels)
        if not queries:
            return RewardResult([], [], {}, {})
        n = len(queries)
        call = f"reward_func({n} quer{'y' if n == 1 else 'ies'}, {n} prompts, {n} labels"
        call += "".join(f", {key}=..." for key in kw) + ")"
        try:
            out = self.func(list(queries), list(prompts), list(labels), **kw)
        except Exception as exc:
            shown = repr(exc)
            shown = shown if len(shown) <= 300 else shown[:296] + " ..."
            raise RewardFunctionError(f"{self.path}: reward_func raised {shown} in the call {call}") from exc
        try:
            return parse_reward_payload(out, n, f"{self.path}: reward_func")
        except RewardError as exc:
            raise RewardFunctionError(f"{exc} (the call {call} returned {describe_value(out)})") from None

    def close(self) -> None:
        pass

    def __enter__(self) -> FileRewardFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RewardSource = RemoteRewardClient | FileRewardFunction


def is_reward_func_path(entry: str) -> bool:
    """A ``reward.remote_url`` entry naming a Python reward function file rather than a server."""
    entry = entry.strip()
    return entry.endswith(".py") and not entry.lower().startswith(("http://", "https://"))


def create_reward_source(reward_cfg: RewardConfig, urls: Sequence[str] | None = None) -> RewardSource:
    """The reward source the config asks for: a reward_func file, or the HTTP client.

    ``urls`` (e.g. a locally launched server's URL) is used when ``reward.remote_url`` is empty. A
    ``reward.remote_url`` that is one ``.py`` file is a reward function file, as in OpenRLHF (the config
    already moves it to ``reward.reward_func``; this covers a RewardConfig built without validation).
    """
    remote_url = list(reward_cfg.remote_url)
    reward_func = reward_cfg.reward_func
    if not reward_func and len(remote_url) == 1 and is_reward_func_path(remote_url[0]):
        reward_func, remote_url = remote_url[0], []  # OpenRLHF's --reward.remote_url my_reward.py
    if any(is_reward_func_path(url) for url in remote_url):
        raise ConfigError(
            f"reward.remote_url: {remote_url} mixes a reward function file with reward servers: "
            "give one .py file, or http(s) URLs"
        )
    if reward_func:
        if remote_url or urls:
            raise ConfigError("reward.reward_func and reward servers are exclusive: set one")
        return FileRewardFunction(reward_func)
    if remote_url and urls:
        raise ConfigError(
            "reward.remote_url is set and a local reward server was launched (reward.launch_local_server): set one"
        )
    chosen = list(urls or remote_url)
    if not chosen:
        raise ConfigError(
            "no reward source: set reward.remote_url, reward.reward_func, or reward.launch_local_server: true"
        )
    return RemoteRewardClient.from_config(reward_cfg, urls=chosen)
