"""What only the DynamoDB store does: the table it creates (and the CloudFormation template
that declares the same table), expiry attributes, replicas sharing one table, and guarded
writes that stay right when botocore retries a write whose answer was lost."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from adapters.store import open_store
from adapters.store.dynamodb import (
    TTL_ATTRIBUTE,
    DynamoStore,
    StoreTableMissing,
    from_attribute,
    table_definition,
    to_attribute,
)
from bot.model import (
    ApprovalRequest,
    JobRecord,
    LockRecord,
    Origin,
    RequestKind,
    RequestStatus,
)
from tests.store.conftest import REGION, table_name

TEMPLATE = Path(__file__).parent.parent.parent / "deploy" / "dynamodb-table.yaml"


def lock(key: str = "api/staging", lease: timedelta = timedelta(minutes=2)) -> LockRecord:
    now = datetime.now(UTC)
    return LockRecord(
        key=key,
        owner="slack:U1",
        token=secrets.token_hex(8),
        acquired_at=now,
        expires_at=now + lease,
    )


async def test_open_creates_the_table_with_ttl_and_the_running_index(
    dynamo_store: DynamoStore,
) -> None:
    client, table = dynamo_store.client, dynamo_store.table
    described = (await client.describe_table(TableName=table))["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert {k["AttributeName"]: k["KeyType"] for k in described["KeySchema"]} == {
        "pk": "HASH",
        "sk": "RANGE",
    }
    (index,) = described["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "running"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["running", "sk"]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = (await client.describe_time_to_live(TableName=table))["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}


def test_cloudformation_template_declares_the_table_the_store_creates() -> None:
    template = yaml.safe_load(TEMPLATE.read_text())
    (resource,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    declared = resource["Properties"]
    created = table_definition("any")
    for key in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes"):
        assert declared[key] == created[key], key
    assert declared["TimeToLiveSpecification"] == {
        "AttributeName": TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert declared["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


async def test_expiring_records_carry_the_ttl_attribute(dynamo_store: DynamoStore) -> None:
    client, table = dynamo_store.client, dynamo_store.table
    expires = datetime(2030, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)
    assert await dynamo_store.first_seen("slack:Ev42", expires)
    seen = await client.get_item(
        TableName=table, Key={"pk": {"S": "seen#slack:Ev42"}, "sk": {"S": "-"}}
    )
    assert seen["Item"][TTL_ATTRIBUTE] == {"N": str(int(expires.timestamp()) + 1)}

    held = lock()
    await dynamo_store.acquire_lock(held, datetime.now(UTC))
    item = await client.get_item(TableName=table, Key={"pk": {"S": "lock"}, "sk": {"S": held.key}})
    ttl = int(item["Item"][TTL_ATTRIBUTE]["N"])
    # An expired lock is kept a day, to be shown as such, before DynamoDB removes it.
    assert ttl - held.expires_at.timestamp() == pytest.approx(86400, abs=1)


async def test_a_second_replica_on_the_same_table_sees_the_first_ones_records(
    dynamo_store: DynamoStore, sandbox_server: Any
) -> None:
    other = await DynamoStore.open(
        dynamo_store.table, region=REGION, endpoint_url=sandbox_server.url, create=False
    )
    try:
        first = lock()
        await dynamo_store.acquire_lock(first, datetime.now(UTC))
        assert (await other.acquire_lock(lock(), datetime.now(UTC))).token == first.token
        assert await other.first_seen("github:delivery-1", datetime.now(UTC) + timedelta(hours=1))
        assert not await dynamo_store.first_seen(
            "github:delivery-1", datetime.now(UTC) + timedelta(hours=1)
        )
        ids = await asyncio.gather(
            *(store.next_id("job") for store in (dynamo_store, other) for _ in range(10))
        )
        assert sorted(ids) == list(range(1, 21)), ids
    finally:
        await other.close()


async def test_replicas_starting_together_create_the_table_once(sandbox_server: Any) -> None:
    name = table_name()
    stores = await asyncio.gather(
        *(DynamoStore.open(name, region=REGION, endpoint_url=sandbox_server.url) for _ in range(3))
    )
    try:
        await stores[0].put_job(
            JobRecord(
                id=1,
                command="deploy api staging v2",
                title="deploy",
                member="local:alice",
                origin=Origin(adapter="local", channel="local", member="local:alice"),
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
        )
        assert [j.id for j in await stores[2].list_jobs()] == [1]
    finally:
        await stores[0].client.delete_table(TableName=name)
        for store in stores:
            await store.close()


async def test_open_without_create_refuses_a_missing_table(sandbox_server: Any) -> None:
    with pytest.raises(StoreTableMissing, match=r"deploy/dynamodb-table\.yaml"):
        await DynamoStore.open(
            table_name(), region=REGION, endpoint_url=sandbox_server.url, create=False
        )


async def test_store_url_opens_the_dynamodb_store_in_its_region(sandbox_server: Any) -> None:
    name = table_name()
    store = await open_store(f"dynamodb://{name}?region=eu-west-1", endpoint_url=sandbox_server.url)
    try:
        assert isinstance(store, DynamoStore)
        assert store.table == name
        assert store.client.meta.region_name == "eu-west-1"
        await store.ping()
    finally:
        assert isinstance(store, DynamoStore)
        await store.client.delete_table(TableName=name)
        await store.close()


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -17,
        10**30,
        0.5,
        -2.0,
        1e-7,
        "",
        "日本語 🚀",
        [],
        [1, "two", None, [3.5]],
        {"nested": {"a": [True, {"b": ""}]}, "": 1},
    ],
)
def test_attribute_values_round_trip(value: Any) -> None:
    back = from_attribute(to_attribute(value))
    assert back == value
    assert type(back) is type(value)


class LostAnswerProxy:
    """Forwards DynamoDB requests, but for the first `count` calls of `operation` answers
    500 after DynamoDB has applied them: the answer is lost and botocore retries a write
    that already happened."""

    def __init__(self, upstream: str, operation: str, count: int = 1) -> None:
        self.upstream = upstream
        self.operation = operation
        self.left = count
        self.lost: list[bytes] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LostAnswerProxy:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding")
        }
        async with self._session.post(self.upstream, data=body, headers=headers) as upstream:
            payload = await upstream.read()
            status, content_type = upstream.status, upstream.content_type
        target = request.headers.get("X-Amz-Target", "")
        if target.endswith("." + self.operation) and self.left > 0:
            self.left -= 1
            self.lost.append(payload)
            return web.json_response(
                {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError"},
                status=500,
                content_type="application/x-amz-json-1.0",
            )
        return web.Response(status=status, body=payload, content_type=content_type)


@pytest.fixture
async def table(sandbox_server: Any) -> AsyncIterator[str]:
    """A fresh table, made by a store that talks to DynamoDB directly."""
    store = await DynamoStore.open(table_name(), region=REGION, endpoint_url=sandbox_server.url)
    try:
        yield store.table
    finally:
        await store.client.delete_table(TableName=store.table)
        await store.close()


@contextlib.asynccontextmanager
async def behind(proxy: LostAnswerProxy, table: str) -> AsyncIterator[DynamoStore]:
    async with proxy:
        store = await DynamoStore.open(table, region=REGION, endpoint_url=proxy.url)
        try:
            yield store
        finally:
            await store.close()


async def test_first_seen_recognises_its_own_write_after_a_lost_answer(
    sandbox_server: Any, table: str
) -> None:
    proxy = LostAnswerProxy(sandbox_server.url, "PutItem")
    later = datetime.now(UTC) + timedelta(minutes=5)
    async with behind(proxy, table) as store:
        assert await store.first_seen("slack:EvLost", later)
        assert proxy.lost, "the first answer was not lost"
        assert not await store.first_seen("slack:EvLost", later)


async def test_decide_request_recognises_its_own_write_after_a_lost_answer(
    sandbox_server: Any, table: str
) -> None:
    proxy = LostAnswerProxy(sandbox_server.url, "UpdateItem")
    now = datetime.now(UTC)
    async with behind(proxy, table) as store:
        await store.put_request(
            ApprovalRequest(
                id=1,
                kind=RequestKind.APPROVAL,
                command="deploy api production v2",
                member="slack:U1",
                origin=Origin(adapter="slack", channel="slack:C1", member="slack:U1"),
                env="production",
                summary="deploy api v2 to production",
                created_at=now,
                expires_at=now + timedelta(minutes=30),
            )
        )
        assert await store.decide_request(1, RequestStatus.APPROVED, "slack:U2", now)
        assert proxy.lost
        assert not await store.decide_request(1, RequestStatus.DENIED, "slack:U3", now)
        decided = await store.get_request(1)
        assert decided is not None and decided.decided_by == "slack:U2"


async def test_swap_value_and_lock_recognise_their_own_writes_after_a_lost_answer(
    sandbox_server: Any, table: str
) -> None:
    proxy = LostAnswerProxy(sandbox_server.url, "PutItem", count=2)
    async with behind(proxy, table) as store:
        assert await store.swap_value("level", None, "80")
        wanted = lock()
        assert (await store.acquire_lock(wanted, datetime.now(UTC))).token == wanted.token
        assert len(proxy.lost) == 2
        assert not await store.swap_value("level", None, "90")
        assert (await store.acquire_lock(lock(), datetime.now(UTC))).token == wanted.token
