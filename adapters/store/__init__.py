"""Store adapters: SQLite for one replica, DynamoDB for several."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

from bot.ports.store import Store


async def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    client_hook: Callable[[Any], None] | None = None,
    retry_mode: str = "standard",
    max_attempts: int = 4,
) -> Store:
    """`sqlite:///path/state.db`, `sqlite://:memory:` or `dynamodb://TABLE?region=R`.

    `client_hook` is called with the AWS client of a store that has one (metrics)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        from adapters.store.sqlite import SqliteStore

        path = url.removeprefix("sqlite://")  # sqlite:///var/lib/x.db -> /var/lib/x.db
        return await SqliteStore.open(":memory:" if path in ("", "/:memory:") else path)
    if parsed.scheme == "dynamodb":
        from adapters.store.dynamodb import DynamoStore

        region = parse_qs(parsed.query).get("region", ["us-east-1"])[0]
        store: Store = await DynamoStore.open(
            parsed.netloc,
            region=region,
            endpoint_url=endpoint_url,
            client_hook=client_hook,
            retry_mode=retry_mode,
            max_attempts=max_attempts,
        )
        return store
    raise ValueError(f"unknown store {url!r}: use sqlite:///PATH or dynamodb://TABLE?region=R")
