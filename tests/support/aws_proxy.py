"""A delaying, fault-injecting HTTP proxy in front of the AWS sandbox.

Point an AWS client's endpoint at `proxy.url` and every request goes to the sandbox after
`latency` seconds (plus up to `jitter`), so the distance to a real AWS region can be
simulated on loopback. With `fault_rate`, that share of the requests (chosen by a seeded
random generator) never reaches the sandbox and gets an error AWS really sends instead: a
throttling error in the shape of the service's protocol (so botocore reads its code and
retries it as throttling), or an HTTP 5xx. Every request is recorded as a `ProxiedCall`.

    async with AwsProxy(sandbox.url, latency=0.2, fault_rate=0.3, seed=7) as proxy:
        clients = AwsClients(endpoint_url=proxy.url)
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qs, unquote_plus

import aiohttp
from aiohttp import web

Fault = Literal["throttle", "5xx", "denied"]

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
# Hop-by-hop headers, and the ones aiohttp sets itself for the new message.
_SKIP_REQUEST = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
_SKIP_RESPONSE = {
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "date",
    "server",
}


@dataclass
class ProxiedCall:
    service: str  # from the SigV4 credential scope: ecs, ec2, elasticloadbalancing, ...
    region: str
    action: str  # DescribeServices, or METHOD /path for REST services
    status: int = 0
    fault: Fault | None = None
    added: float = 0.0  # latency the proxy added, seconds
    upstream: float = 0.0  # time the sandbox took to answer, seconds

    @property
    def seconds(self) -> float:
        """What the call cost its caller on the wire."""
        return self.added + self.upstream


def _protocol(request_headers: dict[str, str], service: str, body: bytes) -> str:
    if "x-amz-target" in request_headers:
        return "json"
    if service == "ec2":
        return "ec2"
    content_type = request_headers.get("content-type", "")
    if "x-www-form-urlencoded" in content_type or body.startswith(b"Action="):
        return "query"
    if "json" in content_type:
        return "rest-json"
    return "rest-xml"


def _action(request: web.Request, headers: dict[str, str], body: bytes) -> str:
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    if body and "x-www-form-urlencoded" in headers.get("content-type", ""):
        action = parse_qs(body.decode(errors="replace")).get("Action")
        if action:
            return action[0]
    return f"{request.method} {request.path}"


def error_response(protocol: str, fault: Fault, server_error_status: int = 503) -> web.Response:
    """The error AWS sends for `fault`, in the shape botocore parses for `protocol`."""
    request_id = str(uuid.uuid4())
    if fault == "denied":
        status = 403
        code = "AccessDenied"
        message = "User is not authorized to perform this action (refused by the test proxy)"
    elif fault == "throttle":
        status = 400
        code = {"ec2": "RequestLimitExceeded", "query": "Throttling", "rest-xml": "Throttling"}.get(
            protocol, "ThrottlingException"
        )
        message = "Rate exceeded"
    else:
        status = server_error_status
        code = {"ec2": "Unavailable", "query": "ServiceUnavailable"}.get(
            protocol, "ServiceUnavailableException"
        )
        message = "Service is unavailable. Please try again shortly."
    headers = {"x-amzn-RequestId": request_id}
    if protocol in ("json", "rest-json"):
        headers["x-amzn-ErrorType"] = f"{code}:http://internal.amazon.com/coral/"
        body = json.dumps({"__type": code, "message": message})
        content_type = "application/x-amz-json-1.1" if protocol == "json" else "application/json"
        return web.Response(status=status, text=body, content_type=content_type, headers=headers)
    if protocol == "ec2":
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    else:
        kind = "Receiver" if fault == "5xx" else "Sender"
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error>'
            f"<Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    return web.Response(status=status, text=xml, content_type="text/xml", headers=headers)


class AwsProxy:
    def __init__(
        self,
        upstream: str,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        fault_rate: float = 0.0,
        faults: Sequence[Fault] = ("throttle", "5xx"),
        seed: int | None = None,
        server_error_status: int = 503,
        timeout: float = 60.0,
        refuse: Sequence[str] = (),
    ) -> None:
        """`refuse`: requests whose body holds any of these texts get AccessDenied."""
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate is a share of the requests, from 0 to 1")
        self.upstream = upstream.rstrip("/")
        self.latency = latency
        self.jitter = jitter
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.server_error_status = server_error_status
        self.refuse = list(refuse)
        # Requests whose body text this accepts are throttled (botocore retries them).
        self.throttle_when: Callable[[str], bool] | None = None
        self.calls: list[ProxiedCall] = []
        self.url = ""
        self._random = random.Random(seed)
        self._timeout = timeout
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> AwsProxy:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=100),
        )
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AwsProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def reset(self) -> None:
        self.calls.clear()

    @property
    def faults_injected(self) -> list[ProxiedCall]:
        return [c for c in self.calls if c.fault is not None]

    def _pick_fault(self) -> Fault | None:
        if self.fault_rate <= 0 or not self.faults:
            return None
        if self._random.random() >= self.fault_rate:
            return None
        return self._random.choice(self.faults)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        scope = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
        region, service = scope.groups() if scope else ("", "")
        call = ProxiedCall(service=service, region=region, action=_action(request, headers, body))
        self.calls.append(call)
        delay = self.latency + (self._random.uniform(0, self.jitter) if self.jitter else 0.0)
        text = unquote_plus(body.decode(errors="replace"))
        refused = any(r in text for r in self.refuse)
        throttled = self.throttle_when is not None and self.throttle_when(text)
        fault: Fault | None = (
            "denied" if refused else "throttle" if throttled else self._pick_fault()
        )
        if delay > 0:
            await asyncio.sleep(delay)
        call.added = delay
        if fault is not None:
            call.fault = fault
            response = error_response(
                _protocol(headers, service, body), fault, self.server_error_status
            )
            call.status = response.status
            return response
        started = time.monotonic()
        forward = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_REQUEST}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=forward,
            data=body,
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            back = {k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP_RESPONSE}
            call.upstream = time.monotonic() - started
            call.status = upstream.status
            return web.Response(status=upstream.status, body=payload, headers=back)
