"""Service metrics for ``GET /metrics`` (Prometheus text format, via prometheus_client).

Each app gets its own registry, so several servers in one process (tests) do not share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    """Counters for requests, samples, latency, the judge, the verifier and the worker pools."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "remote_rm_requests", "HTTP requests to /get_reward by status code", ["code"], registry=r
        )
        self.samples = Counter("remote_rm_samples", "samples scored", registry=r)
        self.latency = Histogram(
            "remote_rm_request_latency_seconds",
            "time to answer a /get_reward request",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.in_flight = Gauge("remote_rm_requests_in_flight", "requests being scored", registry=r)
        self.judge_calls = Counter("remote_rm_judge_calls", "calls to the LLM judge (each try)", registry=r)
        self.judge_failures = Counter(
            "remote_rm_judge_failures", "samples whose judge call failed and got the fallback", registry=r
        )
        self.math_timeouts = Counter(
            "remote_rm_math_timeouts", "math-verify calls that timed out (scored 0)", registry=r
        )
        self.math_errors = Counter(
            "remote_rm_math_errors", "math-verify calls that crashed or raised (scored 0)", registry=r
        )
        self.component_errors = Counter(
            "remote_rm_component_errors", "reward component calls that raised (scored 0)", ["component"], registry=r
        )
        self.judge_skipped = Counter(
            "remote_rm_judge_skipped", "samples not sent to the judge: its circuit breaker was open", registry=r
        )
        self.generative_rm_calls = Counter(
            "remote_rm_generative_rm_calls", "calls to the generative reward model (each try)", registry=r
        )
        self.generative_rm_failures = Counter(
            "remote_rm_generative_rm_failures",
            "generative_rm orders whose call failed, ran past the budget or had no verdict (given the fallback)",
            registry=r,
        )
        self.generative_rm_skipped = Counter(
            "remote_rm_generative_rm_skipped",
            "generative_rm orders not asked: the reward model's circuit breaker was open (given the fallback)",
            registry=r,
        )
        self.busy_rejections = Counter(
            "remote_rm_busy_rejections", "requests answered 503 (limits.max_in_flight_samples reached)", registry=r
        )
        self.in_flight_samples = Gauge("remote_rm_samples_in_flight", "samples being scored", registry=r)
        self.scoring_timeouts = Counter(
            "remote_rm_scoring_timeouts", "samples over pool.sample_timeout_s alone (scored 0)", registry=r
        )
        self.deadline_fallbacks = Counter(
            "remote_rm_deadline_fallbacks",
            "component values not scored within limits.request_deadline_s (given their fallback)",
            registry=r,
        )
        self.pool_restarts = Gauge(
            "remote_rm_pool_restarts", "workers replaced (timeouts, crashes)", ["pool"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
