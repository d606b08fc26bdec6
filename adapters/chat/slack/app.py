"""slack-bolt's AsyncApp inside `kajitori serve`: POST /slack/events, or Socket Mode.

One Request URL serves slash commands, interactivity and the Events API. The signature
check is bolt's (slack_sdk's SignatureVerifier: v0 HMAC, 5-minute window, 401 on failure).
Listeners run before the response is sent (`process_before_response`), which is safe
because each one only acknowledges and starts a background task; it spares every request
bolt's wait for the acknowledgement, which polls in 10 ms steps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.chat.slack.chat import SlackChat
from adapters.chat.slack.listeners import SlackListeners

if TYPE_CHECKING:
    from adapters.bootstrap import Bot
    from bot.config import Settings

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
API_TIMEOUT = 10.0  # seconds, for every Web API call and response_url post
SLACK_APP_KEY = web.AppKey("slack_app", AsyncApp)


class _ClientCarriesToken(logging.Filter):
    """bolt warns that its `token` goes unused whenever SLACK_BOT_TOKEN is set and a client is
    given; the client given carries that very token, so the warning would only mislead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("kajitori.slack.bolt")
    if not any(isinstance(f, _ClientCarriesToken) for f in logger.filters):
        logger.addFilter(_ClientCarriesToken())
    return logger


def _not_configured(reason: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(_request: web.Request) -> web.Response:
        return web.json_response({"error": f"Slack is not configured: {reason}"}, status=503)

    return answer


async def setup(app: web.Application, bot: Bot, settings: Settings) -> None:
    if settings.slack_bot_token is None:
        log.info("Slack is off: SLACK_BOT_TOKEN is not set")
        app.router.add_post(EVENTS_PATH, _not_configured("SLACK_BOT_TOKEN is not set"))
        return
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=API_TIMEOUT))
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        # slack_sdk joins base and method with urljoin: without the slash, /api would be lost.
        base_url=settings.slack_api_url.rstrip("/") + "/",
        timeout=int(API_TIMEOUT),
        session=session,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        ],
        logger=log,
    )
    chat = SlackChat(client, session)
    bot.services.chat.register(chat)
    listeners = SlackListeners(bot, chat)
    secret = settings.slack_signing_secret
    bolt = AsyncApp(
        client=client,
        # Without a secret no HTTP route is mounted below; Socket Mode needs none.
        signing_secret=secret.get_secret_value() if secret else "",
        process_before_response=True,
        logger=_bolt_logger(),
        name="kajitori",
    )
    listeners.register(bolt, bot.config.slack.command)
    app[SLACK_APP_KEY] = bolt

    async def close() -> None:
        await listeners.close()
        await chat.close()
        await session.close()

    bot.closers.append(close)
    if secret is None:
        log.warning("SLACK_SIGNING_SECRET is not set: %s answers 503", EVENTS_PATH)
        app.router.add_post(EVENTS_PATH, _not_configured("SLACK_SIGNING_SECRET is not set"))
        return

    async def events(request: web.Request) -> web.Response:
        with listeners.admission.acknowledging():
            response = await bolt.async_dispatch(await to_bolt_request(request))
            return await to_aiohttp_response(response)

    app.router.add_post(EVENTS_PATH, events)


async def run_socket_mode(app: web.Application, bot: Bot, settings: Settings) -> None:
    """Receive Slack's requests over a WebSocket instead of at a public Request URL."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    bolt = app.get(SLACK_APP_KEY)
    if bolt is None or settings.slack_app_token is None:
        log.error("Socket Mode needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN (an xapp- token)")
        return
    handler = AsyncSocketModeHandler(bolt, app_token=settings.slack_app_token.get_secret_value())
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.warning("connected to Slack over Socket Mode")
        await asyncio.Event().wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
