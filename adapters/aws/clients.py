"""AWS clients through aiobotocore: one session, one client per service and region, created
on first use and closed with the bot. Retries use botocore's standard mode (or adaptive)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError


def explain_aws_failure(error: BaseException) -> str | None:
    """What an AWS call that failed after botocore's retries did, in one sentence; None
    for anything that is not an AWS error (it stays an internal error)."""
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        retries = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        tries = f" after {retries + 1} attempts" if retries else ""
        message = f" ({detail['Message']})" if detail.get("Message") else ""
        return f"AWS {error.operation_name} failed{tries}: {detail.get('Code', '?')}{message}"
    if isinstance(error, BotoCoreError):
        return f"AWS could not be reached: {error}"
    return None


class AwsClients:
    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        retry_mode: str = "standard",
        max_attempts: int = 5,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
    ) -> None:
        self._session: AioSession = get_session()
        self._endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        self._config = AioConfig(
            retries={"mode": retry_mode, "max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=50,
        )
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str, str], Any] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._client_hooks: list[Callable[[Any], None]] = []

    @property
    def endpoint_url(self) -> str | None:
        return self._endpoint_url

    def add_client_hook(self, hook: Callable[[Any], None]) -> None:
        """Call `hook(client)` on every client, existing and future (metrics register
        botocore event handlers this way)."""
        self._client_hooks.append(hook)
        for client in self._clients.values():
            hook(client)

    async def client(self, service: str, region: str) -> Any:
        key = (service, region)
        client = self._clients.get(key)
        if client is not None:
            return client
        # One lock per client, so that creating clients for many services and regions at once
        # (a `limits` fan-out) happens concurrently, and each client is still created once.
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            client = self._clients.get(key)
            if client is None:
                creator = self._session.create_client(
                    service,  # type: ignore[call-overload]
                    region_name=region,
                    endpoint_url=self._endpoint_url,
                    config=self._config,
                )
                client = await self._stack.enter_async_context(creator)
                for hook in self._client_hooks:
                    hook(client)
                self._clients[key] = client
        return client

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()
