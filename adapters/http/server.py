"""`kajitori serve`'s aiohttp application: health and readiness here; the edges (Slack,
Typetalk, webhooks, metrics) are mounted on it by the composition root. It listens behind
the limits of `adapters.http.limits` (connections, header and body time, body size)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from aiohttp import web

from adapters.http.limits import ConnectionGuard, allow_open_files, new_runner, request_limits
from bot.config import ServerLimits
from bot.kernel import Kernel

log = logging.getLogger(__name__)

GUARD_KEY = web.AppKey("connection_guard", ConnectionGuard)
LIMITS_KEY = web.AppKey("server_limits", ServerLimits)
# Connections the kernel may queue before the server accepts them.
BACKLOG = 1024


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def new_app(kernel: Kernel) -> web.Application:
    limits = kernel.config.server
    guard = ConnectionGuard(limits.max_connections, limits.header_timeout.total_seconds())
    app = web.Application(
        client_max_size=limits.max_body_bytes, middlewares=[request_limits(guard, limits)]
    )
    app[GUARD_KEY] = guard
    app[LIMITS_KEY] = limits

    async def readyz(_request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(2):
                await kernel.services.store.ping()
        except Exception as error:
            return web.json_response(
                {"status": "unavailable", "store": type(error).__name__}, status=503
            )
        return web.json_response({"status": "ready"})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def run(
    app: web.Application,
    *,
    host: str,
    port: int,
    metrics: tuple[web.Application, int] | None = None,
) -> None:
    """Serve `app` until SIGTERM or SIGINT; `metrics`, an application and its own port."""
    # What is built by now lives as long as the server: keeping it out of the collector's
    # full passes spares every request an occasional ~80 ms stall (Slack's 3 s ack budget).
    gc.freeze()
    limits, guard = app[LIMITS_KEY], app[GUARD_KEY]
    guard.max_connections = allow_open_files(limits.max_connections)
    runner = new_runner(app, limits)
    await runner.setup()
    if runner.server is None:
        raise RuntimeError("the aiohttp runner has no server after setup")
    loop = asyncio.get_running_loop()
    # aiohttp's TCPSite, but with the guard in front of each connection's protocol.
    listener = await loop.create_server(
        guard.wrap(runner.server), host, port, backlog=BACKLOG, reuse_address=True
    )
    metrics_runner = None
    if metrics is not None:
        metrics_app, metrics_port = metrics
        metrics_runner = new_runner(metrics_app, limits)
        await metrics_runner.setup()
        await web.TCPSite(metrics_runner, host, metrics_port, backlog=64).start()
        log.warning("metrics on http://%s:%s/metrics", host, metrics_port)
    log.warning("kajitori serving on http://%s:%s", host, port)
    print(f"kajitori serving on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        listener.close()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await runner.cleanup()
