"""`scale up` against the AWS sandbox over HTTP: a rolling resize of an EC2 fleet that keeps
it serving, the checks that refuse before any change, and RDS instance classes."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.bootstrap import Bot
from bot.model import JobStatus, Outcome
from tests.capacity.helpers import (
    client,
    final_message,
    finish,
    fleet,
    run_job,
    say,
    target_health,
)
from tests.support.chat import RecordingChat


async def default_template_type(bot: Bot, name: str = "web-staging") -> str:
    ec2 = await client(bot, "ec2")
    versions = await ec2.describe_launch_template_versions(
        LaunchTemplateName=name, Versions=["$Default"]
    )
    return str(versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]["InstanceType"])


async def test_rolling_scale_up_keeps_all_but_one_instance_serving(
    bot: Bot, chat: RecordingChat
) -> None:
    await run_job(bot, "scale out web staging 3")
    members = [i["InstanceId"] for i in await fleet(bot)]
    assert len(members) == 3

    result = await say(bot, "scale up web staging t3.large")
    assert result.outcome is Outcome.STARTED, result.text
    serving_counts: list[int] = []

    async def watch_target_health() -> None:
        while True:
            health = await target_health(bot)
            serving_counts.append(sum(1 for i in members if health.get(i) == "healthy"))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch_target_health())
    try:
        assert await finish(bot, result) is JobStatus.SUCCEEDED
    finally:
        watcher.cancel()
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary

    # While each instance was out, the other two stayed registered and healthy...
    assert min(serving_counts) == len(members) - 1
    # ...and one at a time really was out.
    assert serving_counts.count(len(members) - 1) > 0
    after = await fleet(bot)
    assert {i["InstanceId"]: i["InstanceType"] for i in after} == dict.fromkeys(members, "t3.large")
    assert {i["State"]["Name"] for i in after} == {"running"}
    health = await target_health(bot)
    assert {health[i] for i in members} == {"healthy"}
    assert await default_template_type(bot) == "t3.large"
    thread = chat.texts(chat.posted[-1].origin.thread)
    assert sum("t3.medium → t3.large, starting" in t for t in thread) == 3


async def test_scale_up_to_an_unknown_instance_type_is_refused_before_any_change(
    bot: Bot,
) -> None:
    before = {i["InstanceId"]: i["InstanceType"] for i in await fleet(bot)}
    result = await say(bot, "scale up web staging t3.enormous")
    assert result.outcome is Outcome.REFUSED
    assert result.text.splitlines()[0] == (
        "unknown instance type 't3.enormous' in ap-northeast-1: nothing was changed"
    )
    assert result.job is None
    after = await fleet(bot)
    assert {i["InstanceId"]: i["InstanceType"] for i in after} == before
    assert {i["State"]["Name"] for i in after} == {"running"}
    health = await target_health(bot)
    assert {health[i] for i in before} == {"healthy"}
    assert await default_template_type(bot) == "t3.medium"


async def test_scale_up_to_another_architecture_is_refused(bot: Bot) -> None:
    result = await say(bot, "scale up web staging t4g.large")
    assert result.outcome is Outcome.REFUSED
    assert result.text.startswith("t4g.large runs arm64; i-")
    assert "is x86_64" in result.text
    assert {i["InstanceType"] for i in await fleet(bot)} == {"t3.medium"}


async def test_scale_up_needs_the_fleet_healthy_first(bot: Bot) -> None:
    elbv2 = await client(bot, "elbv2")
    groups = await elbv2.describe_target_groups(Names=["web-staging-tg"])
    arn = groups["TargetGroups"][0]["TargetGroupArn"]
    first = (await fleet(bot))[0]["InstanceId"]
    await elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": first}])

    result = await say(bot, "scale up web staging t3.large")
    assert result.outcome is Outcome.REFUSED
    assert result.text.startswith("web in staging is not fully healthy (")
    assert {i["InstanceType"] for i in await fleet(bot)} == {"t3.medium"}


async def test_rolling_scale_up_stops_at_the_first_failure_and_touches_no_other(
    bot: Bot, chat: RecordingChat
) -> None:
    members = sorted(await fleet(bot), key=lambda i: (i["LaunchTime"], i["InstanceId"]))
    first, second = members[0]["InstanceId"], members[1]["InstanceId"]
    result = await say(bot, "scale up web staging t3.large")
    assert result.outcome is Outcome.STARTED, result.text
    # Someone terminates the instance the job is resizing.
    await chat.wait_for(lambda posted: any(f"{first}: drained" in p.text for p in posted))
    ec2 = await client(bot, "ec2")
    await ec2.terminate_instances(InstanceIds=[first])

    assert await finish(bot, result) is JobStatus.FAILED
    _, summary = await final_message(bot, result)
    assert summary.startswith(f"scale up web in staging to t3.large failed: stopped at {first}:")
    text = chat.posted[-1].text
    assert f"not touched: {second}" in text
    assert "The others kept serving." in text
    survivor = [i for i in await fleet(bot) if i["InstanceId"] == second]
    assert survivor[0]["InstanceType"] == "t3.medium"
    assert (await target_health(bot))[second] == "healthy"
    assert await default_template_type(bot) == "t3.medium"


async def test_scale_up_on_production_needs_approval(bot: Bot) -> None:
    result = await say(bot, "scale up web production t3.large")
    assert result.outcome is Outcome.PENDING
    assert "needs approval" in result.text
    assert {i["InstanceType"] for i in await fleet(bot, "production")} == {"t3.medium"}


async def db_instances(bot: Bot, env: str = "staging") -> dict[str, dict[str, Any]]:
    rds = await client(bot, "rds")
    found = {}
    for identifier in (f"main-{env}-1", f"main-{env}-2"):
        response = await rds.describe_db_instances(DBInstanceIdentifier=identifier)
        found[identifier] = response["DBInstances"][0]
    return found


async def test_database_scale_up_waits_for_the_maintenance_window_by_default(bot: Bot) -> None:
    dry = await say(bot, "scale up main staging db.r6g.xlarge --dry-run")
    assert "main-staging-1 (writer): db.r6g.large → db.r6g.xlarge" in dry.text
    assert "main-staging-2 (reader): db.r6g.large → db.r6g.xlarge" in dry.text
    assert "in the maintenance window" in dry.text

    result = await run_job(bot, "scale up main staging db.r6g.xlarge")
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary
    assert "applies in the maintenance window" in summary
    for instance in (await db_instances(bot)).values():
        assert instance["DBInstanceClass"] == "db.r6g.large"
        assert instance["PendingModifiedValues"]["DBInstanceClass"] == "db.r6g.xlarge"


async def test_database_scale_up_now_changes_readers_then_the_writer(
    bot: Bot, chat: RecordingChat
) -> None:
    result = await run_job(bot, "scale up main staging db.r6g.xlarge --now")
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary
    instances = await db_instances(bot)
    assert {i["DBInstanceClass"] for i in instances.values()} == {"db.r6g.xlarge"}
    assert {i["DBInstanceStatus"] for i in instances.values()} == {"available"}
    thread = chat.texts(chat.posted[-1].origin.thread)
    modifying = [t for t in thread if t.endswith("modifying")]
    assert modifying == [
        "main-staging-2 (reader): db.r6g.large → db.r6g.xlarge, modifying",
        "main-staging-1 (writer): db.r6g.large → db.r6g.xlarge, modifying",
    ]


async def test_database_class_aurora_mysql_does_not_offer_is_refused_up_front(bot: Bot) -> None:
    result = await say(bot, "scale up main staging db.x9.huge")
    assert result.outcome is Outcome.REFUSED, result.text
    assert "db.x9.huge is not an orderable DB instance class for aurora-mysql" in result.text
    assert result.job is None and result.request is None
    for instance in (await db_instances(bot)).values():
        assert instance["DBInstanceClass"] == "db.r6g.large"
        assert "DBInstanceClass" not in instance.get("PendingModifiedValues", {})


async def test_database_dry_run_ticks_the_class_only_when_aws_lists_it(bot: Bot) -> None:
    dry = await say(bot, "scale up main staging db.r7g.2xlarge --dry-run")
    assert dry.outcome is Outcome.OK, dry.text
    assert "✓ db.r7g.2xlarge is orderable for aurora-mysql in ap-northeast-1" in dry.text
    assert "✓ lock main/staging is free" in dry.text


async def test_database_now_applies_a_change_already_pending(bot: Bot) -> None:
    await run_job(bot, "scale up main staging db.r6g.xlarge")
    pending = await say(bot, "scale up main staging db.r6g.xlarge")
    assert pending.outcome is Outcome.OK
    assert "will be db.r6g.xlarge in its maintenance window (pending)" in pending.text
    assert "add --now to apply it now" in pending.text

    result = await run_job(bot, "scale up main staging db.r6g.xlarge --now")
    status, summary = await final_message(bot, result)
    assert status is JobStatus.SUCCEEDED, summary
    instances = await db_instances(bot)
    assert {i["DBInstanceClass"] for i in instances.values()} == {"db.r6g.xlarge"}
    assert all(
        "DBInstanceClass" not in i.get("PendingModifiedValues", {}) for i in instances.values()
    )

    again = await say(bot, "scale up main staging db.r6g.xlarge --now")
    assert again.outcome is Outcome.OK and "already is db.r6g.xlarge" in again.text


async def test_scale_up_of_an_unknown_target_names_the_known_ones(bot: Bot) -> None:
    result = await say(bot, "scale up nothing staging t3.large")
    assert result.outcome is Outcome.USAGE
    assert "unknown service or database 'nothing' in staging" in result.text
    assert "known in staging: api, web, worker, main" in result.text
