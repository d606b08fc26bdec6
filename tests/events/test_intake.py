"""Events other than alarms, as AWS documents them, put on the bus with PutEvents and
delivered to the queue by the rule: routed per environment, changes made outside kajitori
said as such, ignored ones dropped, each event posted once by two replicas on one queue,
and a channel over its rate limit getting one digest line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.store.dynamodb import DynamoStore
from adapters.store.sqlite import SqliteStore
from bot.model import LockRecord
from bot.ports.store import EventClaim, Store
from tests.events.aws_examples import (
    ASG_LAUNCH_UNSUCCESSFUL,
    ECS_DEPLOYMENT_IN_PROGRESS,
    HEALTH_SCHEDULED_CHANGE,
    as_demo,
    put_entry,
)
from tests.events.conftest import BotMaker, client, events_config, in_channel
from tests.store.conftest import table_name
from tests.support.chat import RecordingChat
from tests.support.clock import ShiftedClock

QUEUE = "https://sqs.ap-northeast-1.amazonaws.com/123456789012/kajitori-events"


def put(sandbox: Any, *events: dict[str, Any]) -> None:
    bus = client(sandbox, "events")
    entries = [put_entry(e) for e in events]
    for start in range(0, len(entries), 10):
        answer = bus.put_events(Entries=entries[start : start + 10])
        assert answer["FailedEntryCount"] == 0


def ecs_deployment(env: str) -> dict[str, Any]:
    event = as_demo(ECS_DEPLOYMENT_IN_PROGRESS)
    event["resources"] = [f"arn:aws:ecs:ap-northeast-1:123456789012:service/{env}/api"]
    return event


def queue_is_empty(sandbox: Any) -> bool:
    attributes = client(sandbox, "sqs").get_queue_attributes(
        QueueUrl=QUEUE,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(v == "0" for v in attributes.values())


async def test_a_deployment_kajitori_did_not_start_is_announced_as_such(
    sandbox: Any, make_bot: BotMaker
) -> None:
    chat = RecordingChat()
    bot = await make_bot(chat=chat)
    now = bot.services.clock.now()
    # production's api is being deployed by a kajitori job: its lock says so.
    await bot.services.store.acquire_lock(
        LockRecord(
            key="api/production",
            owner="local:alice",
            job_id=7,
            token="t",
            acquired_at=now,
            expires_at=now.replace(year=now.year + 1),
        ),
        now,
    )
    put(sandbox, ecs_deployment("staging"), ecs_deployment("production"))
    await chat.wait_for(in_channel("local:staging", "ECS deployment started"))
    await chat.wait_for(in_channel("local:production", "ECS deployment started"))
    staging = next(p for p in chat.posted if p.origin.channel == "local:staging")
    production = next(p for p in chat.posted if p.origin.channel == "local:production")
    assert "api in staging" in staging.text
    assert "not started by kajitori" in staging.message.fields["by"]
    assert production.message.fields["by"] == "kajitori job 7 (local:alice)"
    assert "ecs/v2/clusters/staging/services/api" in staging.message.fields["console"]


async def test_health_and_auto_scaling_events_are_routed_and_ignored_ones_dropped(
    sandbox: Any, make_bot: BotMaker
) -> None:
    chat = RecordingChat()
    await make_bot(config=events_config(ignore=["aws.ecs/*"]), chat=chat)
    launch = as_demo(ASG_LAUNCH_UNSUCCESSFUL, AutoScalingGroupName="worker-staging")
    put(sandbox, ecs_deployment("staging"), as_demo(HEALTH_SCHEDULED_CHANGE), launch)
    await chat.wait_for(in_channel("local:staging", "Auto Scaling launch unsuccessful"))
    await chat.wait_for(in_channel("local:other", "AWS Health scheduled change"))
    health = next(p for p in chat.posted if "AWS Health" in p.text)
    assert "AWS_EC2_DEDICATED_HOST_NETWORK_MAINTENANCE_SCHEDULED" in health.text
    assert health.message.fields["starts"] == "2016-06-05 15:10 UTC"
    assert health.message.fields["affected"] == "i-12345678"
    asg = next(p for p in chat.posted if "Auto Scaling" in p.text)
    assert "worker in staging" in asg.text
    assert asg.message.fields["cause"] == "description-text"
    await wait_until(lambda: queue_is_empty(sandbox))
    assert not any("ECS" in p.text for p in chat.posted)


async def wait_until(check: Any, timeout: float = 20.0) -> None:
    """Until `check()` (run in a thread: it may call AWS) holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await asyncio.to_thread(check):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"{check} did not hold within {timeout}s")
        await asyncio.sleep(0.2)


async def test_two_replicas_on_one_queue_post_each_event_once(
    sandbox: Any, make_bot: BotMaker, tmp_path: Path
) -> None:
    # A second rule to the same queue delivers every event twice, as EventBridge's
    # at-least-once delivery may.
    bus = client(sandbox, "events")
    bus.put_rule(Name="again", EventPattern=json.dumps({"source": ["aws.ecs"]}))
    arn = client(sandbox, "sqs").get_queue_attributes(QueueUrl=QUEUE, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    bus.put_targets(Rule="again", Targets=[{"Id": "q", "Arn": arn}])
    store = await SqliteStore.open(str(tmp_path / "shared.db"))
    chat_a, chat_b = RecordingChat(), RecordingChat()
    bots = [
        await make_bot(chat=chat_a, runner="replica-a", store=store),
        await make_bot(chat=chat_b, runner="replica-b", store=store),
    ]
    events = [ecs_deployment("staging") for _ in range(12)]
    put(sandbox, *events)
    await wait_until(lambda: len(chat_a.posted) + len(chat_b.posted) >= 12)
    await wait_until(lambda: queue_is_empty(sandbox))
    posted = [p for chat in (chat_a, chat_b) for p in chat.posted]
    assert len(posted) == 12
    # 24 messages were read and deleted between the two: every event came twice.
    handled = sum(b.event_poller.counts["done"] for b in bots if b.event_poller is not None)
    assert handled == 24


@pytest.fixture(params=["sqlite", "dynamodb"])
async def shared_store(
    request: pytest.FixtureRequest, sandbox: Any, tmp_path: Path
) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        sqlite = await SqliteStore.open(str(tmp_path / "shared.db"))
        yield sqlite
        await sqlite.close()
        return
    dynamo = await DynamoStore.open(table_name(), region="ap-northeast-1", endpoint_url=sandbox.url)
    yield dynamo
    await dynamo.close()


async def test_an_event_claimed_by_a_replica_that_stopped_before_posting_is_posted_by_another(
    sandbox: Any, make_bot: BotMaker, shared_store: Store
) -> None:
    put(sandbox, ecs_deployment("staging"))
    # Replica A receives the message and claims the event, as the intake does, then stops
    # before posting: the message stays in the queue and A's claim stays in the store.
    sqs = client(sandbox, "sqs")
    received = sqs.receive_message(QueueUrl=QUEUE, WaitTimeSeconds=5, VisibilityTimeout=1)
    (message,) = received["Messages"]
    event_id = json.loads(message["Body"])["id"]  # EventBridge gives the event its id
    clock = ShiftedClock()
    lease = clock.now() + timedelta(minutes=1)
    claimed = await shared_store.claim_event(event_id, "replica-a", lease, clock.now())
    assert claimed is EventClaim.CLAIMED

    chat = RecordingChat()
    bot = await make_bot(
        events_config(visibility_timeout="1s"),
        chat=chat,
        runner="replica-b",
        store=shared_store,
        clock=clock,
    )
    poller = bot.event_poller
    assert poller is not None
    # While A's lease runs, B keeps the message (it comes back) instead of deleting it.
    await wait_until(lambda: poller.counts["kept"] >= 2)
    assert chat.posted == []
    assert not queue_is_empty(sandbox)
    # A's lease runs out unposted: the next copy B receives is posted, once.
    clock.advance(timedelta(minutes=2))
    await wait_until(lambda: len(chat.posted) >= 1)
    await wait_until(lambda: queue_is_empty(sandbox))
    assert [p.origin.channel for p in chat.posted] == ["local:staging"]
    assert poller.counts["done"] == 1
    # Posted: a later copy is a duplicate.
    later = clock.now()
    assert await shared_store.claim_event(event_id, "replica-c", later, later) is (
        EventClaim.POSTED
    )


async def test_a_channel_over_its_rate_limit_gets_one_digest_line(
    sandbox: Any, make_bot: BotMaker
) -> None:
    chat = RecordingChat()
    config = events_config(rate_limit={"posts": 2, "per": "1s"})
    await make_bot(config=config, chat=chat)
    put(sandbox, *[ecs_deployment("staging") for _ in range(5)])
    await chat.wait_for(in_channel("local:staging", "more events in 1s"))
    heads = [p for p in chat.posted if "ECS deployment started" in p.text and "more" not in p.text]
    digest = next(p for p in chat.posted if "more events" in p.text)
    assert len(heads) == 2
    assert digest.text.startswith("3 more events in 1s")
