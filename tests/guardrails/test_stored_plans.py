"""What is approved is what runs: a request stores its resolved plan, approving it runs that
plan (never the command planned again), and only while the world still matches the plan's
`from` state. Through the real dispatcher, store (SQLite and DynamoDB) and the AWS sandbox."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from adapters.bootstrap import Bot
from bot.dispatcher import Result
from bot.model import JobStatus, Origin, Outcome, RequestStatus
from tests.guardrails.conftest import REGION, BotFactory


def origin(member: str) -> Origin:
    return Origin(adapter="local", channel="local", member=member)


async def say(bot: Bot, member: str, text: str) -> Result:
    return await bot.dispatcher.handle(origin(member), text)


async def finish(bot: Bot, result: Result) -> JobStatus:
    assert result.job is not None, result.text
    return await bot.jobs.wait(result.job.id)


async def desired(bot: Bot, env: str) -> int:
    ecs = await bot.aws.client("ecs", REGION)
    service = (await ecs.describe_services(cluster=env, services=["api"]))["services"][0]
    return int(service["desiredCount"])


async def running_image(bot: Bot, env: str) -> str:
    ecs = await bot.aws.client("ecs", REGION)
    service = (await ecs.describe_services(cluster=env, services=["api"]))["services"][0]
    described = await ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    return str(described["taskDefinition"]["containerDefinitions"][0]["image"])


async def digest_of(bot: Bot, tag: str) -> str:
    ecr = await bot.aws.client("ecr", REGION)
    found = await ecr.describe_images(repositoryName="api", imageIds=[{"imageTag": tag}])
    return str(found["imageDetails"][0]["imageDigest"])


async def move_tag(bot: Bot, tag: str) -> str:
    """Push other bytes under `tag` (tags are mutable); the new digest."""
    ecr = await bot.aws.client("ecr", REGION)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1000,
            "digest": "sha256:" + "c" * 64,
        },
        "layers": [],
    }
    await ecr.put_image(
        repositoryName="api",
        imageManifest=json.dumps(manifest),
        imageManifestMediaType=manifest["mediaType"],
        imageTag=tag,
    )
    return await digest_of(bot, tag)


async def test_a_second_request_for_the_same_service_is_refused_and_the_first_runs_as_planned(
    make_bot: BotFactory, store_url: str
) -> None:
    bot = await make_bot(store_url)
    first = await say(bot, "local:alice", "scale out api production +2")
    assert first.outcome is Outcome.PENDING and first.request is not None, first.text
    assert "scale out api in production from 2 to 4 needs approval" in first.text
    second = await say(bot, "local:alice", "scale out api production +2")
    assert second.outcome is Outcome.REFUSED, second.text
    assert second.text.splitlines()[0] == (
        f"api/production already has an open request {first.request.ref} by local:alice: "
        "scale out api in production from 2 to 4"
    )
    assert f"`deny {first.request.ref}`" in second.text
    # Another target is independent.
    other = await say(bot, "local:alice", "scale out worker production +1")
    assert other.outcome is Outcome.PENDING, other.text

    approved = await say(bot, "local:bob", f"approve {first.request.id}")
    assert approved.outcome is Outcome.STARTED, approved.text
    assert await finish(bot, approved) is JobStatus.SUCCEEDED
    assert await desired(bot, "production") == 4
    # Decided, it no longer holds the target: the next request may wait.
    again = await say(bot, "local:alice", "scale out api production 5")
    assert again.outcome is Outcome.PENDING, again.text
    assert "from 4 to 5" in again.text
    withdrawn = await say(bot, "local:alice", f"deny {again.request.id if again.request else 0}")
    assert withdrawn.outcome is Outcome.OK
    assert (await say(bot, "local:alice", "scale out api production 5")).outcome is Outcome.PENDING


async def test_a_rollback_confirmed_after_someone_deployed_runs_nothing_and_says_what_changed(
    make_bot: BotFactory,
) -> None:
    bot = await make_bot()
    deployed = await say(bot, "local:alice", "deploy api staging v2")
    assert await finish(bot, deployed) is JobStatus.SUCCEEDED
    request = await say(bot, "local:alice", "rollback api staging")
    assert request.outcome is Outcome.PENDING and request.request is not None, request.text
    assert "roll back api in staging to v1" in request.text
    meanwhile = await say(bot, "local:carol", "deploy api staging v3")
    assert await finish(bot, meanwhile) is JobStatus.SUCCEEDED
    image_before = await running_image(bot, "staging")

    confirmed = await say(bot, "local:alice", f"approve {request.request.id}")
    assert confirmed.outcome is Outcome.REFUSED, confirmed.text
    lines = confirmed.text.splitlines()
    assert lines[0].startswith(f"request {request.request.ref} (roll back api in staging to v1)")
    assert "Nothing was changed." in lines[0]
    assert any(line.startswith("• api in staging now runs api-staging:") for line in lines)
    assert "(v3); the plan was made when it ran" in confirmed.text
    assert lines[-1] == "To go ahead, ask again (it is planned anew): `rollback api staging`"
    assert confirmed.job is None
    assert await running_image(bot, "staging") == image_before
    stored = await bot.services.store.get_request(request.request.id)
    assert stored is not None and stored.status is RequestStatus.OUTDATED


async def test_a_confirmed_scale_in_after_someone_scaled_runs_nothing(make_bot: BotFactory) -> None:
    bot = await make_bot()
    grown = await say(bot, "local:alice", "scale out api staging 4")
    assert await finish(bot, grown) is JobStatus.SUCCEEDED
    request = await say(bot, "local:alice", "scale out api staging -1")
    assert request.outcome is Outcome.PENDING and request.request is not None, request.text
    assert "scale in api in staging from 4 to 3" in request.text
    other = await say(bot, "local:bob", "scale out api staging 3 --yes")
    assert await finish(bot, other) is JobStatus.SUCCEEDED

    confirmed = await say(bot, "local:alice", f"approve {request.request.id}")
    assert confirmed.outcome is Outcome.REFUSED, confirmed.text
    assert (
        "• api in staging now wants 3 tasks; the plan was made when it wanted 4" in confirmed.text
    )
    assert await desired(bot, "staging") == 3


async def test_an_approved_deploy_whose_tag_moved_runs_nothing(make_bot: BotFactory) -> None:
    bot = await make_bot()
    reviewed = await digest_of(bot, "v2")
    request = await say(bot, "local:alice", "deploy api production v2")
    assert request.outcome is Outcome.PENDING and request.request is not None, request.text
    assert f"api:v1 → api:v2 ({reviewed[:19]}…)" in request.text
    image_before = await running_image(bot, "production")
    moved = await move_tag(bot, "v2")
    assert moved != reviewed

    approved = await say(bot, "local:bob", f"approve {request.request.id}")
    assert approved.outcome is Outcome.REFUSED, approved.text
    assert (
        f"• image tag v2 now points at {moved[:19]}…; the plan was made for {reviewed[:19]}…"
        in approved.text
    )
    assert await running_image(bot, "production") == image_before


async def test_a_deploy_pins_the_digest_its_tag_pointed_to_and_still_shows_the_tag(
    make_bot: BotFactory,
) -> None:
    bot = await make_bot()
    digest = await digest_of(bot, "v2")
    dry = await say(bot, "local:alice", "deploy api staging v2 --dry-run")
    assert f"api:v1 → api:v2 ({digest[:19]}…)" in dry.text
    request = await say(bot, "local:alice", "deploy api production v2")
    assert request.request is not None
    # The tag moves after the approval: the pinned revision still runs the approved bytes.
    approved = await say(bot, "local:bob", f"approve {request.request.id}")
    assert approved.outcome is Outcome.STARTED, approved.text
    await move_tag(bot, "v2")
    assert await finish(bot, approved) is JobStatus.SUCCEEDED
    image = await running_image(bot, "production")
    assert image.endswith(f"/api@{digest}")
    status = await say(bot, "local:alice", "status api production")
    assert "v2" in status.text
    history = await say(bot, "local:alice", "history api production")
    assert history.messages[0].table is not None
    row = history.messages[0].table.rows[0]
    assert row[2] == "deploy api v2 to production"
    assert "local:alice" in row[3] and "v2" in row[7]


async def test_a_request_made_on_one_replica_and_approved_on_both_runs_once(
    make_bot: BotFactory, store_url: str
) -> None:
    first = await make_bot(store_url, runner="replica-a")
    second = await make_bot(store_url, runner="replica-b")
    request = await say(first, "local:alice", "scale out api production +2")
    assert request.outcome is Outcome.PENDING and request.request is not None, request.text
    # The second replica is asked to approve, twice at once (a double click), and the first too.
    answers = await asyncio.gather(
        say(second, "local:bob", f"approve {request.request.id}"),
        say(second, "local:bob", f"approve {request.request.id}"),
        say(first, "local:bob", f"approve {request.request.id}"),
    )
    started = [(bot, a) for bot, a in zip((second, second, first), answers, strict=True) if a.job]
    assert len(started) == 1, [a.text for a in answers]
    for answer in answers:
        if answer.job is None:
            assert answer.outcome is Outcome.REFUSED, answer.text
    bot, answer = started[0]
    assert await finish(bot, answer) is JobStatus.SUCCEEDED
    assert await desired(first, "production") == 4
    jobs = await first.services.store.list_jobs()
    assert [j.title for j in jobs] == ["scale out api in production from 2 to 4"]
    assert jobs[0].approved_by == "local:bob" and jobs[0].member == "local:alice"
    stored = await first.services.store.get_request(request.request.id)
    assert stored is not None and stored.status is RequestStatus.APPROVED


async def test_an_approval_runs_the_stored_plan_not_the_command_planned_again(
    make_bot: BotFactory, sandbox: Any
) -> None:
    """Planned with a relative count: the stored plan holds the absolute one."""
    bot = await make_bot()
    request = await say(bot, "local:alice", "scale out api production +1")
    assert request.request is not None
    stored = await bot.services.store.get_request(request.request.id)
    assert stored is not None
    assert stored.plan_kind == "scale-ecs"
    assert stored.state == {"service": "api", "env": "production", "from": 2, "to": 3}
    assert stored.locks == ["api/production"]
    approved = await say(bot, "local:bob", f"approve {request.request.id}")
    assert approved.text.splitlines() == [
        f"request {request.request.ref} (scale out api in production from 2 to 3) approved by "
        "local:bob",
        f"scale out api in production from 2 to 3: job {approved.job.ref if approved.job else 0} "
        "(approved by local:bob)",
    ]
    assert await finish(bot, approved) is JobStatus.SUCCEEDED
    assert await desired(bot, "production") == 3
