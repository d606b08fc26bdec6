"""Two `kajitori serve` processes on one DynamoDB table (the sandbox's) behave as one bot:
a Slack retry that lands on the other replica starts nothing new, and when the replica
running a deploy is killed (SIGKILL), the other one takes the deploy over, says so in its
thread and watches the rollout to its end."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from adapters.aws.clients import AwsClients
from adapters.store.dynamodb import DynamoStore
from bot.model import JobStatus
from sandbox import SandboxTiming
from tests.conftest import demo_data
from tests.support.fake_slack import FakeSlack, Posted, SlackSender
from tests.support.serve import ServeProcess

REGION = "ap-northeast-1"
SIGNING_SECRET = "5e1f0c2b9a8d7e6f5a4b3c2d1e0f9a8b"
BOT_TOKEN = "xoxb-0000000000-2222222222-kajitorireplicastoken"
FORM = "application/x-www-form-urlencoded"
# Short, so that a takeover comes within seconds: a replica renews every 0.5 s.
JOBS = {"lease": "2s", "takeover_interval": 0.5}


def replica_config(table: str) -> dict[str, Any]:
    data = demo_data()
    data["store"] = f"dynamodb://{table}?region={REGION}"
    data["jobs"] = JOBS
    data["access"]["members"].update({"slack:U0ALICE": ["sre"], "slack:U0BOB": ["sre"]})
    return data


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    slack = await FakeSlack().start()
    try:
        yield slack
    finally:
        await slack.stop()


@pytest.fixture
def table() -> str:
    return f"kajitori-replicas-{secrets.token_hex(3)}"


@pytest.fixture
async def replicas(
    sandbox: Any, fake_slack: FakeSlack, table: str, tmp_path: Path
) -> AsyncIterator[list[ServeProcess]]:
    env = {
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": fake_slack.api_url,
        "AWS_ENDPOINT_URL": sandbox.url,
    }
    started = [ServeProcess(replica_config(table), env, tmp_path) for _ in range(2)]
    try:
        # At once: both find the table missing, one creates it, the other waits for it.
        await asyncio.gather(*(process.start() for process in started))
        yield started
    finally:
        for process in started:
            await process.stop()
    for process in started:
        log = process.log()
        assert SIGNING_SECRET not in log and BOT_TOKEN not in log
        assert "Traceback" not in log, log


@pytest.fixture
async def shared_store(sandbox: Any, table: str) -> AsyncIterator[DynamoStore]:
    """The replicas' table, read the way a third replica would."""
    store = await DynamoStore.open(table, region=REGION, endpoint_url=sandbox.url, create=False)
    try:
        yield store
    finally:
        await store.close()


def senders(replicas: list[ServeProcess], fake_slack: FakeSlack) -> list[SlackSender]:
    """One sender per replica, sharing one numbering of trigger and event ids, as Slack
    numbers them whichever replica a request reaches."""
    first, *others = [SlackSender(r.url, SIGNING_SECRET, fake_slack.url) for r in replicas]
    for other in others:
        other._ids = first._ids
    return [first, *others]


def thread_texts(fake_slack: FakeSlack, head: Posted) -> list[str]:
    return [p.text for p in fake_slack.in_thread(head.ts)]


def final_in(fake_slack: FakeSlack, head: Posted) -> str | None:
    return next((t for t in thread_texts(fake_slack, head) if t.startswith(("✅", "❌"))), None)


async def test_a_slack_retry_landing_on_the_other_replica_starts_nothing_new(
    replicas: list[ServeProcess], fake_slack: FakeSlack, shared_store: DynamoStore
) -> None:
    first, second = senders(replicas, fake_slack)
    body = urlencode(first.slash_body("deploy api staging v2"))
    assert (await first.send(body, FORM))[0] == 200
    # Slack retries on the other replica (the load balancer chose it), twice, and redelivers.
    assert (await second.send(body, FORM, retry=1))[0] == 200
    assert (await second.send(body, FORM, retry=2))[0] == 200
    assert (await first.send(body, FORM))[0] == 200
    mention = first.mention_body("status api staging")
    assert (await first.send_json(mention))[0] == 200
    assert (await second.send_json(mention, retry=1))[0] == 200

    await fake_slack.wait_for(lambda: len(fake_slack.heads()) == 1)
    [head] = fake_slack.heads()
    await fake_slack.wait_for(lambda: final_in(fake_slack, head) is not None, timeout=60)
    assert (final_in(fake_slack, head) or "").startswith("✅ deployed api v2 to staging")
    mention_ts = mention["event"]["ts"]
    await fake_slack.wait_for(lambda: len(fake_slack.in_thread(mention_ts)) >= 1)
    # A later command on each replica is answered after every earlier delivery was handled.
    await first.slash("history api staging")
    await second.slash("jobs")
    await fake_slack.wait_for(
        lambda: (
            sum(
                ("jobs" in text or "history of api in staging" in text)
                for text in fake_slack.said()
            )
            >= 2
        )
    )

    assert len(fake_slack.heads()) == 1
    assert len(fake_slack.in_thread(mention_ts)) == 1
    # No duplicate got as far as a refusal: what went through response_urls is the answers
    # to `history` and `jobs`, nothing else.
    assert all(
        "jobs" in b["text"] or "history of api in staging" in b["text"]
        for b in fake_slack.hook_posts()
    ), fake_slack.hook_posts()
    jobs = await shared_store.list_jobs(limit=100)
    assert [(j.title, j.status) for j in jobs] == [
        ("deploy api v2 to staging", JobStatus.SUCCEEDED)
    ]
    assert len(await shared_store.list_deploys("api", "staging")) == 1


async def test_killing_the_replica_running_a_deploy_leads_the_other_to_finish_watching_it(
    sandbox: Any,
    replicas: list[ServeProcess],
    fake_slack: FakeSlack,
    shared_store: DynamoStore,
) -> None:
    # Slow rollout steps, so that the rollout is still in progress when the replica dies.
    sandbox.set_timing(SandboxTiming.fast().model_copy(update={"ecs_task_step": 1.5}))
    doomed, survivor = replicas
    first, second = senders(replicas, fake_slack)
    await first.slash("deploy api staging v2")
    await fake_slack.wait_for(lambda: len(fake_slack.heads()) == 1)
    [head] = fake_slack.heads()
    await fake_slack.wait_for(
        lambda: any(t.startswith("⏳ ECS deployment") for t in thread_texts(fake_slack, head))
    )
    started = next(t for t in thread_texts(fake_slack, head) if t.startswith("⏳ ECS deployment"))
    deployment = started.split()[3]
    [job] = await shared_store.list_jobs(running_only=True)
    assert job.state["deployment"] == deployment

    assert doomed.process is not None
    loop = asyncio.get_running_loop()
    doomed.process.send_signal(signal.SIGKILL)
    await doomed.process.wait()
    killed = loop.time()
    aws = AwsClients(endpoint_url=sandbox.url)
    try:
        ecs = await aws.client("ecs", REGION)
        at_kill = await ecs.describe_services(cluster="staging", services=["api"])
    finally:
        await aws.close()
    assert at_kill["services"][0]["deployments"][0]["rolloutState"] == "IN_PROGRESS"

    await fake_slack.wait_for(
        lambda: any("taken over by replica" in t for t in thread_texts(fake_slack, head)),
        timeout=30,
    )
    taken_over_after = loop.time() - killed
    await fake_slack.wait_for(lambda: final_in(fake_slack, head) is not None, timeout=60)
    texts = thread_texts(fake_slack, head)
    taken = next(t for t in texts if "taken over by replica" in t)
    assert taken.startswith(f"⚠️ job J{job.id} taken over by replica ")
    assert f"after its runner {job.runner} stopped" in taken
    assert any(f"watching the rollout of ECS deployment {deployment}" in t for t in texts)
    final = final_in(fake_slack, head) or ""
    assert final.startswith("✅ deployed api v2 to staging in "), texts
    assert "api-staging:2, 2/2 running (was v1, api-staging:1)" in final

    ended = await shared_store.get_job(job.id)
    assert ended is not None and ended.status is JobStatus.SUCCEEDED
    assert ended.runner not in ("", job.runner)
    [record] = await shared_store.list_deploys("api", "staging")
    assert (record.outcome, record.job_id) == ("succeeded", job.id)
    assert await shared_store.get_lock("api/staging") is None
    await second.slash("history api staging")
    await fake_slack.wait_for(
        lambda: any("history of api in staging" in text for text in fake_slack.said())
    )
    history = next(text for text in fake_slack.said() if "history of api in staging" in text)
    assert "succeeded" in history and "v2" in history
    # The rollout was started once: no second revision, no second deployment.
    aws = AwsClients(endpoint_url=sandbox.url)
    try:
        ecs = await aws.client("ecs", REGION)
        described = await ecs.describe_services(cluster="staging", services=["api"])
        listed = await ecs.list_task_definitions(familyPrefix="api-staging")
    finally:
        await aws.close()
    assert [d["id"] for d in described["services"][0]["deployments"]] == [deployment]
    assert len(listed["taskDefinitionArns"]) == 2
    assert survivor.process is not None and survivor.process.returncode is None
    print(f"takeover announced {taken_over_after:.1f}s after SIGKILL (lease {JOBS['lease']})")
