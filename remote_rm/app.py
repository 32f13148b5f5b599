"""The FastAPI app: POST /get_reward, GET /health, GET /metrics.

The body of /get_reward is read with a size cap (413 past ``limits.max_body_bytes``, checked on the
Content-Length header and again while streaming) and validated by :mod:`remote_rm.protocol`; a sample
without a label whose recipe needs one is a 422 too (:meth:`remote_rm.scoring.Scorer.check_labels`).
Every 4xx answers ``{"detail": message, "field": name}`` and is logged as a warning (at most once per
30 s per kind, with a count), since OpenRLHF's client only logs the status line. An optional bearer
Back-pressure: while ``limits.max_in_flight_samples`` samples are being scored, a further request gets 503
with ``Retry-After`` (never the first request: one alone is always taken); so does a client address with
``limits.max_requests_per_client`` requests in flight already. An optional bearer
token protects /get_reward and /metrics (compared in constant time; 401 without it); /health stays
open for probes, but without the token it says only ``{"status": "ok"}`` (no recipes, no judge URL).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from remote_rm import __version__
from remote_rm.metrics import CONTENT_TYPE, ServiceMetrics
from remote_rm.protocol import ProtocolError, parse_json, parse_request
from remote_rm.sandbox import FALLBACK, sandbox_mechanism, sandbox_mode
from remote_rm.scoring import Scorer
from remote_rm.settings import ServiceConfig

log = logging.getLogger("remote_rm.app")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ProtocolError(400, None, f"bad Content-Length header {declared[:40]!r}") from None
        if size > limit:
            raise ProtocolError(413, None, f"body of {size} bytes is over the limit of {limit} bytes")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ProtocolError(413, None, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(exc: ProtocolError) -> JSONResponse:
    return JSONResponse(exc.as_dict(), status_code=exc.status)


class _RejectionLog:
    """Logs rejected requests as warnings, at most once per ``every_s`` per (status, field without indices)."""

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = every_s
        self.last: dict[tuple[int, str], float] = {}
        self.suppressed: dict[tuple[int, str], int] = {}

    def __call__(self, exc: ProtocolError) -> None:
        key = (exc.status, (exc.field or "").split("[")[0])
        now = time.monotonic()
        if now - self.last.get(key, -self.every_s) < self.every_s:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return
        self.last[key] = now
        more = self.suppressed.pop(key, 0)
        log.warning(
            "rejected /get_reward: %d %s: %s%s",
            exc.status,
            exc.field or "-",
            exc.message[:500],
            f" (and {more} more like it in the last {self.every_s:.0f} s)" if more else "",
        )


def create_app(config: ServiceConfig, token: str | None = None) -> FastAPI:
    """The reward service for ``config``; ``token`` (if any) is required as ``Authorization: Bearer``."""
    metrics = ServiceMetrics()
    scorer = Scorer(config, metrics)
    expected = f"Bearer {token}".encode() if token else None
    log_rejection = _RejectionLog()
    in_flight = {"samples": 0}
    per_client: dict[str, int] = {}
    sandbox: dict[str, Any] = {"mechanism": None, "used": False}

    def busy(message: str) -> JSONResponse:
        metrics.busy_rejections.inc()
        return JSONResponse(
            {"detail": f"busy: {message}; retry after {config.limits.retry_after_s} s", "field": None},
            status_code=503,
            headers={"Retry-After": str(config.limits.retry_after_s)},
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.monotonic()
        await scorer.start()
        # The code sandbox's mechanism, probed once (a run of print(1), ~50 ms); warned about where code_tests
        # would run with the rlimits-only fallback.
        sandbox["mechanism"] = await asyncio.to_thread(sandbox_mechanism)
        sandbox["used"] = any(c.name == "code_tests" for comps in scorer.recipes.values() for _, c in comps)
        if sandbox["used"] and sandbox_mode() == FALLBACK:
            log.warning(
                "code_tests sandbox: %s (docs/sandbox.md says what that does not contain)", sandbox["mechanism"]
            )
        log.info(
            "remote_rm %s ready in %.1f s: %d scoring workers, WordNet %s",
            __version__,
            time.monotonic() - started,
            scorer.scoring_pool.size,
            scorer.wordnet_status().get("version") or "unavailable",
        )
        try:
            yield
        finally:
            await scorer.close()

    app = FastAPI(title="remote_rm", version=__version__, lifespan=lifespan)
    app.state.scorer = scorer
    app.state.metrics = metrics

    def authorized(request: Request) -> bool:
        if expected is None:
            return True
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, expected)

    def unauthorized() -> JSONResponse:
        return JSONResponse(
            {"detail": "missing or wrong bearer token", "field": "Authorization"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.post("/get_reward")
    async def get_reward(request: Request) -> Response:
        started = time.perf_counter()
        metrics.in_flight.inc()
        code = 200
        try:
            if not authorized(request):
                code = 401
                return unauthorized()
            try:
                body = await _read_body(request, config.limits.max_body_bytes)
                payload = parse_json(body)
                reward_request = parse_request(payload, config.known_tasks(), config.limits.max_samples)
                scorer.check_labels(reward_request)
            except ProtocolError as exc:
                code = exc.status
                log_rejection(exc)
                return _error(exc)
            n = len(reward_request.queries)
            cap = config.limits.max_in_flight_samples
            if cap and in_flight["samples"] and in_flight["samples"] + n > cap:
                code = 503
                return busy(f"{in_flight['samples']} samples are being scored (limits.max_in_flight_samples={cap})")
            client = request.client.host if request.client else "?"
            client_cap = config.limits.max_requests_per_client
            if client_cap and per_client.get(client, 0) >= client_cap:
                code = 503
                return busy(f"{client} has {client_cap} requests in flight (limits.max_requests_per_client)")
            in_flight["samples"] += n
            per_client[client] = per_client.get(client, 0) + 1
            metrics.in_flight_samples.set(in_flight["samples"])
            try:
                result = await scorer.score(reward_request)
            finally:
                in_flight["samples"] -= n
                per_client[client] -= 1
                if not per_client[client]:
                    del per_client[client]
                metrics.in_flight_samples.set(in_flight["samples"])
            return JSONResponse(result)
        except Exception:
            code = 500
            log.exception("scoring failed")
            return JSONResponse({"detail": "internal error while scoring (see the server log)", "field": None}, 500)
        finally:
            metrics.in_flight.dec()
            metrics.requests.labels(str(code)).inc()
            metrics.latency.observe(time.perf_counter() - started)

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        if not authorized(request):
            return {"status": "ok"}
        wordnet = scorer.wordnet_status()
        return {
            "status": "ok",
            "version": __version__,
            "workers": {"scoring": scorer.scoring_pool.size, "math": scorer.math_pool.size if scorer.math_pool else 0},
            "metrics": {
                "meteor": {
                    "available": True,
                    "wordnet": bool(wordnet.get("available")),
                    "wordnet_version": wordnet.get("version"),
                    "matching": "exact+stem+synonym" if wordnet.get("available") else "exact+stem (no WordNet)",
                    "detail": wordnet.get("reason"),
                },
                "bleu": {"available": True},
                "rouge": {"available": True},
                "math_verify": {"available": scorer.math_pool is not None},
                "ovd_map": {"available": True, "library": "pycocotools"},
                "code_tests": {"available": True, "used": sandbox["used"], "sandbox": sandbox["mechanism"]},
                "judge": {
                    "configured": scorer.judge is not None,
                    "base_url": config.judge.base_url if scorer.judge else None,
                },
                "generative_rm": {
                    "configured": scorer.generative is not None,
                    "base_url": config.generative_rm.base_url if scorer.generative else None,
                },
            },
            "recipes": sorted(config.recipes),
            "default_recipe": config.default_recipe,
            "tasks": dict(config.tasks),
        }

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app
