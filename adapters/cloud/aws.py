"""AWS clients through aiobotocore: one session, one client per service and region, created
on first use and closed with the bot. Retries use botocore's standard mode (or adaptive)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session


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
        self._lock = asyncio.Lock()

    @property
    def endpoint_url(self) -> str | None:
        return self._endpoint_url

    async def client(self, service: str, region: str) -> Any:
        key = (service, region)
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                creator = self._session.create_client(
                    service,  # type: ignore[call-overload]
                    region_name=region,
                    endpoint_url=self._endpoint_url,
                    config=self._config,
                )
                client = await self._stack.enter_async_context(creator)
                self._clients[key] = client
        return client

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()
