"""What one client may take of `kajitori serve`: connections, time and bytes.

aiohttp bounds the request line and headers by size (`max_line_size`, `max_field_size`,
`max_headers`) and closes a keep-alive connection left idle for `keepalive_timeout`. What
aiohttp leaves open (or does only in its latest releases) is done here:

- `ConnectionGuard` closes a connection that has not sent a request's complete headers within
  `header_timeout` of its start or of the end of the previous answer, and caps the open
  connections. At the cap a new connection does not wait in the listen queue behind slow
  ones (or fail for want of file descriptors): the oldest connection that is not having a
  request handled (idle, or still sending its headers or body) is closed to make room. Only
  when every connection is busy in a handler is the new one answered 503.
- `request_limits` reads each body within `body_timeout` (408 past it) and within the
  endpoint's size (413): the chat and webhook endpoints take up to `max_body_bytes`, the
  others (health, readiness, metrics) next to nothing.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.config import ServerLimits

log = logging.getLogger(__name__)

# Paths whose senders post bodies (Slack, Typetalk, GitHub, CIs): they get `max_body_bytes`.
BODY_PATHS = ("/slack/", "/typetalk/", "/webhooks/")
# Everything else (GET /healthz, /readyz, /metrics) has no use for a body.
SMALL_BODY_BYTES = 1024
# Files the process keeps for itself beyond its connections (store, logs, AWS, tunnels).
RESERVED_FILES = 256
# Time aiohttp spends draining a body nobody read after answering, before it closes.
LINGERING_SECONDS = 1.0
# How often, at most, the guard says that it closes connections to make room.
REPORT_EVERY = 60.0

_BUSY_BODY = b'{"error": "too many connections, each one busy: try again shortly"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class ConnectionGuard:
    """Counts open connections and times their requests' headers; at the cap, makes room by
    closing the connection waiting longest."""

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._open: set[asyncio.Transport] = set()
        # Connections with no request being handled, the one waiting longest first, with
        # the deadline for their headers (None once the headers are in and the body comes).
        self._waiting: dict[asyncio.Transport, asyncio.TimerHandle | None] = {}
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0
        self._reported_at = 0.0
        self._unreported = 0

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """The protocol factory to listen with: aiohttp's own, behind the guard."""
        return lambda: _GuardedProtocol(self, factory())

    def opened(self, transport: asyncio.Transport) -> bool:
        """Admit a new connection (closing the oldest waiting one if need be), or refuse it."""
        if len(self._open) >= self.max_connections:
            if not self._waiting:
                self.refused += 1
                return False
            oldest = next(iter(self._waiting))
            self.closed(oldest)
            oldest.abort()
            self.evicted += 1
            self._report()
        self._open.add(transport)
        self._wait(transport)
        return True

    def closed(self, transport: asyncio.Transport) -> None:
        self._open.discard(transport)
        self._stop_waiting(transport)

    def headers_in(self, transport: asyncio.Transport) -> None:
        """A request's headers arrived in time; its body (if any) is timed by the middleware."""
        deadline = self._waiting.get(transport)
        if deadline is not None:
            deadline.cancel()
            self._waiting[transport] = None

    def handling(self, transport: asyncio.Transport) -> None:
        """A whole request is in and is being answered: not to be closed to make room."""
        self._stop_waiting(transport)

    def idle(self, transport: asyncio.Transport) -> None:
        """Answered: the connection waits for its next request, at the back of the queue."""
        if transport in self._open:
            self._stop_waiting(transport)
            self._wait(transport)

    def _wait(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        self._waiting[transport] = loop.call_later(self.header_timeout, self._expire, transport)

    def _stop_waiting(self, transport: asyncio.Transport) -> None:
        deadline = self._waiting.pop(transport, None)
        if deadline is not None:
            deadline.cancel()

    def _expire(self, transport: asyncio.Transport) -> None:
        """No complete headers within `header_timeout` of the start or of the last answer."""
        if self._waiting.get(transport) is not None:
            self.closed(transport)
            transport.abort()
            self.timed_out += 1

    def _report(self) -> None:
        self._unreported += 1
        now = time.monotonic()
        if now - self._reported_at >= REPORT_EVERY:
            log.warning(
                "connection cap (%d) reached: closed %d connection(s) that had not sent a "
                "whole request, to make room for new ones",
                self.max_connections,
                self._unreported,
            )
            self._reported_at, self._unreported = now, 0


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, admitted and counted by the guard."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):
            raise TypeError(f"a stream transport was expected, not {transport!r}")
        if not self._guard.opened(transport):
            transport.write(_BUSY)
            transport.close()
            return
        self._transport = transport
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._guard.closed(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._inner.resume_writing()


def body_limit(path: str, limits: ServerLimits) -> int:
    return limits.max_body_bytes if path.startswith(BODY_PATHS) else SMALL_BODY_BYTES


def _refuse(status: int, error: str, *, close: bool = False) -> web.Response:
    response = web.json_response({"error": error}, status=status)
    if close:
        response.force_close()
    # Otherwise aiohttp drains what is left of the body for LINGERING_SECONDS at most, then
    # closes: closing at once could reset the connection before the sender reads the answer.
    return response


def request_limits(guard: ConnectionGuard, limits: ServerLimits) -> Middleware:
    """Read each body within the time and size its endpoint allows, before any handler."""
    body_seconds = limits.body_timeout.total_seconds()

    @web.middleware
    async def limit_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            guard.headers_in(transport)
        try:
            if request.body_exists:
                cap = body_limit(request.path, limits)
                length = request.content_length
                if length is not None and length > cap:
                    return _refuse(413, f"body too large: {length} bytes, at most {cap} here")
                if length is None and cap < limits.max_body_bytes:
                    return _refuse(411, "a body here needs a Content-Length")
                try:
                    async with asyncio.timeout(body_seconds):
                        await request.read()
                except TimeoutError:
                    return _refuse(
                        408,
                        f"the body did not arrive within {body_seconds:g} s: send it whole",
                        close=True,
                    )
                except web.HTTPRequestEntityTooLarge:
                    return _refuse(413, f"body too large: at most {cap} bytes here")
            if transport is not None:
                guard.handling(transport)
            return await handler(request)
        finally:
            if transport is not None:
                guard.idle(transport)

    return limit_request


def new_runner(app: web.Application, limits: ServerLimits) -> web.AppRunner:
    """aiohttp's runner for `app`, with aiohttp's own bounds set."""
    return web.AppRunner(
        app,
        access_log=None,
        # Idle keep-alive connections go after the header timeout too.
        keepalive_timeout=limits.header_timeout.total_seconds(),
        max_line_size=8190,
        max_field_size=8190,
        max_headers=100,
        lingering_time=LINGERING_SECONDS,
    )


def allow_open_files(max_connections: int) -> int:
    """Raise this process's open-files limit to what `max_connections` needs (a service
    manager's default soft limit is often 1024, fewer than a cap of 1,024 plus the rest).
    Returns the cap the limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + RESERVED_FILES
    if hard != resource.RLIM_INFINITY and hard < wanted:
        wanted = hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    room = max_connections if soft == resource.RLIM_INFINITY else soft - RESERVED_FILES
    if room < max_connections:
        log.warning(
            "the open-files limit (%d) allows %d connections, not server.max_connections=%d: "
            "raise the limit (e.g. systemd LimitNOFILE) to allow more",
            soft,
            max(room, 8),
            max_connections,
        )
        return max(room, 8)
    return max_connections
