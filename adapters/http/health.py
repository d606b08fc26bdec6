"""`GET /metrics` (Prometheus text format), and the timing of every answer the server gives
to a chat or webhook sender: Slack wants its ack within 3 seconds, so that is the number
to watch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.jobs.manager import JobManager


class ServerMetrics(Protocol):
    """What the server reports and exposes (Prometheus, in `adapters.prometheus`)."""

    def request_answered(self, adapter: str, status: int, seconds: float) -> None: ...
    def watch_running_jobs(self, count: Callable[[], int]) -> None: ...
    def render(self) -> tuple[bytes, str]: ...


# Path prefix -> the adapter label of kajitori_ack_seconds and kajitori_http_requests_total.
ADAPTER_PATHS = (
    ("/slack/", "slack"),
    ("/typetalk/", "typetalk"),
    ("/webhooks/github", "github"),
    ("/webhooks/ci/", "ci"),
)


def adapter_for(path: str) -> str | None:
    for prefix, adapter in ADAPTER_PATHS:
        if path.startswith(prefix):
            return adapter
    return None


def ack_timer(metrics: ServerMetrics) -> Middleware:
    @web.middleware
    async def time_ack(request: web.Request, handler: Handler) -> web.StreamResponse:
        adapter = adapter_for(request.path)
        if adapter is None:
            return await handler(request)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            metrics.request_answered(adapter, status, time.perf_counter() - started)

    return time_ack


def mount(
    app: web.Application, metrics: ServerMetrics, jobs: JobManager, *, exposition: bool = True
) -> None:
    """Time every answer on `app`; serve `GET /metrics` there too unless `exposition` is
    False (it is then served on a port of its own: `metrics_app`)."""
    metrics.watch_running_jobs(lambda: len(jobs.running))
    app.middlewares.append(ack_timer(metrics))
    if exposition:
        app.router.add_get("/metrics", exposition_handler(metrics))


def exposition_handler(metrics: ServerMetrics) -> Handler:
    async def exposition(_request: web.Request) -> web.StreamResponse:
        body, content_type = metrics.render()
        response = web.Response(body=body)
        # The content type carries a `version` parameter that aiohttp's `content_type=` refuses.
        response.headers["Content-Type"] = content_type
        return response

    return exposition


def metrics_app(metrics: ServerMetrics) -> web.Application:
    """`GET /metrics` alone, for `kajitori serve --metrics-port`: scraped on a port that is
    not exposed with the chat and webhook endpoints."""
    app = web.Application(client_max_size=1024)
    app.router.add_get("/metrics", exposition_handler(metrics))
    return app
