"""A local HTTP server that stands in for a chat's Web API (Slack, Typetalk) and records
every request the bot sends it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

Responder = Callable[["Recorded"], Any]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    form: dict[str, str] = field(default_factory=dict)
    json: Any = None


class RecordingApi:
    """Answers `responders[path](request)` (a JSON-able value), else `{"ok": true}`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.responders: dict[str, Responder] = {}
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self.url = ""

    async def start(self) -> RecordingApi:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorded = Recorded(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            query=dict(request.query),
            body=body,
        )
        content_type = request.headers.get("Content-Type", "")
        if "json" in content_type and body:
            recorded.json = json.loads(body)
        elif "form" in content_type:
            recorded.form = dict(parse_qsl(body.decode()))
        self.requests.append(recorded)
        self._changed.set()
        responder = self.responders.get(request.path)
        payload = responder(recorded) if responder else {"ok": True}
        if isinstance(payload, web.StreamResponse):
            return payload
        return web.json_response(payload)

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(
        self, predicate: Callable[[list[Recorded]], bool], timeout: float = 20.0
    ) -> list[Recorded]:
        """Wait until `predicate(self.requests)` holds; fail with what was recorded."""
        async with asyncio.timeout(timeout):
            while not predicate(self.requests):
                self._changed.clear()
                await self._changed.wait()
        return self.requests
