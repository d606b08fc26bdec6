"""`events [ENV]`: what AWS has scheduled for an environment's services, soonest first. The
sandbox answers the sources in AWS's documented shapes (EC2 DescribeInstanceStatus `Events`,
RDS DescribePendingMaintenanceActions, AWS Health DescribeEvents and
DescribeAffectedEntities). Its demo seed schedules a reboot of a staging web instance,
maintenance of staging's database, the retirement of a production web instance (an EC2
event and its Health event) and an account-wide Health notice."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.bootstrap import build_bot
from bot.config import Settings, parse_config
from bot.model import Origin, Outcome
from tests.access.test_accounts import (
    OTHER_ACCOUNT,
    ROLE,
    other_account,
    seed_other_account,
    two_account_data,
)
from tests.events.conftest import BotMaker, client, events_config, events_data
from tests.support.aws_proxy import AwsProxy
from tests.support.chat import RecordingChat

ALICE = Origin(adapter="local", channel="local", member="local:alice")
ARN = "arn:aws:rds:ap-northeast-1:123456789012"
ACCOUNT = "123456789012"
REGION = "ap-northeast-1"


def _when(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


def _rows(text: str) -> list[list[str]]:
    """The table's rows: when, source, concerns, resource, what."""
    return [
        re.split(r"\s{2,}", line.strip())
        for line in text.splitlines()
        if re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d|not scheduled)  ", line)
    ]


def _stray_instance(sandbox: Any, region: str = REGION, tags: dict[str, str] | None = None) -> str:
    """An instance of no configured service (or of the one its tags name)."""
    ec2 = client(sandbox, "ec2", region)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    extra: dict[str, Any] = {}
    if tags:
        extra["TagSpecifications"] = [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, **extra)
    return str(instance["Instances"][0]["InstanceId"])


async def test_events_staging_lists_only_stagings_items_with_the_service_each_concerns(
    sandbox: Any, make_bot: BotMaker
) -> None:
    bot = await make_bot()
    result = await bot.dispatcher.handle(ALICE, "events staging")
    assert result.outcome is Outcome.OK
    assert "coming up for staging (soonest first)" in result.text
    assert "could not be read" not in result.text
    scheduled = sandbox.seeded["scheduled"]
    instance, reboot = scheduled["ec2"]
    cluster, update = scheduled["rds"]
    _, notice = scheduled["account"]
    assert _rows(result.text) == [
        [
            _when(reboot),
            "EC2",
            "web/staging",
            instance,
            "system-reboot: The system is scheduled for a reboot",
        ],
        [
            _when(update),
            "RDS",
            "db main/staging",
            cluster,
            "system-update: New Operating System update is available",
        ],
        [
            _when(notice),
            "Health",
            "account-wide (staging)",
            "EC2",
            "AWS_EC2_OPERATIONAL_NOTIFICATION (accountNotification)",
        ],
    ]
    retiring, _ = scheduled["retirement"]
    assert retiring not in result.text
    # Production's two items are not staging's, and are counted, not hidden.
    assert f"2 more in account {ACCOUNT} {REGION} concern no service of staging" in result.text


async def test_events_production_shows_productions_items_and_none_of_stagings(
    sandbox: Any, make_bot: BotMaker
) -> None:
    bot = await make_bot()
    result = await bot.dispatcher.handle(ALICE, "events prod")  # an alias
    assert result.outcome is Outcome.OK
    scheduled = sandbox.seeded["scheduled"]
    retiring, retirement = scheduled["retirement"]
    assert _rows(result.text) == [
        [
            _when(retirement),
            "EC2",
            "web/production",
            retiring,
            "instance-retirement: degraded hardware",
        ],
        [
            _when(retirement),
            "Health",
            "web/production",
            f"EC2 {retiring}",
            "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED (scheduledChange)",
        ],
        [
            _when(scheduled["account"][1]),
            "Health",
            "account-wide (production)",
            "EC2",
            "AWS_EC2_OPERATIONAL_NOTIFICATION (accountNotification)",
        ],
    ]
    staging_instance, _ = scheduled["ec2"]
    assert staging_instance not in result.text
    assert "system-reboot" not in result.text
    assert "main-staging" not in result.text


async def test_every_environment_is_listed_with_the_account_wide_notice_once(
    sandbox: Any, make_bot: BotMaker
) -> None:
    bot = await make_bot()
    result = await bot.dispatcher.handle(ALICE, "events")
    assert result.outcome is Outcome.OK
    concerns = [row[2] for row in _rows(result.text)]
    assert concerns == [
        "web/staging",
        "db main/staging",
        "web/production",
        "web/production",
        "account-wide (staging, production)",
    ]
    assert "not matched" not in result.text


async def test_an_item_on_an_instance_of_no_service_is_reported_as_not_matched(
    sandbox: Any, make_bot: BotMaker
) -> None:
    stray = _stray_instance(sandbox)
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=3)
    sandbox.schedule_instance_event(stray, "system-maintenance", soon)
    sandbox.add_health_event(
        "EC2", "AWS_EC2_PERSISTENT_INSTANCE_RETIREMENT", soon, entities=(stray,)
    )
    bot = await make_bot()

    everything = await bot.dispatcher.handle(ALICE, "events")
    assert stray not in [row[3] for row in _rows(everything.text)]
    assert (
        f"not matched to a service: 2 in account {ACCOUNT} {REGION}: "
        f"EC2 {stray} system-maintenance ({_when(soon)}); "
        f"Health EC2 AWS_EC2_PERSISTENT_INSTANCE_RETIREMENT on {stray} ({_when(soon)})"
    ) in everything.text

    staging = await bot.dispatcher.handle(ALICE, "events staging")
    assert stray not in staging.text
    assert f"4 more in account {ACCOUNT} {REGION} concern no service of staging" in staging.text


async def test_events_orders_what_was_scheduled_by_start_and_leaves_out_ended_health_events(
    sandbox: Any, make_bot: BotMaker
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # All before the seed's first item (day 2 at 01:00, at least 25 hours away).
    web = sandbox.seeded["web_instance_ids/staging"][-1]
    sandbox.schedule_instance_event(
        web, "instance-retirement", now + timedelta(hours=20), description="degraded host"
    )
    # An instance of staging's Aurora cluster.
    sandbox.schedule_db_maintenance(
        f"{ARN}:db:main-staging-2", "db-upgrade", forced_apply=now + timedelta(hours=5)
    )
    sandbox.add_health_event(
        "RDS",
        "AWS_RDS_OPERATIONAL_ISSUE",
        now - timedelta(hours=1),
        category="issue",
        entities=(f"{ARN}:db:main-staging-1",),
    )
    sandbox.add_health_event(
        "ECS", "AWS_ECS_OPERATIONAL_ISSUE", now - timedelta(days=2), now - timedelta(days=1)
    )
    bot = await make_bot()
    result = await bot.dispatcher.handle(ALICE, "events staging")
    rows = _rows(result.text)
    assert [row[:5] for row in rows[:3]] == [
        [
            _when(now - timedelta(hours=1)),
            "Health",
            "db main/staging",
            f"RDS {ARN}:db:main-staging-1",
            "AWS_RDS_OPERATIONAL_ISSUE (issue)",
        ],
        [_when(now + timedelta(hours=5)), "RDS", "db main/staging", "main-staging-2", "db-upgrade"],
        [
            _when(now + timedelta(hours=20)),
            "EC2",
            "web/staging",
            web,
            "instance-retirement: degraded host",
        ],
    ]
    assert len(rows) == 6  # and the three of staging the seed scheduled
    assert "AWS_ECS_OPERATIONAL_ISSUE" not in result.text  # closed: it ended yesterday


async def test_an_environment_in_another_region_is_read_there(
    sandbox: Any, make_bot: BotMaker
) -> None:
    data = events_data()
    production = data["environments"]["production"]
    production["region"] = "us-west-2"
    production["services"] = {
        "web": {"fleet": {"launch_template": "web-production", "target_group": "web-production-tg"}}
    }
    production["databases"] = {}
    instance = _stray_instance(
        sandbox, "us-west-2", {"kajitori:service": "web", "kajitori:env": "production"}
    )
    soon = datetime.now(UTC) + timedelta(hours=3)
    sandbox.schedule_instance_event(instance, "system-maintenance", soon, region="us-west-2")
    sandbox.add_health_event(
        "EC2", "AWS_EC2_MAINTENANCE_SCHEDULED", soon, region="us-west-2", entities=(instance,)
    )
    bot = await make_bot(parse_config(data))

    staging = await bot.dispatcher.handle(ALICE, "events staging")
    assert "system-maintenance" not in staging.text
    assert "AWS_EC2_MAINTENANCE_SCHEDULED" not in staging.text

    production_events = await bot.dispatcher.handle(ALICE, "events production")
    assert [row[1:4] for row in _rows(production_events.text)] == [
        ["EC2", "web/production", instance],
        ["Health", "web/production", f"EC2 {instance}"],
    ]
    assert "system-reboot" not in production_events.text
    assert "could not be read" not in production_events.text


async def test_a_source_that_cannot_be_read_is_named_per_environment_and_the_rest_show(
    sandbox: Any, make_bot: BotMaker
) -> None:
    async with AwsProxy(sandbox.url, refuse=["Action=DescribePendingMaintenanceActions"]) as proxy:
        bot = await build_bot(
            events_config(),
            Settings(aws_endpoint_url=proxy.url, aws_region=REGION),
            chats=[RecordingChat()],
            runner="events-test",
        )
        try:
            result = await bot.dispatcher.handle(ALICE, "events")
        finally:
            await bot.close()
    assert result.outcome is Outcome.OK
    assert "staging, production: RDS pending maintenance could not be read:" in result.text
    assert "AccessDenied" in result.text
    assert "main-staging" not in [row[3] for row in _rows(result.text)]
    assert [row[1] for row in _rows(result.text)] == ["EC2", "EC2", "Health", "Health"]


@pytest.fixture
async def proxy(sandbox: Any) -> AsyncIterator[AwsProxy]:
    async with AwsProxy(sandbox.url) as proxy:
        yield proxy


async def test_an_environment_with_a_role_is_read_through_that_role_in_its_account(
    sandbox: Any, proxy: AwsProxy, make_bot: BotMaker
) -> None:
    seed_other_account(sandbox)
    autoscaling = other_account(sandbox, "autoscaling")
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["worker-production"])
    worker = group["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    sandbox.schedule_instance_event(worker, "system-reboot", soon, account_id=OTHER_ACCOUNT)
    sandbox.add_health_event(
        "EC2",
        "AWS_EC2_SYSTEM_REBOOT_MAINTENANCE_SCHEDULED",
        soon,
        entities=(worker,),
        account_id=OTHER_ACCOUNT,
    )
    later = soon + timedelta(days=1)
    sandbox.add_health_event(
        "IAM",
        "AWS_IAM_ACCOUNT_NOTIFICATION",
        later,
        category="accountNotification",
        account_id=OTHER_ACCOUNT,
    )
    bot = await build_bot(
        parse_config(two_account_data()),
        Settings(aws_endpoint_url=proxy.url),
        chats=[RecordingChat()],
        runner="test",
    )
    try:
        production = await bot.dispatcher.handle(ALICE, "events production")
        everything = await bot.dispatcher.handle(ALICE, "events")
    finally:
        await bot.close()

    assert production.outcome is Outcome.OK, production.text
    assert _rows(production.text) == [
        [
            _when(soon),
            "EC2",
            "worker/production",
            worker,
            "system-reboot: The system is scheduled for a reboot",
        ],
        [
            _when(soon),
            "Health",
            "worker/production",
            f"EC2 {worker}",
            "AWS_EC2_SYSTEM_REBOOT_MAINTENANCE_SCHEDULED (scheduledChange)",
        ],
        [
            _when(later),
            "Health",
            "account-wide (production)",
            "IAM",
            "AWS_IAM_ACCOUNT_NOTIFICATION (accountNotification)",
        ],
    ]
    # The default account's items (the seed's) are not production's: it lives elsewhere.
    assert "AWS_EC2_OPERATIONAL_NOTIFICATION" not in production.text
    assert "could not be read" not in production.text
    assert any(c.action == "AssumeRole" and c.status == 200 for c in proxy.calls)

    concerns = [row[2] for row in _rows(everything.text)]
    assert f"account-wide {ACCOUNT} (staging)" in concerns
    assert f"account-wide {OTHER_ACCOUNT} (production)" in concerns
    assert concerns.count("worker/production") == 2
    # The seed's production web instance is in the default account, where production has
    # no service now: its retirement is not matched, and said so.
    assert f"not matched to a service: 2 in account {ACCOUNT} {REGION}" in everything.text


async def test_a_role_that_cannot_be_assumed_is_named_and_staging_still_shows(
    sandbox: Any, make_bot: BotMaker
) -> None:
    async with AwsProxy(sandbox.url, refuse=[f"RoleArn={ROLE}"]) as proxy:
        bot = await build_bot(
            parse_config(two_account_data()),
            Settings(aws_endpoint_url=proxy.url),
            chats=[RecordingChat()],
            runner="test",
        )
        try:
            result = await bot.dispatcher.handle(ALICE, "events")
        finally:
            await bot.close()
    assert result.outcome is Outcome.OK, result.text
    assert (
        "production: EC2 scheduled events could not be read: environment production" in result.text
    )
    assert ROLE in result.text
    assert "web/staging" in [row[2] for row in _rows(result.text)]
    assert "Traceback" not in result.text


async def test_events_needs_the_events_permission(sandbox: Any, make_bot: BotMaker) -> None:
    bot = await make_bot()
    result = await bot.dispatcher.handle(
        Origin(adapter="local", channel="local", member="local:dave"), "events"
    )
    assert result.outcome is Outcome.REFUSED
