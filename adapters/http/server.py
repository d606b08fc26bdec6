"""`kajitori serve`: one aiohttp application for Slack, Typetalk, webhooks and health."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from adapters.bootstrap import Bot, build_bot
from bot.config import Config, Settings

log = logging.getLogger(__name__)

BOT_KEY = web.AppKey("bot", Bot)

# Each edge (Slack, Typetalk, GitHub, CI) adds its routes and chat adapter here: a module path
# with `async def setup(app: web.Application, bot: Bot, settings: Settings) -> None`.
ROUTE_MODULES: list[str] = [
    "adapters.chat.slack",
    "adapters.chat.typetalk",
    "adapters.triggers.github",
    "adapters.triggers.ci",
    "adapters.http.metrics",
]


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    bot = request.app[BOT_KEY]
    try:
        async with asyncio.timeout(2):
            await bot.services.store.ping()
    except Exception as error:
        return web.json_response(
            {"status": "unavailable", "store": type(error).__name__}, status=503
        )
    return web.json_response({"status": "ready"})


async def build_app(bot: Bot, settings: Settings) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[BOT_KEY] = bot
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for name in ROUTE_MODULES:
        module = __import__(name, fromlist=["setup"])
        setup: Callable[[web.Application, Bot, Settings], Awaitable[None]] = module.setup
        await setup(app, bot, settings)
    return app


async def serve(
    config: Config,
    settings: Settings,
    *,
    host: str = "0.0.0.0",
    port: int = 3000,
    socket_mode: bool = False,
) -> None:
    bot = await build_bot(config, settings)
    # A server takes over the jobs of replicas that stopped, and hands its own over when it
    # stops; a shell or `run` does neither, as it leaves soon.
    takeovers = asyncio.create_task(bot.jobs.take_over_forever(config.jobs.takeover_interval))
    bot.background.add(takeovers)
    app = await build_app(bot, settings)
    # What is built by now lives as long as the server: keeping it out of the collector's
    # full passes spares every request an occasional ~80 ms stall (Slack's 3 s ack budget).
    gc.freeze()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.warning("kajitori serving on http://%s:%s", host, port)
    print(f"kajitori serving on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if socket_mode:
        from adapters.chat.slack import run_socket_mode

        bot.background.add(asyncio.create_task(run_socket_mode(app, bot, settings)))
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await bot.close()
