"""Services of one cluster read at once share DescribeServices calls (up to ten services a
call), each reader still gets its own service, and no reader gets an answer older than its
question."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest

from adapters.aws.clients import AwsClients
from adapters.aws.ecs import AwsEcs
from bot.config import AwsScope, EcsTarget
from bot.errors import Refused
from sandbox.seed import add_services_like

REGION = "ap-northeast-1"
SCOPE = AwsScope(None, REGION)


class Calls:
    """The DescribeServices calls the clients make: the services asked in each."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def hook(self, client: Any) -> None:
        def before(params: dict[str, Any], model: Any, **_: Any) -> None:
            if model.name == "DescribeServices":
                self.asked.append(list(params["services"]))

        client.meta.events.register("before-parameter-build.ecs.DescribeServices", before)


@pytest.fixture
async def ecs(sandbox: Any) -> AsyncIterator[tuple[AwsEcs, Calls]]:
    clients = AwsClients(endpoint_url=sandbox.url)
    calls = Calls()
    clients.add_client_hook(calls.hook)
    try:
        yield AwsEcs(clients), calls
    finally:
        await clients.close()


def add_services(sandbox: Any, count: int) -> list[str]:
    client = boto3.client(
        "ecs",
        endpoint_url=sandbox.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    names = [f"svc-{n:02d}" for n in range(count)]
    add_services_like(client, "staging", names, desired=1)
    return names


def target(service: str) -> EcsTarget:
    return EcsTarget(cluster="staging", service=service, container="app")


async def test_many_services_read_at_once_share_calls_of_up_to_ten(
    sandbox: Any, ecs: tuple[AwsEcs, Calls]
) -> None:
    aws, calls = ecs
    names = add_services(sandbox, 25)
    states = await asyncio.gather(*(aws.describe_service(SCOPE, target(n)) for n in names))
    assert [s.service for s in states] == names
    assert all(s.cluster == "staging" and s.desired == 1 for s in states)
    # The first read alone at once; the 24 asked meanwhile in calls of ten at most.
    assert len(calls.asked) <= 4
    assert all(len(asked) <= 10 for asked in calls.asked)
    assert sorted(n for asked in calls.asked for n in asked) == sorted(names)


async def test_a_missing_service_is_refused_and_the_others_still_answered(
    sandbox: Any, ecs: tuple[AwsEcs, Calls]
) -> None:
    aws, calls = ecs
    names = add_services(sandbox, 3)
    asked = [*names[:2], "nope", names[2], "api"]
    results = await asyncio.gather(
        *(aws.describe_service(SCOPE, target(n)) for n in asked), return_exceptions=True
    )
    missing = results[2]
    assert isinstance(missing, Refused)
    assert "ECS service staging/nope not found (MISSING)" in str(missing)
    found = [r for r in results if not isinstance(r, BaseException)]
    assert [s.service for s in found] == [*names, "api"]
    # The same service asked twice at once is asked of ECS once.
    twice = await asyncio.gather(*(aws.describe_service(SCOPE, target("api")) for _ in range(2)))
    assert twice[0] == twice[1]
    assert calls.asked[-1] == ["api"]


async def test_a_read_asked_during_a_call_waits_for_the_next_one(
    sandbox: Any, ecs: tuple[AwsEcs, Calls]
) -> None:
    aws, calls = ecs
    first = asyncio.create_task(aws.describe_service(SCOPE, target("api")))
    await asyncio.sleep(0)  # the first call is under way
    second = asyncio.create_task(aws.describe_service(SCOPE, target("api")))
    await asyncio.gather(first, second)
    assert calls.asked == [["api"], ["api"]]


async def test_a_reader_cancelled_while_its_call_runs_cancels_no_one_else(
    sandbox: Any, ecs: tuple[AwsEcs, Calls]
) -> None:
    aws, _calls = ecs
    names = add_services(sandbox, 4)
    readers = [asyncio.create_task(aws.describe_service(SCOPE, target(n))) for n in names]
    await asyncio.sleep(0)
    readers[1].cancel()
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    assert [r.service for r in results if not isinstance(r, BaseException)] == [
        names[0],
        *names[2:],
    ]
