"""slack-bolt's AsyncApp inside `kajitori serve`: POST /slack/events, or Socket Mode.

One Request URL serves slash commands, interactivity and the Events API. The signature
check is bolt's (slack_sdk's SignatureVerifier: v0 HMAC, 5-minute window, 401 on failure).
Listeners run before the response is sent (`process_before_response`), which is safe
because each one only acknowledges and starts a background task; it spares every request
bolt's wait for the acknowledgement, which polls in 10 ms steps.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.chat.slack.chat import SlackChat
from adapters.chat.slack.listeners import SlackListeners
from adapters.chat.slack.pacing import ChannelPacer, UpdateBudget
from adapters.chat.slack.payloads import slash_command_member
from bot.config import Settings, SlackConfig
from bot.kernel import Kernel

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
API_TIMEOUT = 10.0  # seconds, for every Web API call and response_url post
UNREADABLE = {"error": "unreadable request"}
SIGNATURE_WINDOW = 300  # seconds a request's timestamp may be off, as Slack's verifier allows
SLACK_APP_KEY = web.AppKey("slack_app", AsyncApp)
SLACK_LISTENERS_KEY = web.AppKey("slack_listeners", SlackListeners)


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


@dataclass
class SlackConnection:
    """The Web API client and the chat adapter on it, built once with the bot."""

    client: AsyncWebClient
    session: aiohttp.ClientSession
    chat: SlackChat

    async def close(self) -> None:
        await self.chat.close()
        await self.session.close()


def connect(settings: Settings, config: SlackConfig) -> SlackConnection | None:
    """The Web API client, or None when SLACK_BOT_TOKEN is not set."""
    if settings.slack_bot_token is None:
        log.info("Slack is off: SLACK_BOT_TOKEN is not set")
        return None
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=API_TIMEOUT))
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        # slack_sdk joins base and method with urljoin: without the slash, /api would be lost.
        base_url=settings.slack_api_url.rstrip("/") + "/",
        timeout=int(API_TIMEOUT),
        session=session,
        # 429s are waited out by the pacing of every post and edit (pacing.py).
        retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=1)],
        logger=log,
    )
    chat = SlackChat(
        client,
        session,
        pacer=ChannelPacer(config.post_rate, config.post_burst),
        updates=UpdateBudget(config.updates_per_minute),
    )
    return SlackConnection(client, session, chat)


def mount(
    app: web.Application, kernel: Kernel, slack: SlackConnection | None, settings: Settings
) -> None:
    """POST /slack/events: slash commands, interactivity and the Events API."""
    if slack is None:
        app.router.add_post(EVENTS_PATH, _not_configured("SLACK_BOT_TOKEN is not set"))
        return
    listeners = SlackListeners(kernel, slack.chat)
    secret = settings.slack_signing_secret
    bolt = AsyncApp(
        client=slack.client,
        # Without a secret no HTTP route is mounted below; Socket Mode needs none.
        signing_secret=secret.get_secret_value() if secret else "",
        process_before_response=True,
        logger=_bolt_logger(),
        name="kajitori",
    )
    listeners.register(bolt, kernel.config.slack.command)
    bolt.error(_unreadable)
    app[SLACK_APP_KEY] = bolt
    app[SLACK_LISTENERS_KEY] = listeners

    async def close(_app: web.Application) -> None:
        await listeners.close()

    app.on_cleanup.append(close)
    if secret is None:
        log.warning("SLACK_SIGNING_SECRET is not set: %s answers 503", EVENTS_PATH)
        app.router.add_post(EVENTS_PATH, _not_configured("SLACK_SIGNING_SECRET is not set"))
        return

    async def events(request: web.Request) -> web.Response:
        with listeners.admission.acknowledging():
            if not listeners.admission.has_room():
                refused = await _refused_early(request, secret, listeners)
                if refused is not None:
                    return refused
            try:
                bolt_request = await to_bolt_request(request)
            except Exception:
                # bolt reads the body (and nothing else) before it checks the signature, and
                # fails in many ways on one not shaped as Slack's JSON or form: whatever the
                # way, such a body is refused here (401 when unsigned).
                signed = _signed_by_slack(secret, await request.read(), request.headers)
                if not signed:
                    return web.json_response({"error": "invalid signature"}, status=401)
                return web.json_response(UNREADABLE, status=400)
            try:
                response = await bolt.async_dispatch(bolt_request)
            except Exception as error:
                # Raised past bolt's own error handler, which reads the body again.
                _log_unreadable(error)
                return web.json_response(UNREADABLE, status=400)
            if response.status == 404:
                # Signed by Slack (bolt answers 401 otherwise) but for no listener: a shortcut,
                # a view or an action of another app's making. Slack wants 2xx for every
                # authentic request, or it retries and may turn deliveries off.
                return web.Response(status=200)
            return await to_aiohttp_response(response)

    app.router.add_post(EVENTS_PATH, events)


async def _refused_early(
    request: web.Request, secret: SecretStr, listeners: SlackListeners
) -> web.Response | None:
    """The refusal of a signed slash command while the work is past its capacity (and its
    member already has work waiting or running), answered before bolt reads the request:
    shedding load costs a signature check and a form parse, not bolt's whole dispatch, so a
    flood of commands is refused at several times the pace and the acknowledgements of
    everything else keep their time. Anything else (not a slash command, not signed: bolt
    answers 401) goes on to bolt."""
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    body = await request.read()
    if not _signed_by_slack(secret, body, request.headers):
        return None
    try:
        # Read as bolt reads a form: the last of a repeated field wins.
        form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        return None
    command = form.get("command")
    if not command or "ssl_check" in form:
        return None
    refused = listeners.refusal(command, form.get("text", ""), slash_command_member(form))
    if refused is None:
        return None
    # What bolt sends for `ack(response_type="ephemeral", text=...)`.
    return web.json_response({"text": refused, "response_type": "ephemeral"})


async def _unreadable(error: Exception) -> BoltResponse:
    """What bolt raises reaches here only from reading a request that passed the signature
    check (the listeners just acknowledge and hand the work to a task): a field of a type
    Slack never sends. That is the sender's error, 400, rather than bolt's 500."""
    _log_unreadable(error)
    return BoltResponse(status=400, body=UNREADABLE)


def _log_unreadable(error: Exception) -> None:
    log.warning("a signed Slack request could not be read: %s: %s", type(error).__name__, error)


def _signed_by_slack(secret: SecretStr, body: bytes, headers: Mapping[str, str]) -> bool:
    """Slack's v0 signature over the raw bytes (slack_sdk's verifier needs UTF-8 text)."""
    stamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > SIGNATURE_WINDOW:
        return False
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.get_secret_value().encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v0={digest}".encode(), signature.encode())


async def run_socket_mode(app: web.Application, settings: Settings) -> None:
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
