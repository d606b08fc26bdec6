"""Socket Mode: the same listeners, fed over a WebSocket instead of the Request URL."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from pydantic import SecretStr

from adapters.bootstrap import build_bot, build_web_app
from adapters.chat.slack import run_socket_mode
from bot.config import Settings, parse_config
from tests.slack.conftest import BOT_TOKEN, slack_config
from tests.support.fake_slack import FakeSlack, SlackSender

APP_TOKEN = "xapp-1-A0KAJITORI-0000-socketmodetesttoken"


class FakeSocketModeServer:
    """Slack's side of a Socket Mode connection: sends envelopes, collects acknowledgements."""

    def __init__(self) -> None:
        self.acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.connected = asyncio.Event()
        self._socket: web.WebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FakeSocketModeServer:
        app = web.Application()
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/link"
        return self

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json({"type": "hello", "num_connections": 1})
        self.connected.set()
        async for message in socket:
            if message.type is WSMsgType.TEXT:
                await self.acks.put(json.loads(message.data))
        return socket

    async def send(self, envelope: dict[str, Any]) -> None:
        assert self._socket is not None
        await self._socket.send_json(envelope)


@pytest.fixture
async def socket_server() -> AsyncIterator[FakeSocketModeServer]:
    server = await FakeSocketModeServer().start()
    try:
        yield server
    finally:
        await server.stop()


async def test_socket_mode_slash_command_is_acknowledged_and_answered(
    sandbox: Any, fake_slack: FakeSlack, socket_server: FakeSocketModeServer, tmp_path: Path
) -> None:
    fake_slack.api.responders["/api/apps.connections.open"] = lambda _r: {
        "ok": True,
        "url": socket_server.url,
    }
    settings = Settings(
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_app_token=SecretStr(APP_TOKEN),
        slack_api_url=fake_slack.api_url,
        aws_endpoint_url=sandbox.url,
    )
    bot = await build_bot(parse_config(slack_config(tmp_path)), settings, runner="test")
    try:
        app = build_web_app(bot)
        connection = asyncio.create_task(run_socket_mode(app, settings))
        try:
            async with asyncio.timeout(20):
                await socket_server.connected.wait()
            # The app token, not the bot token, opened the connection.
            opened = fake_slack.api.calls("/api/apps.connections.open")
            assert opened[0].headers["Authorization"] == f"Bearer {APP_TOKEN}"

            payload = SlackSender("", "", fake_slack.url).slash_body("status api staging")
            await socket_server.send(
                {
                    "envelope_id": "env-1",
                    "type": "slash_commands",
                    "accepts_response_payload": True,
                    "payload": payload,
                }
            )
            async with asyncio.timeout(20):
                ack = await socket_server.acks.get()
            assert ack["envelope_id"] == "env-1"
            assert ack["payload"] == {"text": "", "response_type": "in_channel"}
            await fake_slack.wait_for(lambda: any("api in staging" in t for t in fake_slack.said()))
        finally:
            connection.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connection
    finally:
        await bot.close()
