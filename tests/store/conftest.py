"""The store under test: every contract test runs once on SQLite (a file, as in production)
and once on DynamoDB (the sandbox's, over HTTP, a fresh table per test).

The DynamoDB tests need no demo seed, only the sandbox's server: a table of their own
isolates them, so they skip the per-test reset that the `sandbox` fixture does."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.store.dynamodb import DynamoStore
from adapters.store.sqlite import SqliteStore
from bot.ports.store import Store

REGION = "ap-northeast-1"


def table_name() -> str:
    return f"kajitori-test-{secrets.token_hex(4)}"


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(str(tmp_path / "state.db"))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def dynamo_store(sandbox_server: Any) -> AsyncIterator[DynamoStore]:
    store = await DynamoStore.open(table_name(), region=REGION, endpoint_url=sandbox_server.url)
    try:
        yield store
    finally:
        await store.client.delete_table(TableName=store.table)
        await store.close()


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Store:
    name = "sqlite_store" if request.param == "sqlite" else "dynamo_store"
    chosen: Store = request.getfixturevalue(name)
    return chosen
